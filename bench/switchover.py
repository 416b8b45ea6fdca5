"""Benchmark: switchovers in the lab while two clients write every 20 ms (not a timed test).

N switchovers (default 10, alternating direction) through Salt (``salt-run state.orchestrate
mfa_ha.orch.switchover`` with a real master and minions), then N with the same two parts
called directly in-process with no Salt (the physical floor), so Salt's overhead reads as
a ratio. Writes ``bench/results/switchover.json`` and ``switchover.md``.

    bash bench/switchover            # installs what it needs, then runs this
    bash bench/switchover -n 20
    bash bench/switchover --loopback   # no network namespaces (otherwise: hosts of their own when root)
    bash bench/switchover --synchronous strict   # each commit waits for the standby (switchover-strict.*)
    bash bench/switchover --synchronous on       # the same, the witness guarding it (switchover-on.*)
"""

from __future__ import annotations

import os
import platform
import statistics
import time

from mfa_ha_lab import netns
from mfa_ha_lab.lab import Lab
from mfa_ha_lab.measure import Writers, bench_arguments, direct_switchover, measure, salt_switchover, write_results
from mfa_ha_lab.salt_daemons import SaltLab

METRICS = (
    ("db_gap", "longest gap between acknowledged writes, direct to PostgreSQL (s)", 0.5),
    ("app_gap", "longest gap between acknowledged writes, through the app (s)", None),
    ("app_outage", "app outage: pmfad stopping on the old primary until healthy on the new (s)", 1.0),
    ("restream", "old primary streaming again, from the launch of salt-run (s)", 3.0),
    ("restream_from_stop", "old primary streaming again, from its app being stopped (s)", 3.0),
    ("wall", "whole switchover wall time, prechecks included (s)", 4.0),
)


def summary(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def run(count: int, loopback: bool = False, synchronous: str = "off") -> dict:
    runs = []
    with (
        netns.hosts_if_possible(loopback) as (network, unavailable),
        Lab(network=network, synchronous="strict" if synchronous == "on" else synchronous) as lab,
        SaltLab(lab) as salt_lab,
    ):
        where = "hosts of their own (network namespaces)" if network else f"loopback ({unavailable})"
        print(f"lab on {where}: prod {lab.prod.address}, dr {lab.dr.address}", flush=True)
        salt_lab.run("state.orchestrate", "mfa_ha.orch.setup")
        if synchronous == "on":  # needs the witness, which needs a pair set up
            salt_lab.synchronous_on({"automatic": True})
        targets = [lab.dr.minion_id, lab.prod.minion_id]
        with Writers(lab) as writers:
            for how in ("salt", "direct"):
                for i in range(count):
                    target = targets[i % 2]
                    switch = salt_switchover(salt_lab, target) if how == "salt" else direct_switchover(lab, target)
                    result, _ = measure(writers, how, target, switch)
                    runs.append(result.as_dict())
                    print(
                        f"{how:6} #{i + 1:2} -> {target:11} wall {result.wall:6.3f} s  db gap {result.db_gap:5.3f} s  "
                        f"app gap {result.app_gap:5.3f} s  outage {result.app_outage} s  restream {result.restream} s"
                        f"{'' if result.ok else '  FAILED: ' + result.error[-300:]}",
                        flush=True,
                    )
                    time.sleep(1)
        primary = next(n for n in lab.nodes if n.sql("SELECT NOT pg_is_in_recovery()")[0][0])
        lost = writers.lost(primary)
        acked = writers.acked()
    stats = {
        how: {key: summary([r[key] for r in runs if r["how"] == how]) for key, _, _ in METRICS}
        for how in ("salt", "direct")
    }
    return {
        "count": count,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "hosts": where,
        "synchronous": synchronous,
        "runs": runs,
        "stats": stats,
        "failed": sum(not r["ok"] for r in runs),
        "acknowledged": acked,
        "lost": {k: len(v) for k, v in lost.items()},
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['count']} switchovers each way of running them, alternating direction, writers every 20 ms "
        f"from the clients' host; synchronous replication {result['synchronous']}; the lab on {result['hosts']} ({result['machine']}).",
        "",
        "| metric | Salt min / median / max | no Salt min / median / max | ratio of medians | target |",
        "|---|---|---|---|---|",
    ]
    for key, title, target in METRICS:
        salt, direct = result["stats"]["salt"][key], result["stats"]["direct"][key]
        ratio = f"{salt['median'] / direct['median']:.1f}x" if salt["median"] and direct["median"] else "-"
        lines.append(
            f"| {title} | {salt['min']} / {salt['median']} / {salt['max']} | "
            f"{direct['min']} / {direct['median']} / {direct['max']} | {ratio} | "
            f"{'<= ' + str(target) if target else '-'} |"
        )
    lines += [
        "",
        f"Acknowledged writes: {result['acknowledged']['app']} through the app, "
        f"{result['acknowledged']['direct']} direct; lost: {result['lost']['app']} and "
        f"{result['lost']['direct']}. Failed switchovers: {result['failed']}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = bench_arguments(__doc__, 10, __file__)
    result = run(args.count, args.loopback, args.synchronous)
    name = "switchover" if args.synchronous == "off" else f"switchover-{args.synchronous}"
    write_results(args.out, name, result, markdown(result))
    if result["failed"] or any(result["lost"].values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
