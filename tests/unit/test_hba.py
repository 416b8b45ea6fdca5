import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.postgres import hba

NODES = {"server_prod": {"address": "192.168.1.1"}, "server_dr": {"address": "192.169.1.2"}}
SITE_FILE = "# site rules\nlocal all all peer\nhost all all 0.0.0.0/0 reject\n"


def test_peers_get_replication_and_rewind_entries_with_scram():
    lines = [e.line for e in hba.wanted_entries(NODES, "replicamfa", None)]
    assert "host  replication  replicamfa  192.169.1.2/32  scram-sha-256" in lines
    assert "host  postgres  replicamfa  192.168.1.1/32  scram-sha-256" in lines
    assert len(lines) == 4


def test_trust_for_a_remote_address_is_refused_naming_the_key():
    with pytest.raises(InvalidInput, match="mfa_ha:hba.*192.169.1.2/32.*allow_trust"):
        hba.wanted_entries(NODES, "replicamfa", {"method": "trust"})
    allowed = hba.wanted_entries(NODES, "replicamfa", {"method": "trust", "allow_trust": True})
    assert {e.method for e in allowed} == {"trust"}


def test_trust_for_loopback_is_allowed():
    entries = hba.wanted_entries(
        NODES,
        "replicamfa",
        {
            "entries": [
                {"type": "host", "database": "all", "user": "monitor", "address": "127.0.0.1/32", "method": "trust"}
            ]
        },
    )
    assert entries[-1].line.endswith("127.0.0.1/32  trust")


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"type": "hots", "address": "10.0.0.1"}, "mfa_ha:hba:entries:0:type"),
        ({"address": "10.0.0.300"}, "mfa_ha:hba:entries:0:address"),
        ({"address": "10.0.0.1", "method": "passwd"}, "mfa_ha:hba:entries:0:method"),
        ({"address": "10.0.0.1", "user": "two words"}, "mfa_ha:hba:entries:0:user"),
        ({"type": "host"}, "mfa_ha:hba:entries:0:address"),
    ],
)
def test_bad_entries_name_their_key(raw, key):
    with pytest.raises(InvalidInput, match=key):
        hba.wanted_entries(NODES, "replicamfa", {"entries": [raw]})


def test_block_goes_on_top_keeps_the_site_rules_and_is_stable():
    entries = hba.wanted_entries(NODES, "replicamfa", None)
    text = hba.with_block(SITE_FILE, entries)
    assert text.startswith(hba.BEGIN)
    assert text.endswith(SITE_FILE)
    assert hba.with_block(text, entries) == text
    assert hba.diff(text, entries) == {"missing": [], "unexpected": [], "foreign": [], "differs": False}


def test_a_removed_line_is_missing_and_a_hand_added_one_unexpected():
    entries = hba.wanted_entries(NODES, "replicamfa", None)
    text = hba.with_block(SITE_FILE, entries)
    drifted = text.replace(entries[0].line, "host  all  all  10.9.9.9/32  trust")
    found = hba.diff(drifted, entries)
    assert found["missing"] == [" ".join(entries[0].line.split())]
    assert found["unexpected"] == ["host all all 10.9.9.9/32 trust"]
    repaired = hba.with_block(drifted, entries)
    assert "10.9.9.9" not in repaired and repaired.endswith(SITE_FILE)


BLOCK_ENTRIES = hba.wanted_entries(NODES, "replicamfa", None, tls=True)


def test_peer_lines_are_hostssl_when_tls_is_on():
    assert {e.type for e in BLOCK_ENTRIES} == {"hostssl"}


def test_a_line_above_the_block_is_found_and_the_block_moved_back_to_the_top():
    text = hba.with_block(SITE_FILE, BLOCK_ENTRIES)
    drifted = "host replication all 192.169.1.0/24 md5\n" + text
    found = hba.diff(drifted, BLOCK_ENTRIES)
    assert found["differs"] and found["foreign"] == [
        {"line": 1, "text": "host replication all 192.169.1.0/24 md5", "problem": "above the mfa-ha block"}
    ]
    repaired = hba.with_block(drifted, BLOCK_ENTRIES, found["foreign"])
    assert repaired.splitlines()[0] == hba.BEGIN
    assert "host replication all 192.169.1.0/24 md5" in repaired  # kept, below the block
    assert hba.diff(repaired, BLOCK_ENTRIES)["differs"] is False
    assert hba.with_block(repaired, BLOCK_ENTRIES) == repaired  # idempotent


@pytest.mark.parametrize(
    "line, remote",
    [
        ("host all all 0.0.0.0/0 trust", True),
        ("host all all 0.0.0.0 0.0.0.0 trust", True),
        ("hostssl all all samenet trust", True),
        ("host all all 127.0.0.1/32 trust", False),
        ("local all all trust", False),
        ("host all all 0.0.0.0/0 scram-sha-256", False),
    ],
)
def test_trust_for_a_non_local_address_anywhere_is_found_and_disabled(line, remote):
    text = hba.with_block(SITE_FILE, BLOCK_ENTRIES) + line + "\n"
    found = hba.diff(text, BLOCK_ENTRIES)["foreign"]
    assert [f["problem"] for f in found] == (["trust for a non-local address"] if remote else [])
    if remote:
        repaired = hba.with_block(text, BLOCK_ENTRIES, found)
        assert f"# disabled by mfa-ha (trust for a non-local address): {line}" in repaired
        assert hba.diff(repaired, BLOCK_ENTRIES)["differs"] is False
        assert hba.diff(text, BLOCK_ENTRIES, allow_trust=True)["foreign"] == []


def test_local_lines_above_the_block_are_not_drift():
    text = "local all postgres peer\n" + hba.with_block(SITE_FILE, BLOCK_ENTRIES)
    assert hba.diff(text, BLOCK_ENTRIES)["foreign"] == []


def test_an_unknown_foreign_policy_is_named():
    with pytest.raises(InvalidInput, match="mfa_ha:hba:foreign"):
        hba.wanted_entries(NODES, "replicamfa", {"foreign": "ignore"})


def test_a_remote_trust_line_above_the_block_is_disabled_not_just_moved_below():
    text = "host all all 0.0.0.0/0 trust\n" + hba.with_block(SITE_FILE, BLOCK_ENTRIES)
    found = hba.diff(text, BLOCK_ENTRIES)["foreign"]
    assert [f["problem"] for f in found] == ["trust for a non-local address"]
    repaired = hba.with_block(text, BLOCK_ENTRIES, found)
    assert repaired.startswith(hba.BEGIN) and "\nhost all all 0.0.0.0/0 trust" not in repaired
