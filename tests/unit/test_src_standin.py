"""The AIX SRC stand-in knows the process it started, not merely a PID: a PID the kernel has
since given to another process does not make the subsystem active, and stopsrc never signals it."""

import json
import os
import subprocess
import sys
import time

import pytest

from mfa_ha_lab.standins import src


@pytest.fixture
def root(tmp_path):
    os.makedirs(tmp_path / "subsystems")
    with open(tmp_path / "subsystems" / "sleeper.json", "w", encoding="utf-8") as fh:
        json.dump({"command": ["sleep", "30"], "group": ""}, fh)
    yield str(tmp_path)
    pid = src.running_pid(str(tmp_path), "sleeper")
    if pid:
        os.kill(pid, 9)


def _gone(root, name, within=5.0) -> bool:
    deadline = time.monotonic() + within
    while src.running_pid(root, name) and time.monotonic() < deadline:
        time.sleep(0.02)
    return src.running_pid(root, name) is None


def test_started_subsystem_is_active_until_it_is_stopped(root, capsys):
    assert src.startsrc(root, "sleeper") == 0
    pid = src.running_pid(root, "sleeper")
    assert pid and f"Subsystem PID is {pid}." in capsys.readouterr().out
    assert src.startsrc(root, "sleeper") == 1  # 0513-029: one instance only
    assert src.stopsrc(root, "sleeper", force=False) == 0
    assert _gone(root, "sleeper")
    assert src.stopsrc(root, "sleeper", force=False) == 1  # 0513-004: inoperative
    assert "0513-004" in capsys.readouterr().err


def test_a_pid_now_held_by_another_process_is_not_the_subsystem(root, capsys):
    assert src.startsrc(root, "sleeper") == 0
    pid = src.running_pid(root, "sleeper")
    os.kill(pid, 9)
    assert _gone(root, "sleeper")
    time.sleep(0.05)  # a later clock tick, as a reused PID's process always starts after the first one
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = os.path.join(root, "run", "sleeper.pid")
        with open(pid_file, encoding="ascii") as fh:
            recorded = fh.read()
        with open(pid_file, "w", encoding="ascii") as fh:  # as if the kernel had reused the PID
            fh.write(recorded.replace(str(pid), str(other.pid), 1))
        assert src.running_pid(root, "sleeper") is None
        assert src.stopsrc(root, "sleeper", force=True) == 1
        assert other.poll() is None  # not signalled
        src.lssrc(root, "sleeper")
        assert "inoperative" in capsys.readouterr().out
    finally:
        other.kill()
        other.wait()
