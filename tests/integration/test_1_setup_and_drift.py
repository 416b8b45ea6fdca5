"""Setup from scratch through ``state.orchestrate mfa_ha.orch.setup``, then highstate
finds drift under ``test=True`` without fixing it, and repairs it; a bad pillar fails
naming its key. Real master, real minions, real PostgreSQL; the tests run in file order."""

import contextlib
import glob
import json
import os

import pytest
import salt.version

from mfa_ha_lab.lab import EXAMPLE_PILLAR, MASTER_ID
from tests.support import wait_for

pytestmark = pytest.mark.integration


def orch_steps(ret) -> dict:
    """The orchestration's steps by id: ``{id: state return}``."""
    data = ret.data["data"] if "data" in ret.data else ret.data
    (steps,) = data.values()
    return {step["__id__"]: step for step in steps.values()}


def states(ret) -> dict:
    """A minion's state run by state id (``ret`` of a single-minion ``salt`` call)."""
    assert isinstance(ret.data, dict), ret.stdout
    return {step["__id__"]: step for step in ret.data.values()}


def changed(run: dict) -> dict:
    return {sid: step["changes"] for sid, step in run.items() if step["changes"]}


def highstate(salt_cli, minion, **kwargs):
    return states(salt_cli.run("state.highstate", minion_tgt=minion, _timeout=300, **kwargs))


def streaming(node) -> bool:
    rows = node.sql("SELECT status FROM pg_stat_wal_receiver")
    return bool(rows) and rows[0][0] == "streaming"


def test_setup_builds_a_streaming_pair_from_scratch(lab, salt_run):
    old_system = lab.dr.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0]
    ret = salt_run.run("state.orchestrate", "mfa_ha.orch.setup", _timeout=600)
    assert ret.returncode == 0, ret.stdout
    steps = orch_steps(ret)
    assert all(step["result"] is True for step in steps.values())
    standby_run = steps["server_dr streams from server_prod"]["changes"]["ret"]["server_dr"]
    done = next(s for s in standby_run.values() if s["__id__"] == "standby of server_prod")
    assert done["changes"]["done"] == ["stop", "clone", "start"]
    # The foreign cluster dr had was moved aside, not deleted.
    (moved,) = glob.glob(os.path.join(lab.dr.root, "mfadb.moved-*"))
    assert open(os.path.join(moved, "PG_VERSION")).read().strip() == "15"
    assert lab.dr.sql("SELECT pg_is_in_recovery()")[0][0] is True
    assert lab.dr.sql("SELECT system_identifier::text FROM pg_control_system()")[0][0] != old_system
    assert streaming(lab.dr)
    assert lab.dr.app_pid() is None and lab.prod.app_pid()
    lab.prod.sql("CREATE TABLE setup_probe AS SELECT 42 AS answer", dbname="mfadb")
    wait_for(
        lambda: lab.dr.sql("SELECT to_regclass('setup_probe') IS NOT NULL", dbname="mfadb")[0][0],
        what="the probe table on dr",
    )


def test_the_master_serves_the_example_pillar_as_shipped(lab, master, salt_cli):
    """The repository's pillar/top.sls and pillar/mfa_ha.sls, unchanged, are what the lab's
    master serves (the lab lays only its addresses, paths, TLS files and password over them):
    the setup above and every orchestration and status below run on it."""
    import yaml

    with open(os.path.join(EXAMPLE_PILLAR, "mfa_ha.sls"), encoding="utf-8") as fh:
        example = yaml.safe_load(fh)["mfa_ha"]
    assert master.config["pillar_roots"]["base"][-1] == EXAMPLE_PILLAR and master.id.endswith("_master")
    unmask = {"unmask": True} if salt.version.__saltstack_version__.info[0] >= 3008 else {}  # 3008 masks output
    served = salt_cli.run("pillar.get", "mfa_ha", minion_tgt="server_dr", **unmask).data
    assert served["switchover"] == example["switchover"] and served["service_address"] == "none"
    assert served["hba"]["foreign"] == example["hba"]["foreign"] and served["tls"]["mode"] == "verify-full"
    assert served["nodes"]["server_dr"]["address"] == lab.dr.address  # the lab's own address laid over
    # The runner's own pillar (the master's id, which the example's top file targets) has the nodes:
    # mfa_ha.status below reads them there.


def ssl_log_lines(node, application):
    with open(os.path.join(node.root, "postgresql.log"), encoding="utf-8", errors="replace") as fh:
        return [
            line
            for line in fh
            if "connection authorized: user=replicamfa" in line and f"application_name={application}" in line
        ]


