"""A node whose PostgreSQL died while it re-attached as a standby, after a switch: it holds
no WAL the new primary lacks, so it re-attaches as it is (no rewind, no clone), whatever the
moment it died; and a crash recovery that needs WAL only the other node holds fails at once,
naming it, rather than waiting out its bound."""

import os
import shutil
import threading
import time

import pytest
from salt.exceptions import CommandExecutionError

from mfa_ha.lsn import to_int as lsn_int
from tests.support import setup_replication, wait_for, write_rows

# After the server opened for reads: at once, while its receiver connects, while it follows
# the new timeline, once it streams.
KILLED_AFTER_SECONDS = (0, 0.02, 0.1, 0.5)
SEGMENT_BYTES = 16 * 1024 * 1024  # the lab's wal_segment_size
WAL_PAGE_BYTES = 8192


def kill_postmaster(node) -> None:
    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        os.kill(int(fh.readline()), 9)  # the lab started it
    wait_for(lambda: not node.is_running(), what=f"{node.name}'s postmaster gone")


def in_recovery(node) -> bool:
    try:
        return node.sql("SELECT pg_is_in_recovery()")[0][0]
    except Exception:  # noqa: BLE001 - not accepting connections yet
        return False


def hand_over(old, new, old_node, new_node):
    """The switch's first half by hand: the old primary stopped cleanly, the standby
    promoted, the old primary configured as its standby (not started)."""
    write_rows(old_node, 30, f"before-switch-to-{new_node.name}")
    assert old.pgrepl.stop() is True
    new.pgrepl.wait_for_lsn(old.pgrepl.shutdown_checkpoint_lsn(), timeout=30, beyond=True)
    new.pgrepl.promote()
    new.pgrepl.create_slot(old_node.slot)


def streaming(loaders) -> bool:
    return (loaders.pgrepl.status().get("receiver") or {}).get("status") == "streaming"


def moved_aside(lab) -> set:
    return {n for n in os.listdir(lab.root) if ".moved-" in n or ".diverged-" in n}


@pytest.fixture(scope="module")
def pair(lab, prod, dr):
    setup_replication(lab, prod, dr)
    dr.pgrepl.start()
    wait_for(lambda: streaming(dr), what="dr streaming")
    return [(prod, dr, lab.prod, lab.dr), (dr, prod, lab.dr, lab.prod)]


@pytest.mark.parametrize("killed_after", KILLED_AFTER_SECONDS)
def test_a_standby_killed_while_it_re_attaches_rejoins_as_it_is(lab, pair, killed_after):
    old, new, old_node, new_node = pair[KILLED_AFTER_SECONDS.index(killed_after) % 2]
    hand_over(old, new, old_node, new_node)
    old.pgrepl.configure_standby(new_node.address, slot=old_node.slot)
    starting = threading.Thread(target=old.pgrepl.start, daemon=True)
    starting.start()
    wait_for(lambda: in_recovery(old_node), timeout=60, what="the old primary open as a standby", interval=0.005)
    time.sleep(killed_after)
    kill_postmaster(old_node)
    starting.join(30)
    kept = moved_aside(lab)
    rejoined = old.pgrepl.make_standby(new_node.minion_id, slot=old_node.slot, timeout=60)
    actions = [step["action"] for step in rejoined["plan"]]
    assert "rewind" not in actions and "clone" not in actions, rejoined["plan"]
    assert rejoined["receiver"]["status"] == "streaming", rejoined
    assert moved_aside(lab) == kept
    wait_for(lambda: lab.rows(old_node) == lab.rows(new_node), what=f"{old_node.name} replays {new_node.name}'s rows")


def test_a_crash_recovery_that_needs_wal_the_node_lacks_fails_naming_it(lab, pair):
    """The old primary knows the new timeline (its history file) but not its WAL, and its
    upstream cannot be reached: recovery without the peer waits for WAL that never comes."""
    old, new, old_node, new_node = pair[0] if pair[0][0].pgrepl.role() == "primary" else pair[1]
    hand_over(old, new, old_node, new_node)
    old.pgrepl.configure_standby(new_node.address, primary_port=1, slot=old_node.slot)  # nothing listens there
    checkpoint = lsn_int(old.pgrepl.shutdown_checkpoint_lsn())
    assert old.pgrepl.start() is True  # a standby from its shutdown checkpoint: open for reads at once
    kill_postmaster(old_node)
    # What a receiver killed early leaves: the new timeline's history and the first page of
    # its segment (streaming starts at a segment's beginning), the rest not yet received.
    timeline = new.pgrepl.status()["timeline"]
    history = f"{timeline:08X}.history"
    segment = f"{timeline:08X}{checkpoint >> 32:08X}{(checkpoint & 0xFFFFFFFF) // SEGMENT_BYTES:08X}"
    _write_as_postgres(os.path.join(old_node.data_dir, "pg_wal", history), _read(new_node.data_dir, history))
    first_page = _read(new_node.data_dir, segment)[:WAL_PAGE_BYTES]
    _write_as_postgres(
        os.path.join(old_node.data_dir, "pg_wal", segment), first_page + bytes(SEGMENT_BYTES - WAL_PAGE_BYTES)
    )
    with pytest.raises(CommandExecutionError, match="needs WAL it does not hold"):
        old.pgrepl.rewind(new_node.address, slot=old_node.slot, timeout=600)
    assert not old_node.is_running() and os.path.exists(os.path.join(old_node.data_dir, "standby.signal"))
    rejoined = old.pgrepl.make_standby(
        new_node.minion_id, slot=old_node.slot, timeout=60
    )  # its WAL ends before the fork
    assert "rewind" not in [step["action"] for step in rejoined["plan"]], rejoined["plan"]
    assert rejoined["receiver"]["status"] == "streaming", rejoined


def _read(data_dir, name) -> bytes:
    with open(os.path.join(data_dir, "pg_wal", name), "rb") as fh:
        return fh.read()


def _write_as_postgres(path, content: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(content)
    shutil.chown(path, "postgres", "postgres")
