"""The state ``pgrepl.kept_aside`` without a master: ``__salt__`` stubbed with the execution
functions' specs, in test and real mode, failure branch included."""

from unittest.mock import Mock

import pytest
from salt.exceptions import CommandExecutionError

from tests.support import load_face

STATES = load_face("states", "pgrepl")
MODULES = load_face("modules", "pgrepl")
OLD = {
    "path": "/d/mfadb.moved-20261101T010203000000",
    "label": "moved",
    "stamp": "20261101T010203000000",
    "bytes": 2_000_000_000,
}
NEW = {**OLD, "path": "/d/mfadb.moved-20261103T010203000000", "stamp": "20261103T010203000000"}


@pytest.fixture(params=[False, True], ids=["real", "test"])
def salt(request):
    found = Mock(spec=MODULES.kept_aside, return_value={"kept": [OLD, NEW], "keep": 1, "remove": [OLD]})
    prune = Mock(spec=MODULES.prune_kept_aside, return_value=[OLD])
    STATES.__salt__ = {"pgrepl.kept_aside": found, "pgrepl.prune_kept_aside": prune}
    STATES.__opts__ = {"test": request.param}
    yield STATES.__salt__
    del STATES.__salt__, STATES.__opts__


def test_older_copies_are_removed_or_would_be(salt):
    ret = STATES.kept_aside()
    assert ret["changes"] == {"removed": {OLD["path"]: OLD["bytes"]}}
    if STATES.__opts__["test"]:
        assert ret["result"] is None and ret["comment"].startswith(f"would remove {OLD['path']}")
        salt["pgrepl.prune_kept_aside"].assert_not_called()
    else:
        assert ret["result"] is True and ret["comment"].startswith(f"removed {OLD['path']}")
        salt["pgrepl.prune_kept_aside"].assert_called_once_with()


def test_nothing_beyond_the_retention_changes_nothing(salt):
    salt["pgrepl.kept_aside"].return_value = {"kept": [NEW], "keep": 1, "remove": []}
    ret = STATES.kept_aside()
    assert ret["result"] is True and ret["changes"] == {} and ret["comment"] == "1 kept aside (keep_moved_aside 1)"
    salt["pgrepl.prune_kept_aside"].assert_not_called()


def test_a_failure_is_reported_with_the_error(salt):
    salt["pgrepl.kept_aside"].side_effect = CommandExecutionError("mfa_ha:postgres:data_dir: must be absolute")
    ret = STATES.kept_aside()
    assert ret["result"] is False and "mfa_ha:postgres:data_dir" in ret["comment"]