def test_replication_and_the_clone_run_over_tls_with_verify_full(lab):
    walsender = lab.prod.sql(
        "SELECT s.ssl, s.version FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) "
        "WHERE r.application_name = 'server_dr'"
    )
    assert walsender and walsender[0][0] is True and walsender[0][1].startswith("TLSv1.")
    conninfo = lab.dr.sql("SHOW primary_conninfo")[0][0]
    assert "sslmode=verify-full" in conninfo and "sslrootcert=" in conninfo and "keepalives=1" in conninfo
    clone = ssl_log_lines(lab.prod, "pg_basebackup")
    assert clone and all("SSL enabled" in line for line in clone), clone
    assert lab.prod.sql("SHOW wal_sender_timeout")[0][0] == "30s"
    hba = open(os.path.join(lab.prod.data_dir, "pg_hba.conf"), encoding="utf-8").read()
    assert f"hostssl  replication  replicamfa  {lab.dr.address}/32  scram-sha-256" in hba  # the peer's own address


def test_setup_again_changes_nothing(salt_run):
    ret = salt_run.run("state.orchestrate", "mfa_ha.orch.setup", _timeout=600)
    assert ret.returncode == 0, ret.stdout
    assert {sid: step["changes"] for sid, step in orch_steps(ret).items() if step["changes"]} == {}


def test_status_of_a_healthy_pair_exits_zero_and_of_a_stopped_standby_non_zero(lab, salt_run):
    ret = salt_run.run("mfa_ha.status", _timeout=120)
    assert ret.returncode == 0, ret.stdout
    dr = next(row for row in ret.data["nodes"] if row["node"] == "server_dr")
    assert dr["upstream"] == f"{lab.prod.address}:{lab.prod.port}" and dr["receiver"] == "streaming"
    assert ret.data["healthy"] is True and isinstance(dr["lag_bytes"], int)
    lab.stop_db(lab.dr)
    try:
        down = salt_run.run("mfa_ha.status", _timeout=120)
        assert down.returncode != 0 and down.data["healthy"] is False
        assert "PostgreSQL stopped" in next(r for r in down.data["nodes"] if r["node"] == "server_dr")["problems"]
    finally:
        lab.start_db(lab.dr)
    wait_for(lambda: streaming(lab.dr), timeout=60, what="dr streaming again")


@pytest.mark.parametrize("minion", ["server_prod", "server_dr"])
def test_highstate_test_mode_on_a_healthy_pair_reports_nothing(salt_cli, minion):
    run = highstate(salt_cli, minion, test=True)
    assert all(step["result"] is True for step in run.values()), run
    assert changed(run) == {}


# -- drift: each seen by test=True without being fixed, then repaired by highstate --------
def _hba_path(node):
    return os.path.join(node.data_dir, "pg_hba.conf")


def _drop_line(path, line):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    assert line in text
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text.replace(line + "\n", ""))


def _setting(node, name):
    rows = node.sql(
        "SELECT setting FROM pg_file_settings WHERE name = %s AND error IS NULL ORDER BY seqno DESC LIMIT 1", (name,)
    )
    return rows[0][0] if rows else None


def _slot_exists(node, name="server_dr"):
    return bool(node.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (name,)))


def _password_ok(lab):
    import psycopg2

    try:
        with lab.on(lab.dr):  # the replication user logs in from the peer's host
            psycopg2.connect(
                host=lab.prod.address,
                port=5432,
                user="replicamfa",
                dbname="postgres",
                password=lab_password(),
                connect_timeout=5,
            ).close()
        return True
    except psycopg2.OperationalError:
        return False


def lab_password():
    from mfa_ha_lab.lab import LAB_PASSWORD

    return LAB_PASSWORD


def _drift_setting(lab):
    # On the standby: ALTER SYSTEM works in recovery, and the file value is what drifts.
    lab.dr.sql("ALTER SYSTEM SET hot_standby_feedback = off")
    return "server_dr", "replication settings", lambda: _setting(lab.dr, "hot_standby_feedback") == "on"


def _drift_hba(lab):
    line = f"hostssl  replication  replicamfa  {lab.dr.address}/32  scram-sha-256"
    _drop_line(_hba_path(lab.prod), line)
    return "server_prod", "peers in pg_hba.conf", lambda: line in open(_hba_path(lab.prod)).read()


