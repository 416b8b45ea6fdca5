"""pmfad control through the AIX SRC stand-in, and the replication secret staying secret."""

import json
import os
import pwd
import stat

from mfa_ha_lab.lab import LAB_PASSWORD


def test_pmfad_stop_and_start_are_checked_with_lssrc(lab, prod):
    assert prod.pmfad.backend() == "src"
    assert prod.pmfad.status()["state"] == "running"
    assert prod.pmfad.health()["healthy"] is True
    assert prod.pmfad.stop() is True
    assert prod.pmfad.status() == {
        "service": "pmfad",
        "manager": "src",
        "state": "stopped",
        "pid": None,
        "detail": "inoperative",
    }
    assert lab.prod.app_pid() is None
    down = prod.pmfad.health()
    assert down["healthy"] is False and "Connection refused" in down["error"]
    assert prod.pmfad.stop() is False
    assert prod.pmfad.start() is True
    assert prod.pmfad.status()["pid"] == lab.prod.app_pid()
    assert prod.pmfad.health(wait=15)["healthy"] is True
    assert prod.pmfad.start() is False


def test_pmfad_on_a_standby_reports_unhealthy_not_running_writes(lab, dr, prod):
    # dr's own database is a separate primary before setup; stop it under pmfad to see a 503
    dr.pmfad.start()
    try:
        dr.pgrepl.stop()
        result = dr.pmfad.health()
        assert result["healthy"] is False and result["status_code"] == 503
    finally:
        dr.pgrepl.start()
        dr.pmfad.stop()


def test_secret_never_in_returns_files_or_command_lines(lab, prod, dr):
    for loaders in (prod, dr):
        loaders.pgrepl.apply_tls()
    prod.pgrepl.apply_settings()  # ssl on (a reload suffices)
    prod.pgrepl.set_replication_user()
    prod.pgrepl.create_slot(lab.dr.slot)
    dr.pgrepl.set_pgpass(lab.prod.address, lab.prod.port)
    pgpass = lab.dr.pgpass
    info = os.stat(pgpass)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert pwd.getpwuid(info.st_uid).pw_name == "postgres"
    dr.pgrepl.stop()
    try:
        returned = dr.pgrepl.basebackup(lab.prod.address, slot=lab.dr.slot)
    finally:
        dr.pgrepl.start()
    assert dr.pgrepl.configure_standby(lab.prod.address, slot=lab.dr.slot)["changed"] == []  # idempotent
    config = dr.pgrepl.standby_config()
    status = dr.pgrepl.status()
    for blob in (returned, config, status, prod.pgrepl.status()):
        assert LAB_PASSWORD not in json.dumps(blob, default=str)
    assert "passfile=" in config["primary_conninfo"] and "password" not in config["primary_conninfo"]
    for name in ("postgresql.auto.conf", "postgresql.conf"):
        with open(os.path.join(lab.dr.data_dir, name), encoding="utf-8") as fh:
            assert LAB_PASSWORD not in fh.read()
    with open(lab.dr.root + "/postgresql.log", encoding="utf-8", errors="replace") as fh:
        assert LAB_PASSWORD not in fh.read()
    with open(lab.prod.root + "/postgresql.log", encoding="utf-8", errors="replace") as fh:
        assert LAB_PASSWORD not in fh.read()
