"""States against the real lab: idempotent, and test=True tells the truth without acting."""

import os
import pwd
import stat
import time

import pytest


@pytest.fixture(scope="module")
def prod_loaders(salt_factories, lab):
    from tests.support import node_loaders

    return node_loaders(salt_factories, lab, lab.prod, variant="-states")


def test_slot_present_reports_then_creates_then_is_idempotent(lab, prod_loaders):
    states = prod_loaders.states
    pending = states.pgrepl.slot_present(name="server_states", test=True)
    assert pending.result is None and pending.changes == {"slot": {"old": None, "new": "server_states"}}
    assert not lab.prod.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'server_states'")
    made = states.pgrepl.slot_present(name="server_states")
    assert made.result is True and made.changes
    assert lab.prod.sql("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'server_states'")
    again = states.pgrepl.slot_present(name="server_states")
    assert again.result is True and again.changes == {}
    gone = states.pgrepl.slot_absent(name="server_states")
    assert gone.result is True and gone.changes["slot"]["new"] is None


def test_slot_state_refuses_invalid_name_even_in_test_mode(prod_loaders):
    ret = prod_loaders.states.pgrepl.slot_present(name="ServerA_slot", test=True)
    assert ret.result is False and "a-z, 0-9, _" in ret.comment


def test_replication_user_drift_seen_in_test_mode_and_repaired(lab, prod_loaders):
    states = prod_loaders.states
    assert states.pgrepl.replication_user(name="replicamfa").result is True
    assert states.pgrepl.replication_user(name="replicamfa").changes == {}
    lab.prod.sql("ALTER ROLE replicamfa PASSWORD 'drifted' CONNECTION LIMIT 2")
    pending = states.pgrepl.replication_user(name="replicamfa", test=True)
    assert pending.result is None
    assert pending.changes == {"replication_user": ["connection limit 2 -> 5", "password"]}
    assert lab.prod.sql("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'replicamfa'")[0][0] == 2
    fixed = states.pgrepl.replication_user(name="replicamfa")
    assert fixed.result is True and "password" in fixed.comment
    assert states.pgrepl.replication_user(name="replicamfa", test=True).changes == {}


def test_ssl_is_not_switched_on_before_the_tls_files_exist(lab, prod_loaders):
    if not lab.ca:
        pytest.skip(f"PostgreSQL {lab.major} here is built without OpenSSL")
    states = prod_loaders.states
    refused = states.pgrepl.settings(name="replication settings", restart=True)
    assert refused.result is False and "TLS files missing" in refused.comment and "pgrepl.tls" in refused.comment
    assert lab.prod.sql("SHOW ssl")[0][0] == "off" and lab.prod.is_running()
    pending = states.pgrepl.tls(name="TLS files", test=True)
    assert pending.result is None and len(pending.changes["tls"]["written"]) == 3
    written = states.pgrepl.tls(name="TLS files")
    assert written.result is True and states.pgrepl.tls(name="TLS files").changes == {}
    key = os.stat(os.path.join(lab.prod.root, "mfa_ha-tls", "server.key"))
    assert stat.S_IMODE(key.st_mode) == 0o600 and pwd.getpwuid(key.st_uid).pw_name == "postgres"


def test_settings_drift_seen_and_repaired_with_restart_note(lab, prod_loaders):
    states = prod_loaders.states
    assert states.pgrepl.settings(name="replication settings", restart=True).result is True
    assert lab.prod.sql("SHOW ssl")[0][0] == ("on" if lab.ca else "off")  # off: a build without OpenSSL
    assert states.pgrepl.settings(name="replication settings").changes == {}
    lab.prod.sql("ALTER SYSTEM SET hot_standby_feedback = off")
    lab.prod.sql("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while lab.prod.sql("SHOW hot_standby_feedback")[0][0] != "off":  # the reload is asynchronous
        assert time.monotonic() < deadline, "reload did not apply within 10 s"
        time.sleep(0.05)
    pending = states.pgrepl.settings(name="replication settings", test=True)
    assert pending.result is None and pending.changes == {"hot_standby_feedback": {"old": "off", "new": "on"}}
    fixed = states.pgrepl.settings(name="replication settings")
    assert fixed.result is True and fixed.changes["hot_standby_feedback"]["new"] == "on"
    assert lab.prod.sql("SHOW hot_standby_feedback")[0][0] == "on"


def test_pmfad_dead_and_running(lab, prod_loaders):
    states = prod_loaders.states
    assert states.pmfad.running(name="pmfad").changes == {}
    pending = states.pmfad.dead(name="pmfad", test=True)
    assert pending.result is None and lab.prod.app_pid()
    stopped = states.pmfad.dead(name="pmfad")
    assert stopped.result is True and stopped.changes == {"state": {"old": "running", "new": "stopped"}}
    assert lab.prod.app_pid() is None
    started = states.pmfad.running(name="pmfad")
    assert started.result is True and lab.prod.app_pid()


def test_a_restart_only_setting_pending_in_the_files_is_drift(lab, prod_loaders):
    """ALTER SYSTEM SET wal_log_hints = off without a restart: pg_file_settings marks it "setting
    could not be applied"; the next restart would make pg_rewind impossible."""
    states = prod_loaders.states
    lab.prod.sql("ALTER SYSTEM SET wal_log_hints = off")
    lab.prod.sql("SELECT pg_reload_conf()")
    pending = states.pgrepl.settings(name="replication settings", test=True)
    assert pending.result is None and pending.changes["wal_log_hints"]["old"] == "on (config files: off)"
    fixed = states.pgrepl.settings(name="replication settings")
    assert fixed.result is True and "wal_log_hints" in fixed.changes
    assert states.pgrepl.settings(name="replication settings").changes == {}


def test_a_pending_restart_is_reported_as_not_converged(lab, prod_loaders):
    states = prod_loaders.states
    lab.prod.sql("ALTER SYSTEM SET max_wal_senders = 9")
    lab.prod.sql("SELECT pg_reload_conf()")
    try:
        assert states.pgrepl.settings(name="replication settings").result is True  # files repaired
        lab.prod.sql("ALTER SYSTEM SET max_wal_senders = 9")
        lab.stop_db(lab.prod)
        lab.start_db(lab.prod)  # running with 9 now
        lab.prod.sql("ALTER SYSTEM SET max_wal_senders = 10")
        lab.prod.sql("SELECT pg_reload_conf()")
        pending = states.pgrepl.settings(name="replication settings", test=True)
        assert pending.result is None and pending.changes["restart"]["new"].startswith("pending")
        left = states.pgrepl.settings(name="replication settings")
        assert left.result is False and "not converged until PostgreSQL restarts" in left.comment
        done = states.pgrepl.settings(name="replication settings", restart=True)
        assert done.result is True and done.changes["restarted"] is True
        assert lab.prod.sql("SHOW max_wal_senders")[0][0] == "10"
    finally:
        lab.start_db(lab.prod)