def _drift_slot(lab):
    lab.stop_db(lab.dr)  # an active slot cannot be dropped
    lab.prod.sql("SELECT pg_drop_replication_slot('server_dr')")
    lab.start_db(lab.dr)
    return "server_prod", "slot for server_dr", lambda: _slot_exists(lab.prod)


def _drift_app_on_standby(lab):
    lab.start_app(lab.dr)
    wait_for(lambda: lab.dr.app_pid(), what="pmfad stand-in on dr")
    return "server_dr", "pmfad", lambda: lab.dr.app_pid() is None


def _drift_trust_above_the_block(lab):
    path = _hba_path(lab.prod)
    text = open(path, encoding="utf-8").read()
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("host all all 0.0.0.0/0 trust\n" + text)  # a password-less superuser login over TCP

    def repaired():
        lines = open(path, encoding="utf-8").read().splitlines()
        return lines[0].startswith("# BEGIN mfa-ha") and "host all all 0.0.0.0/0 trust" not in lines

    return "server_prod", "peers in pg_hba.conf", repaired


def _file_setting(node, name):
    rows = node.sql("SELECT setting FROM pg_file_settings WHERE name = %s ORDER BY seqno DESC LIMIT 1", (name,))
    return rows[0][0] if rows else None


def _drift_restart_only_setting(lab):
    # Valid but waiting for a restart ("setting could not be applied"): at the next restart
    # pg_rewind would become impossible.
    lab.prod.sql("ALTER SYSTEM SET wal_log_hints = off")
    lab.prod.sql("SELECT pg_reload_conf()")
    return "server_prod", "replication settings", lambda: _file_setting(lab.prod, "wal_log_hints") == "on"


def _drift_misdirected_standby(lab):
    lab.dr.sql("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.9 port=5432 user=replicamfa connect_timeout=2'")
    lab.dr.sql("SELECT pg_reload_conf()")
    wait_for(lambda: not streaming(lab.dr), what="dr's receiver to leave prod")
    return "server_dr", "follows server_prod", lambda: streaming(lab.dr)


def _drift_password(lab):
    lab.prod.sql("ALTER ROLE replicamfa PASSWORD 'changed-by-hand-1'")
    return "server_prod", "replication user", lambda: _password_ok(lab)


DRIFTS = {
    "setting": _drift_setting,
    "hba_line": _drift_hba,
    "slot": _drift_slot,
    "pmfad_on_standby": _drift_app_on_standby,
    "password": _drift_password,
    "trust_above_the_block": _drift_trust_above_the_block,
    "restart_only_setting": _drift_restart_only_setting,
    "misdirected_standby": _drift_misdirected_standby,
}


@pytest.mark.parametrize("kind", list(DRIFTS))
def test_drift_is_reported_by_test_mode_then_repaired_by_highstate(lab, salt_cli, kind):
    minion, state_id, repaired = DRIFTS[kind](lab)
    assert not repaired()

    seen = highstate(salt_cli, minion, test=True)
    assert seen[state_id]["result"] is None and seen[state_id]["changes"], seen[state_id]
    assert set(changed(seen)) == {state_id}, changed(seen)
    assert not repaired(), "test=True must not repair"

    fixed = highstate(salt_cli, minion)
    assert fixed[state_id]["result"] is True and fixed[state_id]["changes"], fixed[state_id]
    assert all(step["result"] is True for step in fixed.values()), fixed
    assert repaired()
    assert changed(highstate(salt_cli, minion, test=True)) == {}
    wait_for(lambda: streaming(lab.dr), timeout=60, what="dr streaming again")


def test_a_stopped_node_that_would_start_as_primary_is_drift(lab, salt_cli):
    lab.stop_db(lab.dr)
    os.unlink(os.path.join(lab.dr.data_dir, "standby.signal"))  # would come up as a second primary
    try:
        seen = highstate(salt_cli, "server_dr", test=True)
        step = seen["follows server_prod"]
        assert step["result"] is None and "would start as a primary" in step["comment"], step
        assert "would start as a primary" in seen["PostgreSQL is stopped here"]["comment"]
        assert not os.path.exists(os.path.join(lab.dr.data_dir, "standby.signal"))
        fixed = highstate(salt_cli, "server_dr")
        assert fixed["follows server_prod"]["result"] is True and fixed["follows server_prod"]["changes"]
        assert not lab.dr.is_running(), "highstate never starts PostgreSQL"
        assert os.path.exists(os.path.join(lab.dr.data_dir, "standby.signal"))
    finally:
        lab.start_db(lab.dr)
    assert lab.dr.sql("SELECT pg_is_in_recovery()")[0][0] is True
    wait_for(lambda: streaming(lab.dr), timeout=60, what="dr streaming again")


