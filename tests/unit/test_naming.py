import pytest

from mfa_ha.errors import InvalidInput
from mfa_ha.postgres.naming import (
    build_conninfo,
    parse_conninfo,
    slot_name,
    validate_role_name,
    validate_slot_name,
)


@pytest.mark.parametrize(
    "minion_id,slot",
    [("server_prod", "server_prod"), ("ServerA", "servera"), ("mfa-dr.example.com", "mfa_dr_example_com")],
)
def test_slot_name_from_minion_id(minion_id, slot):
    assert slot_name(minion_id) == slot
    assert validate_slot_name(slot_name(minion_id)) == slot


def test_long_ids_keep_distinct_slots():
    a, b = "x" * 70 + "a", "x" * 70 + "b"
    assert slot_name(a) != slot_name(b)
    assert all(len(slot_name(i)) <= 63 for i in (a, b))


@pytest.mark.parametrize("bad", ["ServerA_slot", "prod-slot", "", "a" * 64, "slot name"])
def test_invalid_slot_names_are_refused_with_the_rule(bad):
    with pytest.raises(InvalidInput, match="a-z, 0-9, _"):
        validate_slot_name(bad)


def test_empty_minion_id_has_no_slot():
    with pytest.raises(InvalidInput):
        slot_name(" ")


def test_role_name_validation():
    assert validate_role_name("replicamfa") == "replicamfa"
    with pytest.raises(InvalidInput, match="invalid role name"):
        validate_role_name("Replica; DROP")


def test_conninfo_round_trip_with_quoting():
    text = build_conninfo(
        host="192.168.1.1", port=5432, user="replicamfa", passfile="/home/it's here/.pgpass", application_name=None
    )
    assert "application_name" not in text
    assert parse_conninfo(text) == {
        "host": "192.168.1.1",
        "port": "5432",
        "user": "replicamfa",
        "passfile": "/home/it's here/.pgpass",
    }


def test_conninfo_refuses_passwords():
    with pytest.raises(InvalidInput, match="pgpass"):
        build_conninfo(host="h", password="secret")


def test_a_conninfo_libpq_rejects_has_no_keys():
    assert parse_conninfo("host='unterminated") == {}
    assert parse_conninfo("") == {}
    assert parse_conninfo("host=a application_name='x y'") == {"host": "a", "application_name": "x y"}
