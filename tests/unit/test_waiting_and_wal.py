"""The deadline a long operation's steps share, and how pg_waldump's answers are read: the
switchover's proof of a clean shutdown, the divergence count, and whether a node holds WAL
past the fork (recorded from each major's pg_waldump in tests/unit/data/pg_waldump)."""

import os

import pytest

from mfa_ha import lsn as lsnlib
from mfa_ha import timing
from mfa_ha.pair import divergence, switchover
from mfa_ha.proc import Result
from mfa_ha.waiting import Deadline, DeadlinePassed
from tests.support import Clock


def test_each_step_gets_what_is_left_of_the_bound():
    clock = Clock(100.0)
    deadline = Deadline(60, "making x a standby", clock)
    assert deadline.left() == 60
    clock.now += 45.5
    assert deadline.left() == 15  # rounded up to whole seconds
    clock.now += 14.3
    assert deadline.left() == 1  # a step always gets a second, to fail with its own message


def test_a_step_after_the_bound_is_refused_naming_the_operation():
    clock = Clock(100.0)
    deadline = Deadline(30, "making x a standby", clock)
    clock.now += 30
    with pytest.raises(DeadlinePassed, match="making x a standby: its bound of 30 s is used up"):
        deadline.left()


def test_a_step_gets_its_own_bound_until_less_than_that_is_left():
    clock = Clock(100.0)
    deadline = Deadline(100, "the old primary's part", clock, step=30)
    assert deadline.step() == 30
    assert deadline.step(70) == 70  # a step with a bound of its own
    clock.now += 80
    assert deadline.step() == 20
    assert deadline.step(70) == 20


def test_a_copy_with_a_bound_of_its_own_leaves_the_steps_after_it_what_was_left():
    clock = Clock(100.0)
    deadline = Deadline(60, "making x a standby", clock)
    clock.now += 20
    with deadline.excluding():
        clock.now += 3000  # pg_basebackup under COPY_SECONDS
    assert deadline.left() == 40


def test_the_old_primary_waits_out_every_step_the_target_may_take():
    for step in (5, 30, 120):
        # the target: the proof of the shutdown checkpoint, then the promotion, each within a step
        assert timing.takeover_wait(step) > 2 * step
        # the old primary's part: its stop, that wait, then the slot, the start and streaming
        assert timing.switch_part_bound(step) >= step + timing.takeover_wait(step) + 3 * step
        # the target's part: the proof, the promotion, the app healthy
        assert timing.switch_part_bound(step) >= 3 * step
        app_stop = timing.app_stop_bound(step)
        assert timing.switch_job_bound(step, app_stop) > app_stop + timing.switch_part_bound(step)


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


RECORDED = os.path.join(os.path.dirname(__file__), "data", "pg_waldump")
MAJORS = sorted(os.listdir(RECORDED), key=int)  # each major whose pg_waldump the version matrix has


def recorded(major: str, name: str) -> str:
    with open(os.path.join(RECORDED, major, name), encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("major", MAJORS)
def test_the_records_of_each_major_are_read(major):
    """The end of a cluster's WAL as each major's pg_waldump prints it (after initdb): the
    switchover's proof reads the last record's kind and position, the divergence count the
    commits."""
    lines = recorded(major, "end_of_wal.out").splitlines()
    records = [switchover.RECORD_RE.match(line) for line in lines]
    assert all(records), [line for line, m in zip(lines, records, strict=True) if not m]
    rmgr, total, lsn, desc = records[-1].groups()
    assert (rmgr, desc) == ("XLOG", "CHECKPOINT_SHUTDOWN") and int(total) > 0
    assert lsnlib.to_int(lsn) > 0 and f"redo {lsnlib.to_str(lsnlib.to_int(lsn))};" in lines[-1]
    server = WalServer(0, stdout="\n".join(lines))
    assert divergence.count_commits(server, 0, 1) == 1


@pytest.mark.parametrize("major", MAJORS)
@pytest.mark.parametrize("answer", ["after_the_end.err", "no_segment.err"])
def test_each_majors_no_record_answer_proves_the_wal_ends(major, answer):
    assert divergence.holds_wal_from(WalServer(1, stderr=recorded(major, answer)), 0x1000000, 1) is False
