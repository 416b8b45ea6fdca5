"""Switchover through ``state.orchestrate mfa_ha.orch.switchover`` with the real master and
minions, while two clients keep writing: zero acknowledged writes lost, both ways; and
refusals that leave everything as it was."""

import json
import os
import re
import threading
import time

import pytest

from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD
from mfa_ha_lab.writer import AppWriter, DbWriter, lost
from tests.support import find_with_key, wait_for

pytestmark = pytest.mark.integration


def switchover(salt_run, target, **pillar):
    return salt_run.run(
        "state.orchestrate", "mfa_ha.orch.switchover", pillar={"mfa_ha": {"target": target, **pillar}}, _timeout=300
    )


def role(node):
    return "standby" if node.sql("SELECT pg_is_in_recovery()")[0][0] else "primary"


def streams_from(node, upstream):
    rows = node.sql("SELECT status, sender_host FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0] == ("streaming", upstream.address)


def inactive_slots(node):
    return [row[0] for row in node.sql("SELECT slot_name FROM pg_replication_slots WHERE NOT active")]


def test_switchover_there_and_back_loses_no_acknowledged_write(pair, salt_run):
    lab = pair
    app = AppWriter([n.address for n in lab.nodes], APP_PORT, enter=lab.on_clients)
    direct = DbWriter([n.address for n in lab.nodes], 5432, APP_USER, LAB_PASSWORD, APP_DB, enter=lab.on_clients)
    app.start()
    direct.start()
    try:
        there = switchover(salt_run, "server_dr")
        assert there.returncode == 0, there.stdout
        assert role(lab.dr) == "primary" and role(lab.prod) == "standby"
        assert streams_from(lab.prod, lab.dr)
        assert lab.dr.app_pid() and lab.prod.app_pid() is None
        assert inactive_slots(lab.prod) == []  # its slot for dr, from when it was the primary, would hold WAL
        back = switchover(salt_run, "server_prod")
        assert back.returncode == 0, back.stdout
    finally:
        app.stop()
        direct.stop()
    assert role(lab.prod) == "primary" and streams_from(lab.dr, lab.prod)
    assert inactive_slots(lab.dr) == []
    assert len(app.acked) > 20 and len(direct.acked) > 20
    assert lost(lambda q, p: lab.prod.sql(q, p, dbname=APP_DB), app) == []
    assert lost(lambda q, p: lab.prod.sql(q, p, dbname=APP_DB), direct) == []


def assert_untouched(lab, app_pid):
    assert role(lab.prod) == "primary" and lab.prod.app_pid() == app_pid
    assert lab.dr.app_pid() is None


def test_switchover_refused_when_the_standby_is_stopped(pair, salt_run):
    lab = pair
    app_pid = lab.prod.app_pid()
    lab.stop_db(lab.dr)
    try:
        ret = switchover(salt_run, "server_dr")
        assert ret.returncode != 0
        assert "target is a running standby" in ret.stdout and "server_dr: stopped" in ret.stdout
        assert_untouched(lab, app_pid)
        assert not lab.dr.is_running()
    finally:
        lab.start_db(lab.dr)
    wait_for(lambda: streams_from(lab.dr, lab.prod), what="dr streaming again", ignore_errors=True)


def test_runner_exit_codes_tell_a_refusal(pair, salt_run):
    """A script driving a switchover must be able to trust $?."""
    lab = pair
    app_pid = lab.prod.app_pid()
    ok = salt_run.run("mfa_ha.precheck", "server_dr")
    assert ok.returncode == 0 and ok.data["action"] == "switch", ok.stdout
    lab.stop_db(lab.dr)
    try:
        refused = salt_run.run("mfa_ha.precheck", "server_dr")
        assert refused.returncode == 2 and refused.data["action"] == "refuse", refused.stdout
        refused = salt_run.run("mfa_ha.switchover", "server_dr", _timeout=300)
        assert (
            refused.returncode == 2 and "FAILED" in refused.stdout and "no answer to the switch" not in refused.stdout
        )
        assert_untouched(lab, app_pid)
    finally:
        lab.start_db(lab.dr)
    wait_for(lambda: streams_from(lab.dr, lab.prod), what="dr streaming again", ignore_errors=True)


def test_a_runner_input_error_fails_the_runner(pair, salt_run):
    """An invalid input is not reported as "Passed invalid arguments" with
    success (SaltInvocationError is a TypeError), so a failhard gate cannot be passed."""
    ret = salt_run.run("mfa_ha.precheck", "server_dr", nodes={"server_dr": {"address": "not an address!"}})
    assert ret.returncode != 0, ret.stdout
    assert "mfa_ha:nodes:server_dr:address" in ret.stdout and "Passed invalid arguments" not in ret.stdout


@pytest.mark.parametrize(
    "override, named",
    [
        (
            {
                "hba": {
                    "entries": [
                        {"type": "host", "database": "all", "user": "all", "address": "0.0.0.0/0", "method": "trust"}
                    ]
                }
            },
            "allow_trust",
        ),
        ({"replication": {"password": ""}}, "mfa_ha:replication:password"),
    ],
)
def test_switchover_with_a_bad_pillar_is_refused_before_anything(pair, salt_run, override, named):
    """The switchover path validates the pillar it runs with."""
    lab = pair
    app_pid = lab.prod.app_pid()
    ret = switchover(salt_run, "server_dr", **override)
    assert ret.returncode != 0 and named in ret.stdout, ret.stdout
    assert "prechecks" not in ret.stdout and "switch" not in {s.get("__id__") for s in _steps(ret)}
    assert_untouched(lab, app_pid)
    assert streams_from(lab.dr, lab.prod)


def _steps(ret):
    data = ret.data["data"] if isinstance(ret.data, dict) and "data" in ret.data else ret.data
    return [
        step
        for steps in (data or {}).values()
        if isinstance(steps, dict)
        for step in steps.values()
        if isinstance(step, dict)
    ]


def test_switchover_refused_when_the_standby_lags(pair, salt_run):
    lab = pair
    app_pid = lab.prod.app_pid()
    lab.dr.sql("SELECT pg_wal_replay_pause()")
    try:
        lab.prod.sql("CREATE TABLE IF NOT EXISTS lag_probe AS SELECT generate_series(1, 20000) AS n", dbname=APP_DB)
        wait_for(
            lambda: (
                lab.prod.sql("SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) FROM pg_stat_replication")[
                    0
                ][0]
                > 100000
            ),
            what="lag on dr",
        )
        ret = switchover(salt_run, "server_dr", switchover={"max_lag_bytes": 65536})
        assert ret.returncode != 0
        assert "replay lag within mfa_ha:switchover:max_lag_bytes" in ret.stdout
        assert "limit 65536" in ret.stdout
        assert_untouched(lab, app_pid)
        assert lab.dr.sql("SELECT pg_is_wal_replay_paused()")[0][0] is True
    finally:
        lab.dr.sql("SELECT pg_wal_replay_resume()")


def test_switchover_refused_when_the_old_primary_cannot_reach_the_target(pair, salt_run):
    """The prechecks prove both directions; otherwise the target would be
    promoted and the old primary left stopped, with no standby."""
    lab = pair
    app_pid = lab.prod.app_pid()
    path = os.path.join(lab.dr.data_dir, "pg_hba.conf")
    good = open(path, encoding="utf-8").read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"hostssl  all  replicamfa  {lab.prod.address}/32  reject\n" + good)  # dr refuses prod's connections
    lab.dr.sql("SELECT pg_reload_conf()")
    try:
        ret = switchover(salt_run, "server_dr")
        assert ret.returncode != 0
        assert (
            "the old primary reaches the target" in ret.stdout
            and "server_prod sees server_dr as unreachable" in ret.stdout
        ), ret.stdout
        assert_untouched(lab, app_pid)
    finally:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(good)
        lab.dr.sql("SELECT pg_reload_conf()")
    assert streams_from(lab.dr, lab.prod)


