"""The deadline a long operation's steps share, and how pg_waldump's answer is read when the
rejoin asks whether a node holds WAL past the fork (its output as PostgreSQL 15 writes it)."""

import pytest

from mfa_ha.pair import divergence
from mfa_ha.proc import Result
from mfa_ha.waiting import Deadline, DeadlinePassed


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_each_step_gets_what_is_left_of_the_bound():
    clock = Clock()
    deadline = Deadline(60, "making x a standby", clock)
    assert deadline.left() == 60
    clock.now += 45.5
    assert deadline.left() == 15  # rounded up to whole seconds
    clock.now += 14.3
    assert deadline.left() == 1  # a step always gets a second, to fail with its own message


def test_a_step_after_the_bound_is_refused_naming_the_operation():
    clock = Clock()
    deadline = Deadline(30, "making x a standby", clock)
    clock.now += 30
    with pytest.raises(DeadlinePassed, match="making x a standby: its bound of 30 s is used up"):
        deadline.left()


class WalServer:
    """What ``holds_wal_from`` uses of a Server: its data directory and ``run``."""

    data_dir = "/data"

    def __init__(self, returncode, stdout="", stderr=""):
        self.answer = Result(["pg_waldump"], returncode, stdout, stderr)
        self.args = None

    def run(self, *args, **kwargs):
        self.args = args
        return self.answer


RECORD = (
    "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/0301B9D8, prev 0/0301B960, "
    "desc: CHECKPOINT_ONLINE redo 0/301B9A0; tli 3; prev tli 3\n"
)


@pytest.mark.parametrize(
    "returncode, stdout, stderr, holds",
    [
        (0, RECORD, "", True),
        (1, "", "pg_waldump: error: could not find a valid record after 0/301B9D8\n", False),
        (
            1,
            "",
            'pg_waldump: error: could not find file "000000030000000000000003": No such file or directory\n',
            False,
        ),
        (1, "", 'pg_waldump: error: could not open directory "/data/pg_wal": Permission denied\n', True),
        (1, "", "pg_waldump: error: could not find any WAL file\n", True),  # another major's WAL: not a proof
        (127, "", "sh: pg_waldump: not found\n", True),
    ],
    ids=["a record there", "none after the point", "no segment there", "unreadable", "unrecognised", "no tool"],
)
def test_only_pg_waldump_saying_there_is_no_record_proves_the_wal_ends_before(returncode, stdout, stderr, holds):
    server = WalServer(returncode, stdout, stderr)
    assert divergence.holds_wal_from(server, 0x301B9D8, 3) is holds
    assert server.args[-6:] == ("--timeline", "3", "--start", "0/301B9D8", "--limit", "1")
