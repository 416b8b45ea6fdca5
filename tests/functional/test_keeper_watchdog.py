"""The lease keeper as the service runs it (``python -m mfa_ha.unattended.keeper``: a watchdog and the
keeper as its child) against a real streaming pair: a keeper frozen (SIGSTOP) while its
standby goes away is replaced, and its replacement fences the primary on the lease the frozen
one held, not on a fresh one. Stopped on request, both end and hand over nothing."""

import os
import signal
import time

import pytest

from mfa_ha import timing
from mfa_ha.unattended import lease
from tests.support import keeper_config, keeper_service, setup_replication, wait_for

LEASE_SECONDS = 4


@pytest.fixture(scope="module")
def service(lab, prod, dr):
    setup_replication(lab, prod, dr)
    config = keeper_config(lab, LEASE_SECONDS)
    with keeper_service(lab, config) as proc:
        yield proc


def beat(service) -> dict:
    return lease.read_record(service.settings.keeper_file)


def log_text(service) -> str:
    with open(service.log_path, encoding="utf-8") as fh:
        return fh.read()


def test_a_frozen_keeper_is_replaced_and_its_replacement_fences_on_the_same_lease(lab, service):
    wait_for(lambda: beat(service).get("action") == "hold", timeout=30, interval=0.2, what="the keeper holding")
    frozen = beat(service)
    assert frozen["pid"] != service.pid  # the keeper is the watchdog's child
    os.kill(frozen["pid"], signal.SIGSTOP)
    lab.stop_db(lab.dr)  # no one renews the lease from now on
    stopped_at = time.monotonic()
    bound = LEASE_SECONDS + service.settings.watchdog_bound + timing.writes_end_bound()
    wait_for(
        lambda: not lab.prod.is_running(),
        timeout=bound,
        interval=0.2,
        what="the frozen keeper's replacement fencing the primary",
    )
    fenced_after = time.monotonic() - stopped_at
    wait_for(
        lambda: beat(service).get("action") in ("fenced", "idle"),
        timeout=timing.fence_bound(15),
        interval=0.2,
        what="the fence finished (pmfad stopped after PostgreSQL)",
    )
    now = beat(service)
    assert now["pid"] not in (frozen["pid"], service.pid)
    assert now["last_fence"]["armed_at"] == frozen["armed_at"]  # the lease it took over, not a fresh one
    assert "stalled" in log_text(service) and "took over the lease" in log_text(service)
    assert os.path.exists(os.path.join(lab.prod.data_dir, "standby.signal"))
    assert lab.prod.app_pid() is None
    with pytest.raises(ProcessLookupError):  # the frozen one was killed, and reaped by its watchdog
        os.kill(frozen["pid"], 0)
    print(
        f"\nfrozen keeper: primary fenced {fenced_after:.1f} s after its standby stopped "
        f"(lease {LEASE_SECONDS} s, watchdog bound {service.settings.watchdog_bound:g} s)"
    )


def test_stopped_on_request_the_watchdog_and_keeper_end_and_hand_over_nothing(service):
    child = beat(service)["pid"]
    service.send_signal(signal.SIGTERM)
    assert service.wait(timeout=30) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert beat(service)["action"] == "stopped" and beat(service)["pid"] == child
