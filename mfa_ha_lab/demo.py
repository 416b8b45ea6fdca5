"""The lab demo: the seed's procedure run through mfa-ha's Salt modules on the local lab.

Builds the two-node lab, sets up replication (replication user, settings, slots,
basebackup, standby config), switches over to dr and back while the stand-in app is used,
prints each step with its duration and a summary, then stops everything it started.

    bash scripts/demo.sh            # installs what it needs, then runs this
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import salt.client
import salt.config
import salt.utils.yaml

from mfa_ha_lab.lab import APP_DB, Lab

STEPS: list[tuple[str, float]] = []


def step(title: str, func, *args, **kwargs):
    started = time.monotonic()
    try:
        result = func(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the demo reports and re-raises
        print(f"  FAILED {title}: {err}", flush=True)
        raise
    took = time.monotonic() - started
    STEPS.append((title, took))
    print(f"  {took:7.3f} s  {title}", flush=True)
    return result


def caller_for(lab: Lab, node) -> salt.client.Caller:
    """A ``salt-call --local`` equivalent for one lab node, with that node's pillar."""
    base = os.path.join(lab.root, "salt", node.name)
    pillar_root = os.path.join(base, "pillar")
    os.makedirs(pillar_root, exist_ok=True)
    with open(os.path.join(pillar_root, "top.sls"), "w", encoding="utf-8") as fh:
        fh.write("base:\n  '*':\n    - mfa_ha\n")
    with open(os.path.join(pillar_root, "mfa_ha.sls"), "w", encoding="utf-8") as fh:
        salt.utils.yaml.safe_dump(lab.pillar(node), fh, default_flow_style=False)
    opts = salt.config.minion_config(None)
    opts.update(id=node.minion_id, file_client="local", master_type="disable",
                pillar_roots={"base": [pillar_root]}, cachedir=os.path.join(base, "cache"),
                pki_dir=os.path.join(base, "pki"), log_file=os.path.join(base, "minion.log"))
    return salt.client.Caller(mopts=opts)


def wait_streaming(caller, timeout=30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        receiver = caller.cmd("pgrepl.status").get("receiver") or {}
        if receiver.get("status") == "streaming":
            return
        time.sleep(0.1)
    raise RuntimeError(f"not streaming after {timeout} s")


def app_write(node, seq: int) -> bool:
    """One request through the stand-in app: True when it acknowledged the write."""
    import http.client
    import ssl

    context = ssl._create_unverified_context()  # the stand-in's self-signed certificate
    try:
        conn = http.client.HTTPSConnection(node.address, 6793, timeout=2, context=context)
        conn.request("GET", f"/policyAuth/?seq={seq}")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def setup(lab: Lab, prod, dr) -> None:
    print("setup (the seed's 'Configuring replication'):")
    step("prod: replication user replicamfa (SCRAM, connection limit 5)", prod.cmd, "pgrepl.set_replication_user")
    step("prod: replication settings (ALTER SYSTEM)", prod.cmd, "pgrepl.apply_settings")
    step("prod: restart for wal_log_hints", prod.cmd, "pgrepl.restart")
    for node in lab.nodes:
        step(f"prod: slot {node.slot}", prod.cmd, "pgrepl.create_slot", node.slot)
    for caller, name in ((prod, "prod"), (dr, "dr")):
        for node in lab.nodes:
            step(f"{name}: pgpass entry for {node.address}", caller.cmd, "pgrepl.set_pgpass", node.address)
    step("dr: stop pmfad", dr.cmd, "pmfad.stop")
    step("dr: stop its own PostgreSQL", dr.cmd, "pgrepl.stop")
    result = step("dr: pg_basebackup from prod + standby config", dr.cmd, "pgrepl.basebackup",
                  lab.prod.address, slot=lab.dr.slot)
    if isinstance(result, str):
        raise RuntimeError(result)
    print(f"           old data directory kept as {result['moved_aside']}")
    step("dr: start as standby", dr.cmd, "pgrepl.start")
    step("dr: streaming from prod", wait_streaming, dr)


def switchover(lab: Lab, old, new, old_node, new_node) -> dict:
    print(f"switchover {old_node.name} -> {new_node.name}:")
    began = time.monotonic()
    step(f"{old_node.name}: stop pmfad", old.cmd, "pmfad.stop")
    outage_start = time.monotonic()
    step(f"{old_node.name}: stop PostgreSQL (fast, clean)", old.cmd, "pgrepl.stop")
    lsn = step(f"{old_node.name}: shutdown checkpoint LSN", old.cmd, "pgrepl.shutdown_checkpoint_lsn")
    step(f"{new_node.name}: wait until {lsn} received and replayed", new.cmd, "pgrepl.wait_for_lsn", lsn,
         beyond=True)
    step(f"{new_node.name}: promote", new.cmd, "pgrepl.promote")
    step(f"{new_node.name}: start pmfad", new.cmd, "pmfad.start")
    step(f"{new_node.name}: pmfad healthy", new.cmd, "pmfad.health", wait=15)
    outage = time.monotonic() - outage_start
    step(f"{new_node.name}: slot {old_node.slot}", new.cmd, "pgrepl.create_slot", old_node.slot)
    step(f"{old_node.name}: pg_rewind onto {new_node.name}", old.cmd, "pgrepl.rewind", new_node.address,
         slot=old_node.slot, fallback="basebackup")
    step(f"{old_node.name}: start as standby", old.cmd, "pgrepl.start")
    step(f"{old_node.name}: streaming from {new_node.name}", wait_streaming, old)
    return {"outage": outage, "total": time.monotonic() - began}


def run(keep: bool = False) -> int:
    if os.geteuid() != 0:
        print("the lab runs PostgreSQL as 'postgres': run the demo as root", file=sys.stderr)
        return 2
    lab = Lab()
    print(f"lab in {lab.root}: prod 127.0.0.2:5432 (server_prod), dr 127.0.0.3:5432 (server_dr)")
    try:
        step("build the lab (two PostgreSQL 15 clusters, pmfad stand-in on prod)", lab.create)
        prod, dr = caller_for(lab, lab.prod), caller_for(lab, lab.dr)
        setup(lab, prod, dr)
        acked, seq = [], 0
        for _ in range(20):
            seq += 1
            if app_write(lab.prod, seq):
                acked.append(seq)
        there = switchover(lab, prod, dr, lab.prod, lab.dr)
        for _ in range(20):
            seq += 1
            if app_write(lab.dr, seq):
                acked.append(seq)
        back = switchover(lab, dr, prod, lab.dr, lab.prod)
        on_primary = {r[0] for r in lab.prod.sql("SELECT client_seq FROM auth_events WHERE client_seq IS NOT NULL",
                                                  dbname=APP_DB)}
        lost = [s for s in acked if s not in on_primary]
        print("\nsummary")
        print(f"  writes acknowledged by the app: {len(acked)}; lost: {len(lost)}")
        for name, result in (("prod -> dr", there), ("dr -> prod", back)):
            print(f"  {name}: app outage {result['outage']:.3f} s, whole switchover {result['total']:.3f} s")
        print(f"  steps: {len(STEPS)}, total {sum(t for _, t in STEPS):.1f} s")
        return 1 if lost else 0
    finally:
        lab.destroy(keep=keep)
        print("lab stopped" + (f" (kept {lab.root})" if keep else " and removed"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the lab directory for inspection")
    sys.exit(run(parser.parse_args().keep))


if __name__ == "__main__":
    main()