def test_a_switch_whose_target_died_is_resumed_by_a_rerun(pair, salt_run):
    """The state a switch leaves when its target dies after the old primary
    stopped cleanly. The re-run brings the old primary back (its clean shutdown proves it
    holds every write) instead of refusing with "primaries: none"."""
    lab = pair
    lab.stop_app(lab.prod)
    lab.stop_db(lab.prod)  # clean shutdown, as the switch does
    kill_postmaster(lab.dr)  # the target dies before it is promoted
    try:
        ret = switchover(salt_run, "server_dr")
        assert ret.returncode != 0, ret.stdout
        assert "comes back as the primary" in ret.stdout and '"resumed":true' in ret.stdout.replace(" ", ""), ret.stdout
        assert role(lab.prod) == "primary" and lab.prod.app_pid()
    finally:
        lab.start_db(lab.dr)
    wait_for(lambda: streams_from(lab.dr, lab.prod), timeout=90, what="dr streaming again", ignore_errors=True)


def accepts_writes(node):
    try:
        node.sql("CREATE TABLE IF NOT EXISTS fence_probe (x int); INSERT INTO fence_probe VALUES (1)")
        return True
    except Exception:  # noqa: BLE001 - down or read-only both count as "no"
        return False


def kill_postmaster(node):
    """The lab started it; kill -9 by the PID in its postmaster.pid (a crashed primary)."""
    import os
    import signal

    with open(os.path.join(node.data_dir, "postmaster.pid"), encoding="ascii") as fh:
        os.kill(int(fh.readline()), signal.SIGKILL)
    wait_for(lambda: not node.is_running(), what="the killed server to be gone")


