import os
import stat

import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.postgres.config import postgres_config, replication_config
from mfa_ha.postgres.secrets import pgpass_has, scram_matches, write_pgpass
from mfa_ha.postgres.settings import diff, normalise


def test_scram_check_rejects_other_formats():
    # a verifier made by a real server is checked in tests/functional
    assert not scram_matches("md5" + "0" * 32, "s3cret:pw")
    assert not scram_matches("SCRAM-SHA-256$bad", "s3cret:pw")
    assert not scram_matches(None, "x")


def test_pgpass_written_once_mode_0600_and_replaced(tmp_path):
    path = str(tmp_path / "pgpass")
    assert write_pgpass(path, "root", "10.0.0.1", 5432, "replicamfa", "a:b\\c")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not write_pgpass(path, "root", "10.0.0.1", 5432, "replicamfa", "a:b\\c")
    assert pgpass_has(path, "10.0.0.1", 5432, "replicamfa", "a:b\\c")
    assert write_pgpass(path, "root", "10.0.0.1", 5432, "replicamfa", "new")
    write_pgpass(path, "root", "10.0.0.2", 5432, "replicamfa", "other")
    lines = open(path).read().splitlines()
    assert lines == ["10.0.0.1:5432:*:replicamfa:new", "10.0.0.2:5432:*:replicamfa:other"]


@pytest.mark.parametrize(
    "pillar,key",
    [
        ({"data_dir": "relative/dir"}, "mfa_ha:postgres:data_dir"),
        ({"port": "fivefourthreetwo"}, "mfa_ha:postgres:port"),
        ({"port": 70000}, "mfa_ha:postgres:port"),
        ({"os_user": "no_such_user_here"}, "mfa_ha:postgres:os_user"),
        ({"datadir": "/x"}, "datadir"),
        ("not a mapping", "mfa_ha:postgres"),
    ],
)
def test_bad_postgres_pillar_names_the_key(pillar, key):
    with pytest.raises(InvalidInput, match=key):
        postgres_config(pillar)


def test_mfa_defaults_and_overrides():
    cfg = postgres_config({}, port="5433")
    assert cfg.data_dir == "/opt/IBM/powersc/MFA/mfadb" and cfg.port == 5433 and cfg.os_user == "postgres"
    assert replication_config(None).user == "replicamfa"
    with pytest.raises(InvalidInput, match="connection_limit"):
        replication_config({"connection_limit": "five"})


@pytest.mark.parametrize("a,b", [("1GB", "1024MB"), ("on", "true"), ("10", " 10 "), ("5s", "5000ms")])
def test_setting_values_compare_by_meaning(a, b):
    assert normalise(a) == normalise(b)


def test_settings_diff_lists_old_and_new():
    current = {"wal_level": {"value": "replica"}, "hot_standby_feedback": {"value": "off"}}
    assert diff(current, {"wal_level": "replica", "hot_standby_feedback": "on"}) == {
        "hot_standby_feedback": {"old": "off", "new": "on"}
    }


def test_pillar_value_reads_plain_values_and_resolves_sdb_at_any_depth():
    from mfa_ha.adapters.saltface import pillar_value

    store = {"sdb://vault/repl": "s3cret"}
    pillar = {
        "mfa_ha": {
            "replication": {"password": "sdb://vault/repl"},
            "nodes": {"a": {"address": "x"}},
            "list": ["sdb://vault/repl", 1],
        }
    }
    assert pillar_value(pillar, "mfa_ha:replication:password", None, store.get) == "s3cret"
    assert pillar_value(pillar, "mfa_ha:list", None, store.get) == ["s3cret", 1]
    assert pillar_value(pillar, "mfa_ha:nodes:a", None) == {"address": "x"}
    assert pillar_value(pillar, "mfa_ha:missing:deeper", {"d": 1}) == {"d": 1}
    assert pillar_value(pillar, "mfa_ha:replication:password") == "sdb://vault/repl"  # no resolver: as given


def test_an_sdb_reference_that_does_not_resolve_is_an_error_naming_its_key():
    from mfa_ha.adapters.saltface import pillar_value
    from mfa_ha.errors import InvalidInput

    pillar = {"mfa_ha": {"replication": {"password": "sdb://nowhere/repl"}}}
    unresolved = {}.get  # sdb.get hands an unconfigured profile's uri back as it is
    with pytest.raises(InvalidInput, match=r"mfa_ha:replication:password: sdb://nowhere/repl does not resolve"):
        pillar_value(pillar, "mfa_ha", None, lambda uri: unresolved(uri, uri))


def test_pillar_value_unwraps_salt_3008_masked_containers():
    secret = pytest.importorskip("salt.utils.secret")
    from mfa_ha.adapters.saltface import pillar_value

    pillar = secret.MaskedDict({"mfa_ha": {"replication": {"password": "pw"}, "hosts": ["a"]}})
    value = pillar_value(pillar, "mfa_ha", None)
    assert value == {"replication": {"password": "pw"}, "hosts": ["a"]}
    assert type(value) is dict and type(value["replication"]) is dict and type(value["hosts"]) is list
