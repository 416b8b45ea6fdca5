"""What the test tiers share: waits, a lab's replication set up by hand, the keeper run as its
service runs it, the Salt faces loaded as Salt's loader finds them, the fault figures."""

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
import salt.utils.yaml
from saltfactories.utils.functional import Loaders

from mfa_ha import files
from mfa_ha.loader import get_loader_dirs
from mfa_ha.pair.peer import Upstream
from mfa_ha.postgres.secrets import scram_matches
from mfa_ha.postgres.tls import TlsConfig
from mfa_ha.unattended import lease
from mfa_ha.unattended.keeper import build_config
from mfa_ha_lab.lab import APP_DB, LAB_PASSWORD, REPLICATION_USER, Lab


def wait_for(predicate, timeout=30, what="condition", interval=0.2, ignore_errors=False):
    """Poll ``predicate`` until it returns something true (returned), bounded by ``timeout``.
    With ``ignore_errors``, an exception counts as "not yet" (a server restarting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:
            if not ignore_errors:
                raise
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def find_with_key(data, key):
    """The first mapping inside ``data`` (an orchestration's return) that has ``key``."""
    if isinstance(data, dict):
        if key in data:
            return data
        data = list(data.values())
    for item in data if isinstance(data, list) else []:
        found = find_with_key(item, key)
        if found is not None:
            return found
    return None


def setup_replication(lab, prod, dr):
    assert prod.pgrepl.role() == "primary"
    for loaders in (prod, dr):
        if lab.ca:  # not for a server built without OpenSSL (lab.ca is None then)
            assert loaders.pgrepl.apply_tls()  # CA, certificate and key written
        assert loaders.pgrepl.tls_needs() == []
    prod.pgrepl.set_replication_user()
    verifier = lab.prod.sql("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (REPLICATION_USER,))[0][0]
    assert verifier.startswith("SCRAM-SHA-256$") and scram_matches(verifier, LAB_PASSWORD)
    assert prod.pgrepl.set_replication_user() == []  # idempotent
    changes = prod.pgrepl.apply_settings()
    assert "wal_log_hints" in changes["restart_pending"]
    assert changes["changes"]["ssl"]["new"] == "on" if lab.ca else "ssl" not in changes["changes"]
    prod.pgrepl.restart()
    assert prod.pgrepl.settings()["differ"] == {}
    assert prod.pgrepl.apply_hba()["changed"] is True  # hostssl for the peers' real addresses (dr gets a copy)
    for node in (lab.prod, lab.dr):
        assert prod.pgrepl.create_slot(node.slot) is True
    assert prod.pgrepl.create_slot(lab.dr.slot) is False
    for loaders in (prod, dr):
        for node in (lab.prod, lab.dr):
            loaders.pgrepl.set_pgpass(node.address, node.port)
    dr.pmfad.stop()
    dr.pgrepl.stop()
    result = dr.pgrepl.basebackup(lab.prod.address, slot=lab.dr.slot)
    assert result["moved_aside"].startswith(lab.dr.data_dir + ".moved-")
    dr.pgrepl.start()
    wait_for(lambda: (dr.pgrepl.status().get("receiver") or {}).get("status") == "streaming", what="dr streaming")


def switch(lab, old, new, old_node, new_node, writes=20):
    before = write_rows(old_node, writes, f"before-switch-to-{new_node.name}")
    assert old.pmfad.stop() is True
    assert old.pgrepl.stop() is True
    lsn = old.pgrepl.shutdown_checkpoint_lsn()
    reached = new.pgrepl.wait_for_lsn(lsn, timeout=30, beyond=True)
    assert reached["target"] == lsn
    promoted = new.pgrepl.promote()
    assert new.pgrepl.role() == "primary"
    assert new.pmfad.start() is True
    assert new.pmfad.health(wait=15)["healthy"] is True
    assert new_node.sql("SELECT count(*) FROM auth_events", dbname=APP_DB)[0][0] >= before
    new.pgrepl.create_slot(old_node.slot)
    rewound = old.pgrepl.rewind(new_node.address, slot=old_node.slot, fallback="basebackup")
    assert rewound["method"] == "rewind"
    with open(os.path.join(new_node.root, "postgresql.log"), encoding="utf-8", errors="replace") as fh:
        rewind = [
            line
            for line in fh
            if "connection authorized: user=replicamfa" in line and "application_name=pg_rewind" in line
        ]
    assert rewind and all(("SSL enabled" in line) == bool(lab.ca) for line in rewind), rewind  # over TLS, verify-full
    old.pgrepl.start()
    wait_for(
        lambda: (old.pgrepl.status().get("receiver") or {}).get("status") == "streaming",
        what=f"{old_node.name} streaming from {new_node.name}",
    )
    status = old.pgrepl.status()
    assert status["role"] == "standby" and status["timeline"] == promoted["timeline"]
    assert status["receiver"]["sender_host"] == new_node.address
    return before


LEASE_SECONDS = 3


def keeper_config(lab, lease_seconds=LEASE_SECONDS, node=None, other=None, synchronous=None) -> dict:
    """A node's keeper config (the primary's by default), as the state pgrepl.lease_keeper writes it."""
    node, other = node or lab.prod, other or lab.dr
    pillar = lab.pillar(node)["mfa_ha"]
    settings = lease.LeaseSettings(automatic=True, lease_seconds=lease_seconds, run_dir=node.lease_dir)
    tls = TlsConfig(enabled=bool(lab.ca), dir=os.path.join(node.root, "mfa_ha-tls"))  # beside the data dir
    return build_config(
        settings,
        pillar["postgres"],
        pillar["pmfad"],
        tls,
        None,
        other.minion_id,
        Upstream(other.address, other.port, "replicamfa", node.slot),
        node.minion_id,
        node.address,
        synchronous,
    )


@contextlib.contextmanager
def keeper_service(lab, config):
    """The primary's keeper as its service runs it (``python -m mfa_ha.unattended.keeper``: a watchdog
    and the keeper as its child), with ``config``; stopped at the end by its PID, as its service
    manager would (SIGTERM: the watchdog stops its keeper too), killed if it does not end."""
    path = os.path.join(lab.prod.lease_dir, "config.json")
    os.makedirs(lab.prod.lease_dir, exist_ok=True)
    files.write_json(path, config)
    log_path = os.path.join(lab.root, "keeper-service.log")
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mfa_ha.unattended.keeper", "--config", path], stdout=log, stderr=log
        )
    proc.settings, proc.log_path = lease.LeaseSettings(**config["settings"]), log_path
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def record(fault: str, **figures) -> None:
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"fault": fault, **figures}) + "\n")
    print(f"\n{fault}: {figures}")