def test_no_secret_in_any_return(lab, salt_cli):
    out = salt_cli.run("state.highstate", minion_tgt="*", test=True, _timeout=300).stdout
    assert lab_password() not in out


# -- bad pillar -------------------------------------------------------------------
@contextlib.contextmanager
def pillar_edited(lab, salt_cli, ids, edit):
    """The pillar the lab lays over the example for each minion id in ``ids`` (the master's
    own id included where the runner must see it) changed by ``edit(mfa_ha)`` and refreshed on
    the nodes among them; put back afterwards."""
    previous = lab.edit_overrides(ids, edit)
    nodes = ",".join(i for i in ids if i != MASTER_ID)
    assert salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=nodes).returncode == 0
    try:
        yield
    finally:
        lab.restore_overrides(previous)
        salt_cli.run("-L", "saltutil.refresh_pillar", wait=True, minion_tgt=nodes)


EVERYONE = (MASTER_ID, "server_prod", "server_dr")


@pytest.fixture
def bad_pillar(lab, salt_cli):
    with pillar_edited(
        lab, salt_cli, EVERYONE, lambda mfa: mfa["nodes"]["server_dr"].update(slot="ServerB_slot")
    ):  # a name with capitals, as IBM's manual procedure has it
        yield


def test_bad_pillar_fails_highstate_naming_the_key_and_changes_nothing(lab, salt_cli, bad_pillar):
    lab.dr.sql("ALTER SYSTEM SET hot_standby_feedback = off")  # drift a good run would repair
    try:
        ret = salt_cli.run("state.highstate", minion_tgt="server_dr", _timeout=300)
        assert ret.returncode != 0
        assert "mfa_ha:nodes:server_dr:slot" in ret.stdout
        assert _setting(lab.dr, "hot_standby_feedback") == "off"
    finally:
        lab.dr.sql("ALTER SYSTEM SET hot_standby_feedback = on")


def test_bad_pillar_fails_setup_before_any_step(lab, salt_run, bad_pillar):
    ret = salt_run.run("state.orchestrate", "mfa_ha.orch.setup", _timeout=600)
    assert ret.returncode != 0
    steps = orch_steps(ret)
    assert "mfa_ha:nodes:server_dr:slot" in json.dumps(steps["pillar is valid on every node"])
    assert [sid for sid, step in steps.items() if step["changes"] and step["result"]] == []
    assert len(steps) == 1, "failhard: no step after the validation ran"


@pytest.fixture
def dr_without_certificate(lab, salt_cli):
    with pillar_edited(lab, salt_cli, ["server_dr"], lambda mfa: mfa["tls"].pop("cert")):
        yield


def test_a_node_without_its_certificate_is_refused_naming_the_key(lab, salt_cli, dr_without_certificate):
    before = os.stat(os.path.join(lab.dr.root, "mfa_ha-tls", "server.crt")).st_mtime_ns
    lab.dr.sql("ALTER SYSTEM SET hot_standby_feedback = off")  # drift a good run would repair
    try:
        ret = salt_cli.run("state.highstate", minion_tgt="server_dr", _timeout=300)
        assert ret.returncode != 0 and "mfa_ha:tls:cert: missing" in ret.stdout
        assert _setting(lab.dr, "hot_standby_feedback") == "off"
        assert os.stat(os.path.join(lab.dr.root, "mfa_ha-tls", "server.crt")).st_mtime_ns == before
    finally:
        lab.dr.sql("ALTER SYSTEM SET hot_standby_feedback = on")


def test_a_node_that_is_no_minion_gets_no_slot(lab, salt_cli):
    """A node in mfa_ha:nodes that does not exist must not get a slot on
    the primary (an inactive slot holds WAL until the disk fills)."""
    add_ghost = lambda mfa: mfa["nodes"].update(server_ghost={"address": "127.0.0.9"})  # noqa: E731
    with pillar_edited(lab, salt_cli, EVERYONE, add_ghost):
        seen = highstate(salt_cli, "server_prod", test=True)
        assert "no slot for server_ghost while it does not answer" in seen
        assert "slot for server_ghost" not in seen
        highstate(salt_cli, "server_prod")
        assert not _slot_exists(lab.prod, "server_ghost")
        assert _slot_exists(lab.prod, "server_dr")
    highstate(salt_cli, "server_prod")  # the ghost's hba and pgpass entries go again
    assert changed(highstate(salt_cli, "server_prod", test=True)) == {}
