"""TLS pillar checks: each wrong or missing piece named by its key, before anything changes."""

import datetime

import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.postgres.tls import check_node, tls_config
from mfa_ha_lab.certs import LabCA

REMOTE = {"server_prod": {"address": "198.18.1.10"}, "server_dr": {"address": "198.18.2.10"}}
LOOPBACK = {"server_prod": {"address": "127.0.0.2"}, "server_dr": {"address": "127.0.0.3"}}
DATA_DIR = "/opt/IBM/powersc/MFA/mfadb"


@pytest.fixture(scope="module")
def ca():
    return LabCA()


def node_pillar(ca, address="198.18.1.10", **changes):
    cert, key = ca.issue("server_prod", [address])
    return {"ca": ca.pem, "cert": cert, "key": key, **changes}


def test_on_by_default_when_a_node_is_on_another_host():
    assert tls_config(None, LOOPBACK, DATA_DIR).enabled is False
    with pytest.raises(InvalidInput, match="mfa_ha:tls:ca: missing"):
        tls_config(None, REMOTE, DATA_DIR)


def test_a_good_node_certificate_gives_files_settings_and_client_parameters(ca):
    cfg = tls_config(node_pillar(ca), REMOTE, DATA_DIR, "server_prod")
    assert cfg.dir == "/opt/IBM/powersc/MFA/mfa_ha-tls"  # beside the data directory, never in it
    assert cfg.client_params()["sslmode"] == "verify-full"
    assert cfg.client_params()["sslrootcert"] == "/opt/IBM/powersc/MFA/mfa_ha-tls/root.crt"
    assert cfg.server_settings() == {
        "ssl": "on",
        "ssl_cert_file": "/opt/IBM/powersc/MFA/mfa_ha-tls/server.crt",
        "ssl_key_file": "/opt/IBM/powersc/MFA/mfa_ha-tls/server.key",
    }
    assert cfg.files()[cfg.key_path][1] == 0o600
    assert "PRIVATE KEY" not in repr(cfg)  # the key never reaches a log line through repr


@pytest.mark.parametrize(
    "change, named",
    [
        ({"cert": ""}, "mfa_ha:tls:cert: missing"),
        ({"key": None}, "mfa_ha:tls:key: missing"),
        ({"cert": "not a certificate"}, "mfa_ha:tls:cert: is not a PEM certificate"),
        ({"key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}, "mfa_ha:tls:key: is not"),
        ({"mode": "require"}, "mfa_ha:tls:mode"),
        ({"enabled": "yes"}, "mfa_ha:tls:enabled"),
        ({"dir": "relative/dir"}, "mfa_ha:tls:dir"),
        ({"ciphers": "x"}, "mfa_ha:tls: unknown key"),
    ],
)
def test_each_bad_value_is_named(ca, change, named):
    with pytest.raises(InvalidInput, match=named):
        tls_config(node_pillar(ca, **change), REMOTE, DATA_DIR, "server_prod")


def test_a_key_of_another_certificate_is_named(ca):
    _, other_key = ca.issue("server_dr", ["198.18.2.10"])
    with pytest.raises(InvalidInput, match="mfa_ha:tls:key: does not belong"):
        tls_config(node_pillar(ca, key=other_key), REMOTE, DATA_DIR, "server_prod")


def test_a_certificate_of_another_ca_is_named(ca):
    cert, key = LabCA("another CA").issue("server_prod", ["198.18.1.10"])
    with pytest.raises(InvalidInput, match="mfa_ha:tls:cert: not signed by the CA"):
        tls_config({"ca": ca.pem, "cert": cert, "key": key}, REMOTE, DATA_DIR, "server_prod")


def test_a_certificate_for_another_address_is_named_unless_verify_ca(ca):
    pillar = node_pillar(ca, address="198.18.9.9")
    with pytest.raises(InvalidInput, match="does not name this node's address 198.18.1.10.*198.18.9.9"):
        tls_config(pillar, REMOTE, DATA_DIR, "server_prod")
    assert tls_config({**pillar, "mode": "verify-ca"}, REMOTE, DATA_DIR, "server_prod").mode == "verify-ca"


def test_an_expired_certificate_is_named(ca):
    cfg = tls_config(node_pillar(ca), REMOTE, DATA_DIR)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    with pytest.raises(InvalidInput, match="mfa_ha:tls:cert: not valid now"):
        check_node(cfg, "198.18.1.10", now=later)
