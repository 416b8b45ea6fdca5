"""What the fault cases check the lab's pair with, and the operator's documented rejoin."""

from mfa_ha_lab.checker import wait_until
from tests.support import find_with_key

CONVERGE_WITHIN = 180  # s


def role(node) -> str:
    return "standby" if node.sql("SELECT pg_is_in_recovery()")[0][0] else "primary"


def roles(lab):
    """(the node that is the primary, the other one)."""
    primary = next(node for node in lab.nodes if role(node) == "primary")
    return primary, next(node for node in lab.nodes if node is not primary)


def converged(lab, primary, standby) -> bool:
    """One primary with pmfad, the other a standby streaming from it, pmfad only there."""
    receiver = standby.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return (
        role(primary) == "primary"
        and primary.app_pid() is not None
        and standby.app_pid() is None
        and receiver == [("streaming", primary.address)]
    )


def rejoin_converges(lab, salt_lab, primary, standby) -> dict:
    """``salt-run state.orchestrate mfa_ha.orch.rejoin`` succeeds and the pair converges."""
    rejoin = salt_lab.run("state.orchestrate", "mfa_ha.orch.rejoin", timeout=600, check=False)
    assert rejoin.get("retcode") == 0, str(rejoin)[-3000:]
    wait_until(
        lambda: converged(lab, primary, standby),
        CONVERGE_WITHIN,
        f"{primary.minion_id} primary, {standby.minion_id} streaming from it",
    )
    return rejoin


def divergent_named(rejoin: dict) -> int:
    """The transactions the rejoin named as divergent (committed on the old primary after the fork)."""
    named = find_with_key(rejoin, "divergent")
    assert named, str(rejoin)[-3000:]
    return named["divergent"]["transactions_after_fork"]
