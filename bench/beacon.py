"""Benchmark: CPU cost of one ``pgrepl`` beacon poll on the lab (not a timed test).

Runs the beacon function itself (one connection, one query, the transition rule, the state
file) N times against a streaming standby and a primary, and reports the CPU time per poll
(process time, which is what the minion pays) and the wall time. Writes
``bench/results/beacon.json`` and ``beacon.md``.

    bash bench/beacon            # installs what it needs, then runs this
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time

from mfa_ha_lab import netns
from mfa_ha_lab.lab import BEACON, Lab
from mfa_ha_lab.salt_daemons import SaltLab

HERE = os.path.dirname(os.path.abspath(__file__))


def load_beacon(lab: Lab, node):
    """The beacon module with the two things Salt's loader would give it."""
    spec = importlib.util.spec_from_file_location("pgrepl_beacon", os.path.join(HERE, "..", "_beacons", "pgrepl.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    postgres = lab.pillar(node)["mfa_ha"]["postgres"]
    module.__opts__ = {"cachedir": os.path.join(lab.root, "bench-cache", node.name), "id": node.minion_id}
    module.__pillar__ = {"mfa_ha": {"postgres": postgres}}
    module.__salt__ = {}
    return module


def measure(module, count: int) -> dict:
    cpu, wall = [], []
    for _ in range(count):
        c, w = time.process_time(), time.perf_counter()
        module.beacon(BEACON)
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return {"polls": count, "cpu_ms": _stats(cpu), "wall_ms": _stats(wall)}


def _stats(values):
    ordered = sorted(values)
    return {
        "median": round(statistics.median(values), 2),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=500)
    parser.add_argument("--loopback", action="store_true", help="all on this machine's loopback, no namespaces")
    args = parser.parse_args()
    with netns.hosts_if_possible(args.loopback) as (network, _), Lab(network=network) as lab, SaltLab(lab) as salt_lab:
        salt_lab.run("state.orchestrate", "mfa_ha.orch.setup")
        result = {node.minion_id: measure(load_beacon(lab, node), args.count) for node in (lab.dr, lab.prod)}
    lines = [
        "| node (role) | polls | CPU per poll, median / p95 / max (ms) | wall per poll, median / p95 / max (ms) |",
        "|---|---|---|---|",
    ]
    for node, role in (("server_dr", "standby"), ("server_prod", "primary")):
        r = result[node]
        lines.append(
            f"| {node} ({role}) | {r['polls']} | {r['cpu_ms']['median']} / {r['cpu_ms']['p95']} / "
            f"{r['cpu_ms']['max']} | {r['wall_ms']['median']} / {r['wall_ms']['p95']} / {r['wall_ms']['max']} |"
        )
    table = "\n".join(lines) + "\n"
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "beacon.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    with open(os.path.join(out, "beacon.md"), "w", encoding="utf-8") as fh:
        fh.write(table)
    print(table)


if __name__ == "__main__":
    main()