def test_failover_fencing_and_rejoin(pair, salt_run, minions):
    lab = pair
    prod_minion = minions["server_prod"]
    failover = ("state.orchestrate", "mfa_ha.orch.failover")
    with prod_minion.stopped():
        lab.stop_app(lab.prod)
        kill_postmaster(lab.prod)
        refused = salt_run.run(*failover, pillar={"mfa_ha": {"target": "server_dr"}}, _timeout=300)
        assert refused.returncode != 0 and "confirm_primary_lost" in refused.stdout
        assert role(lab.dr) == "standby"

        done = salt_run.run(
            *failover, pillar={"mfa_ha": {"target": "server_dr", "confirm_primary_lost": True}}, _timeout=300
        )
        assert done.returncode == 0, done.stdout
        assert "last_received_lsn" in done.stdout
        assert role(lab.dr) == "primary" and lab.dr.app_pid()
        # The old primary's host comes back and something starts its PostgreSQL: a primary again.
        lab.start_db(lab.prod)
        assert accepts_writes(lab.prod)
        # The master keeps asking every node for its status while prod's minion starts (a
        # compound status job running on the minion would make the fence fail).
        fenced = threading.Event()
        poller = threading.Thread(
            target=lambda: [salt_run.run("mfa_ha.status", _timeout=60) for _ in iter(lambda: fenced.is_set(), True)],
            daemon=True,
        )
        poller.start()
    # Its minion starts: the reactor on salt/minion/server_prod/start fences it.
    try:
        wait_for(lambda: not lab.prod.is_running(), timeout=90, what="the reactor to fence prod", ignore_errors=True)
    finally:
        fenced.set()
        poller.join(timeout=90)
    lab.start_db(lab.prod)  # whatever starts it now brings it up read-only
    assert not accepts_writes(lab.prod)
    lab.stop_db(lab.prod)

    rejoin = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=600)
    assert rejoin.returncode == 0, rejoin.stdout
    wait_for(lambda: streams_from(lab.prod, lab.dr), what="prod streaming from dr", ignore_errors=True)
    entries = json.loads(salt_run.run("mfa_ha.history", limit=20).stdout)["entries"]
    did = [e for e in entries if e["event"] == "rejoin" and e.get("node") == "server_prod"]
    assert did and did[-1]["outcome"] in ("rewound", "re-attached as it was", "cloned"), entries[-5:]
    assert (
        did[-1]["primary"] == "server_dr"
        and did[-1]["timeline"] == lab.dr.sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    )

    back = switchover(salt_run, "server_prod")
    assert back.returncode == 0, back.stdout
    assert role(lab.prod) == "primary" and streams_from(lab.dr, lab.prod)


def test_failover_again_on_a_healthy_pair_leaves_the_standby_streaming(pair, salt_run):
    """Re-running a failover that is done (target already the primary) only finishes: the
    other node, a streaming standby, is not fenced."""
    lab = pair
    again = salt_run.run(
        "state.orchestrate", "mfa_ha.orch.failover", pillar={"mfa_ha": {"target": "server_prod"}}, _timeout=300
    )
    assert again.returncode == 0, again.stdout
    assert "not a primary" in again.stdout
    assert role(lab.prod) == "primary" and lab.prod.app_pid()
    assert streams_from(lab.dr, lab.prod)


def test_failover_with_a_wrong_lost_list_is_refused_and_changes_nothing(pair, salt_run):
    """``mfa_ha:lost`` (the witness's measured-lost nodes) naming no node, or the target, is
    refused by the prechecks, before anything is fenced."""
    lab = pair
    for wrong in (["server_nope"], ["server_prod"], "server_dr"):
        refused = salt_run.run(
            "state.orchestrate",
            "mfa_ha.orch.failover",
            pillar={"mfa_ha": {"target": "server_prod", "lost": wrong}},
            _timeout=300,
        )
        assert refused.returncode != 0, refused.stdout
        assert "lost: must be a list of ids from mfa_ha:nodes other than the target server_prod" in refused.stdout
    assert role(lab.prod) == "primary" and lab.prod.app_pid() and streams_from(lab.dr, lab.prod)


