"""Status jobs piled up on a node share one computation at a time (real files and locks)."""

import threading
import time

import pytest

from mfa_ha.monitoring import singleflight


def test_jobs_that_pile_up_behind_a_computation_share_its_result(tmp_path):
    path, computed, results, computing = str(tmp_path / "status.json"), [], [], threading.Event()

    def compute():
        computed.append(time.monotonic())
        computing.set()
        time.sleep(0.3)
        return {"role": "primary", "n": len(computed)}

    def job():
        results.append(singleflight.shared(path, compute, wait_seconds=10))

    first = threading.Thread(target=job)
    first.start()
    assert computing.wait(timeout=10)
    piled = [threading.Thread(target=job) for _ in range(5)]  # asked while the first one computes
    for thread in piled:
        thread.start()
    for thread in [first, *piled]:
        thread.join(timeout=30)
    assert len(results) == 6
    assert len(computed) == 1  # every job that asked while it ran takes its result
    assert [r["n"] for r in results] == [1] * 6
    assert sum(1 for r in results if r.get("shared")) == 5


def test_a_result_older_than_the_request_is_never_served(tmp_path):
    path, computed = str(tmp_path / "status.json"), []
    for _ in range(3):
        singleflight.shared(path, lambda: computed.append(1) or {"ok": True}, wait_seconds=1)
    assert len(computed) == 3


def test_a_job_that_cannot_get_its_turn_in_time_says_busy(tmp_path):
    path, holding = str(tmp_path / "status.json"), threading.Event()

    def slow():
        holding.set()
        time.sleep(1.0)
        return {}

    holder = threading.Thread(target=lambda: singleflight.shared(path, slow, wait_seconds=5))
    holder.start()
    assert holding.wait(timeout=10)
    with pytest.raises(singleflight.Busy, match="busy: another status job"):
        singleflight.shared(path, lambda: {}, wait_seconds=0.1)
    holder.join(timeout=10)


def test_a_status_from_before_a_reboot_is_never_served(tmp_path, monkeypatch):
    path, computed = str(tmp_path / "status.json"), []
    later = iter([100.0, 100.5, 100.6])  # asked, ended; then asked again "later" on a new boot
    singleflight.shared(path, lambda: computed.append(1) or {"role": "primary"}, 1, clock=lambda: next(later))
    monkeypatch.setattr(singleflight, "boot_id", lambda: "another boot")
    clock = iter([50.0, 50.1, 50.2, 50.3])  # after a reboot monotonic times start small again
    assert singleflight.shared(
        path, lambda: computed.append(2) or {"role": "standby"}, 1, clock=lambda: next(clock)
    ) == {"role": "standby"}
    assert computed == [1, 2]


def test_a_status_that_cannot_be_written_still_answers(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(singleflight, "replace_file", full_disk)
    assert singleflight.shared(str(tmp_path / "status.json"), lambda: {"role": "primary"}, 1) == {"role": "primary"}
