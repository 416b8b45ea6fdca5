"""A fence whose pmfad is slow to stop: the keeper service (watchdog and keeper) ends writes
first, then waits out pmfad's stop (``mfa_ha:pmfad:timeout``, then ``stopsrc -f``), and the
watchdog lets it finish instead of killing it mid-fence and leaving pmfad running on a fenced
node."""

import json
import os

import pytest

from mfa_ha import timing
from mfa_ha.unattended import lease
from tests.support import keeper_config, keeper_service, setup_replication, wait_for

LEASE_SECONDS = 4
PMFAD_TIMEOUT = 30  # longer than a fence's first part and the watchdog's beat bound together
STOP_DELAY = 600  # the stand-in ignores SIGTERM for longer than the test: only stopsrc -f stops it


def slow_to_stop(lab, node) -> None:
    path = os.path.join(node.src_root, "subsystems", "pmfad.json")
    with open(path, encoding="utf-8") as fh:
        subsystem = json.load(fh)
    subsystem["command"] += ["--stop-delay", str(STOP_DELAY)]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(subsystem, fh)
    lab.stop_app(node)
    lab.start_app(node)
    wait_for(lambda: node.app_pid() is not None, what="the slow-to-stop pmfad running")


@pytest.fixture(scope="module")
def service(lab, prod, dr):
    setup_replication(lab, prod, dr)
    slow_to_stop(lab, lab.prod)
    config = keeper_config(lab, LEASE_SECONDS)
    config["pmfad"] = {**config["pmfad"], "timeout": PMFAD_TIMEOUT}
    with keeper_service(lab, config) as proc:
        yield proc


def test_the_fence_stops_a_slow_pmfad_before_the_watchdog_gives_up_on_it(lab, service):
    beat = lambda: lease.read_record(service.settings.keeper_file)  # noqa: E731
    wait_for(lambda: beat().get("action") == "hold", timeout=30, what="the keeper holding")
    keeper = beat()["pid"]
    assert service.settings.alive_within + timing.writes_end_bound() < PMFAD_TIMEOUT  # the old, single bound
    lab.stop_db(lab.dr)  # no one renews the lease from now on
    wait_for(
        lambda: not lab.prod.is_running(),
        timeout=LEASE_SECONDS + timing.writes_end_bound() + 5,
        what="the keeper ending writes",
    )
    wait_for(
        lambda: beat().get("action") in ("fenced", "idle"),
        interval=0.5,
        timeout=timing.app_stop_bound(PMFAD_TIMEOUT) + 10,
        what="the fence finished",
    )
    with open(service.log_path, encoding="utf-8") as fh:
        log = fh.read()
    assert "stalled" not in log, log
    assert beat()["pid"] == keeper and beat()["last_fence"]
    assert lab.prod.app_pid() is None  # stopped (stopsrc -f), not left running on a fenced node
    assert os.path.exists(os.path.join(lab.prod.data_dir, "standby.signal"))