def alert_lines(lab):
    path = os.path.join(lab.root, "alerts.log")
    return open(path, encoding="utf-8").read().splitlines() if os.path.exists(path) else []


def test_rejoin_after_a_promotion_done_outside_the_tool(pair, salt_run):
    """The new primary has no slot for the rejoining node; rejoin creates
    it instead of waiting 300-600 s and failing."""
    lab = pair
    lab.stop_app(lab.prod)
    lab.stop_db(lab.prod)
    lab.dr.sql("SELECT pg_promote()")
    wait_for(lambda: role(lab.dr) == "primary", what="dr promoted by hand")
    # dr kept the slot from the last time it was the primary; a hand-made primary has none.
    lab.dr.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'server_prod'")
    started = time.monotonic()
    rejoin = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=600)
    assert rejoin.returncode == 0, rejoin.stdout
    assert time.monotonic() - started < 120
    wait_for(lambda: streams_from(lab.prod, lab.dr), what="prod streaming from dr", ignore_errors=True)
    assert lab.dr.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'server_prod'")[0][0] is True
    back = switchover(salt_run, "server_prod")
    assert back.returncode == 0, back.stdout
    assert role(lab.prod) == "primary" and lab.prod.app_pid() and streams_from(lab.dr, lab.prod)


def test_a_minion_restart_in_a_split_brain_fences_nothing_and_rejoin_takes_a_choice(pair, salt_run, minions):
    """Dr promoted behind the tool's back while prod serves the
    clients, and dr takes writes too; prod's minion restarts. "Later timeline wins" would stop
    the node the clients use: in a split brain nothing is fenced automatically and a critical
    alert names it. Rejoin refuses at once naming both primaries, then, told which node to
    keep, moves the other's data aside, counts its transactions and clones it."""
    lab = pair
    app_pid = lab.prod.app_pid()
    assert app_pid
    before = len(alert_lines(lab))
    lab.dr.sql("SELECT pg_promote()")
    wait_for(lambda: role(lab.dr) == "primary", what="dr promoted by hand")
    lab.dr.sql("CREATE TABLE diverged (x int)", dbname=APP_DB)
    for x in range(3):
        lab.dr.sql("INSERT INTO diverged VALUES (%s)", (x,), dbname=APP_DB)
    with minions["server_prod"].stopped():
        pass  # a routine restart: salt/minion/server_prod/start reaches the fence reactor
    wait_for(
        lambda: any("SPLIT BRAIN: server_prod" in line for line in alert_lines(lab)[before:]),
        timeout=90,
        what="the split brain alert from the fence runner",
    )
    assert lab.prod.is_running() and role(lab.prod) == "primary" and lab.prod.app_pid() == app_pid

    started = time.monotonic()
    refused = salt_run.run("state.orchestrate", "mfa_ha.orch.rejoin", _timeout=300)
    assert refused.returncode != 0 and "SPLIT BRAIN" in refused.stdout, refused.stdout
    assert re.search(r"server_dr \(timeline \d+, wrote up to [0-9A-F]+/[0-9A-F]+\)", refused.stdout), refused.stdout
    assert re.search(r"server_prod \(timeline \d+, wrote up to [0-9A-F]+/[0-9A-F]+\)", refused.stdout)
    assert time.monotonic() - started < 60
    assert role(lab.dr) == "primary" and role(lab.prod) == "primary"  # nothing done

    kept = salt_run.run(
        "state.orchestrate", "mfa_ha.orch.rejoin", pillar={"mfa_ha": {"keep": "server_prod"}}, _timeout=600
    )
    assert kept.returncode == 0, kept.stdout
    discarded = find_with_key(kept.data, "transactions_after_fork")
    assert discarded["transactions_after_fork"] >= 4 and discarded["moved_aside"].startswith(lab.dr.data_dir)
    assert os.path.isdir(discarded["moved_aside"])  # never deleted
    wait_for(lambda: streams_from(lab.dr, lab.prod), what="dr streaming from prod again", ignore_errors=True)
    assert lab.prod.app_pid() == app_pid
