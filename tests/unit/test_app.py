import pytest

from mfa_ha.app import app_config, parse_lssrc, parse_systemctl_show
from mfa_ha.errors import InvalidInput

LSSRC_ACTIVE = """Subsystem         Group            PID          Status
 pmfad                             12345        active
"""
LSSRC_INOPERATIVE = """Subsystem         Group            PID          Status
 pmfad                                          inoperative
"""
LSSRC_WITH_GROUP = """Subsystem         Group            PID          Status
 sshd             ssh              4456         active
 pmfad            mfa                           inoperative
"""


def test_lssrc_active_with_empty_group():
    row = parse_lssrc(LSSRC_ACTIVE)["pmfad"]
    assert row == {"subsystem": "pmfad", "group": None, "pid": 12345, "status": "active"}


def test_lssrc_inoperative_has_no_pid():
    row = parse_lssrc(LSSRC_INOPERATIVE)["pmfad"]
    assert row["pid"] is None and row["status"] == "inoperative" and row["group"] is None


def test_lssrc_group_column_read_from_the_right():
    rows = parse_lssrc(LSSRC_WITH_GROUP)
    assert rows["sshd"] == {"subsystem": "sshd", "group": "ssh", "pid": 4456, "status": "active"}
    assert rows["pmfad"]["group"] == "mfa" and rows["pmfad"]["pid"] is None


def test_lssrc_error_message_is_no_row():
    assert parse_lssrc("0513-085 The pmfad Subsystem is not on file.\n") == {}


def test_systemctl_show_parsing():
    props = parse_systemctl_show("ActiveState=active\nSubState=running\nMainPID=77\n")
    assert props["MainPID"] == "77" and props["ActiveState"] == "active"


@pytest.mark.parametrize(
    "os_family,pillar,manager", [("AIX", {}, "src"), ("Debian", {}, "systemd"), ("Debian", {"manager": "src"}, "src")]
)
def test_backend_chosen_by_grains_unless_pillar_names_one(os_family, pillar, manager):
    assert app_config(pillar, os_family).manager == manager


def test_unknown_manager_and_keys_are_named():
    with pytest.raises(InvalidInput, match="mfa_ha:pmfad:manager"):
        app_config({"manager": "upstart"}, "Debian")
    with pytest.raises(InvalidInput, match="helth_port"):
        app_config({"helth_port": 1}, "Debian")