def node_loaders(salt_factories, lab, node, pillar=None, variant="", as_node=False):
    """The node's execution modules through Salt's loader, with ``pillar`` (default: the lab's).
    ``as_node``: under the node's own minion id, as on a real node (the loader's own id is
    unique per test module)."""
    pillar_root = os.path.join(lab.root, "pillar", node.name + variant)
    os.makedirs(pillar_root, exist_ok=True)
    with open(os.path.join(pillar_root, "top.sls"), "w", encoding="utf-8") as fh:
        fh.write("base:\n  '*':\n    - mfa_ha\n")
    with open(os.path.join(pillar_root, "mfa_ha.sls"), "w", encoding="utf-8") as fh:
        salt.utils.yaml.safe_dump(pillar or lab.pillar(node), fh, default_flow_style=False)
    factory = salt_factories.salt_minion_daemon(
        f"{node.minion_id}{variant}-{os.path.basename(lab.root)}",
        overrides={"file_client": "local", "master_type": "disable", "pillar_roots": {"base": [pillar_root]}},
    )
    opts = factory.config.copy()
    if not as_node:
        return Loaders(opts)
    opts["id"] = node.minion_id  # modules of their own: loaded once, two nodes would share one __opts__
    return Loaders(opts, loaded_base_name=f"salt.loaded.{node.name}{variant}")


def write_rows(node, count, tag):
    for i in range(count):
        node.sql("INSERT INTO auth_events (node, client_seq) VALUES (%s, %s)", (tag, i), dbname=APP_DB)
    return node.sql("SELECT count(*) FROM auth_events", dbname=APP_DB)[0][0]


RESULTS = os.path.join(os.path.dirname(__file__), "..", "bench", "results", "faults.jsonl")


def load_face(kind: str, name: str):
    """A Salt face (``kind``: modules, states, ...) as a plain module, from where Salt's loader
    finds it (the checkout's or the installed package's); its dunders are the test's to set."""
    path = os.path.join(get_loader_dirs()[kind][0], f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_face_{kind}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synchronous_lab(mode: str):
    """A module's lab with ``mfa_ha:replication:synchronous: mode`` (root only)."""
    if os.geteuid() != 0:
        pytest.skip("the lab runs PostgreSQL as 'postgres' and needs root to switch to it")
    return Lab(synchronous=mode)


def streaming_pair_as_nodes(salt_factories, lab):
    """Both nodes' modules under their own minion ids, set up, the standby streaming, and the
    primary naming it (as the setup's last step does once it streams)."""
    prod, dr = (node_loaders(salt_factories, lab, node, as_node=True).modules for node in lab.nodes)
    setup_replication(lab, prod, dr)
    dr.pgrepl.start()
    wait_for(lambda: (dr.pgrepl.status().get("receiver") or {}).get("status") == "streaming", what="dr streaming")
    return prod, dr


class Clock:
    """A clock the test moves by hand (``clock.now += seconds``)."""

    def __init__(self, now: float = 10.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
