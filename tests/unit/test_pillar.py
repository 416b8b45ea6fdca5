import copy
import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from mfa_ha.adapters.pillar import validate
from mfa_ha.adapters.saltface import translate_errors
from mfa_ha.errors import InvalidInput

GOOD = {
    "nodes": {"server_prod": {"address": "192.168.1.1"}, "server_dr": {"address": "mfa-dr.example.com", "port": 5433}},
    "primary": "server_prod",
    "postgres": {"data_dir": "/opt/IBM/powersc/MFA/mfadb"},
    "replication": {"user": "replicamfa", "password": "x"},
    "pmfad": {"manager": "src"},
    "tls": {"ca": "-----BEGIN CERTIFICATE-----\n(checked on each minion)\n-----END CERTIFICATE-----"},
}


def test_good_pillar_gives_nodes_with_derived_slots():
    nodes = validate(GOOD)
    assert nodes == {
        "server_prod": {"address": "192.168.1.1", "port": 5432, "slot": "server_prod"},
        "server_dr": {"address": "mfa-dr.example.com", "port": 5433, "slot": "server_dr"},
    }


@pytest.mark.parametrize(
    "path,value,key",
    [
        (("primary",), "server_a", "mfa_ha:primary: unknown node id 'server_a'"),
        (("nodes", "server_dr", "address"), "192.169.1", "mfa_ha:nodes:server_dr:address"),
        (("nodes", "server_dr", "address"), "not an address!", "mfa_ha:nodes:server_dr:address"),
        (("nodes", "server_dr", "slot"), "ServerB_slot", "mfa_ha:nodes:server_dr:slot"),
        (("postgres", "data_dir"), "mfadb", "mfa_ha:postgres:data_dir"),
        (("replication", "password"), "", "mfa_ha:replication:password"),
        (("nodes", "server_dr", "port"), "x", "mfa_ha:nodes:server_dr:port"),
    ],
)
def test_each_bad_value_is_named_by_its_key(path, value, key):
    pillar = copy.deepcopy(GOOD)
    target = pillar
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(InvalidInput, match=key):
        validate(pillar)


def test_all_problems_are_listed_at_once():
    pillar = copy.deepcopy(GOOD)
    pillar["primary"] = "nobody"
    pillar["postgres"]["data_dir"] = "rel"
    with pytest.raises(InvalidInput) as err:
        validate(pillar)
    assert "mfa_ha:primary" in str(err.value) and "mfa_ha:postgres:data_dir" in str(err.value)


def test_missing_nodes_is_named():
    with pytest.raises(InvalidInput, match="mfa_ha:nodes"):
        validate({"replication": {"password": "x"}})


def test_a_misspelt_top_level_key_is_named():
    with pytest.raises(InvalidInput, match="mfa_ha: unknown key.*replicaton"):
        validate({"nodes": {"a": {"address": "10.0.0.1"}}, "replicaton": {}})


def test_the_example_pillar_is_valid():
    import os

    import yaml

    path = os.path.join(os.path.dirname(__file__), "..", "..", "pillar", "mfa_ha.sls")
    with open(path, encoding="utf-8") as fh:
        example = yaml.safe_load(fh)["mfa_ha"]
    assert set(validate(example)) == {"server_prod", "server_dr"}


def test_bad_alert_target_and_requesters_are_named():
    bad = copy.deepcopy(GOOD)
    bad["alerts"] = {"targets": [{"mail": "ops@example.com"}]}
    bad["switchover"] = {"requesters": "server_prod"}
    with pytest.raises(InvalidInput) as err:
        validate(bad)
    assert "mfa_ha:alerts:targets:0" in str(err.value) and "mfa_ha:switchover:requesters" in str(err.value)


def test_tls_is_required_between_hosts_naming_the_key():
    pillar = copy.deepcopy(GOOD)
    del pillar["tls"]
    with pytest.raises(InvalidInput, match="mfa_ha:tls:ca: missing"):
        validate(pillar)
    pillar["tls"] = {"enabled": False}  # an explicit choice is respected
    assert set(validate(pillar)) == {"server_prod", "server_dr"}


def _render_example_pillar(tmp_path, minion_id):
    """The repository's example pillar tree as a master renders it for ``minion_id``."""
    import salt.config
    import salt.pillar

    opts = salt.config.master_config(None)
    opts.update(
        pillar_roots={"base": [os.path.join(os.path.dirname(__file__), "..", "..", "pillar")]},
        file_roots={"base": [str(tmp_path)]},
        cachedir=str(tmp_path / "cache"),
        pki_dir=str(tmp_path / "pki"),
        sock_dir=str(tmp_path / "sock"),
        extension_modules=str(tmp_path / "ext"),
    )
    return salt.pillar.get_pillar(opts, {}, minion_id, saltenv="base").compile_pillar()


def test_the_example_pillar_top_reaches_the_nodes_and_the_masters_own_id(tmp_path):
    """The runner and the orchestrations read mfa_ha:nodes from the master's own pillar
    (default id "<hostname>_master"): the shipped top must target it, not only the nodes."""
    for minion_id in ("server_prod", "server_dr", "mfa1.example.com_master"):
        assert set(_render_example_pillar(tmp_path, minion_id)["mfa_ha"]["nodes"]) == {"server_prod", "server_dr"}
    assert "mfa_ha" not in _render_example_pillar(tmp_path, "some_other_minion")


def test_a_node_name_that_does_not_resolve_is_named_by_its_key():
    import socket

    from mfa_ha.adapters.pillar import unresolvable

    def resolve(name, port):
        if name != "mfa-dr.example.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]

    nodes = {
        "server_prod": {"address": "192.168.1.1"},
        "server_dr": {"address": "ServerB"},
        "server_dr2": {"address": "mfa-dr.example.com"},
    }
    assert unresolvable(nodes, resolve) == [
        "mfa_ha:nodes:server_dr:address: 'ServerB' does not resolve on this "
        "node (Name or service not known): use an IP address or a name it "
        "resolves"
    ]


def test_a_bad_pillar_is_an_error_of_the_call_and_a_bad_argument_an_invalid_argument():
    """salt-call frames SaltInvocationError as "Passed invalid arguments" plus the docstring:
    right for an argument, wrong for a pillar."""

    @translate_errors
    def check_pillar():
        validate({"replication": {"password": "x"}})

    @translate_errors
    def check_argument():
        raise InvalidInput("mode: use smart, fast or immediate")

    with pytest.raises(CommandExecutionError, match="mfa_ha:nodes") as err:
        check_pillar()
    assert not isinstance(err.value, SaltInvocationError)
    with pytest.raises(SaltInvocationError, match="mode"):
        check_argument()
