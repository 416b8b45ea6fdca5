"""Benchmark: switchovers in the lab while two clients write every 20 ms (not a timed test).

N switchovers (default 10, alternating direction) each way of running one: the operator's
verb (``salt-run mfa_ha.switchover``), the orchestration (``salt-run state.orchestrate
mfa_ha.orch.switchover``), both with a real master and minions, and the same two node parts
called in-process with no Salt at all (the physical floor). For each: the command's wall,
the CPU seconds of every Salt process (the CLI, the master, the minions and what they run;
the idle rate measured before subtracted), beside two floors any runner pays (``salt-run``
with nothing to do; ``salt-run`` with one job on both nodes), where the wall went (launch to the first node
part, the nodes' own phases, the last part's end to the command's exit), the longest gap
between acknowledged writes and the app's outage. With ``--vs REF`` the product at git
revision REF runs too, side by side: N rounds, in each of which every version in turn starts
its own master and minions on the same lab (the daemons and CLIs import that version; the
lab, its servers and the writers are this one's) and runs one switchover each way, so a
machine that gets slower or faster meanwhile weighs on both alike. Writes
``bench/results/switchover.json`` and ``.md``.

    bash bench/switchover                        # installs what it needs, then runs this
    bash bench/switchover -n 20 --vs v0.1.0      # against a previous release, side by side
    bash bench/switchover --loopback             # no network namespaces (otherwise: hosts of their own when root)
    bash bench/switchover --synchronous strict   # each commit waits for the standby (switchover-strict.*)
    bash bench/switchover --synchronous on       # the same, the witness guarding it (switchover-on.*)
"""

from __future__ import annotations

import compileall
import os
import platform
import statistics
import subprocess
import tempfile
import time

from mfa_ha_lab import netns
from mfa_ha_lab.lab import Lab
from mfa_ha_lab.measure import (
    Writers,
    bench_arguments,
    direct_switchover,
    measure,
    runner_switchover,
    salt_switchover,
    write_results,
)
from mfa_ha_lab.salt_daemons import SaltLab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_DIRS = ("mfa_ha", "_modules", "_states", "_runners", "_beacons", "_engines", "_output")
IDLE_SECONDS = 10  # the Salt processes' background CPU is measured this long before each round's switchovers
SETTLE_SECONDS = 5  # after the daemons start
WAYS = {"runner": runner_switchover, "orchestrate": salt_switchover}
NODE_PHASES = (
    "app stopped on the old primary",
    "PostgreSQL stopped, shutdown checkpoint proven on the target",
    "promoted",
    "app healthy on the new primary",
    "old primary streaming again",
)
METRICS = (
    ("wall", "whole switchover: the command's wall (s)"),
    ("cpu_net", "CPU seconds of the Salt processes, their idle rate subtracted"),
    ("cpu:cli", "of which salt-run (and what it ran)"),
    ("cpu:master", "of which the master (idle rate not subtracted)"),
    ("cpu:minions", "of which the two minions (idle rate not subtracted)"),
    ("launch_to_first_part", "launch until the first node part began (s)"),
    ("runner_start", "of which: salt-run starting, until the runner function began (s)"),
    ("prechecks", "of which: the runner's prechecks: pillar, status job, decision (s)"),
    *((f"phase:{name}", f"node phase: {name} (s)") for name in NODE_PHASES),
    ("last_part_to_exit", "the last node part's end until the command returned (s)"),
    ("db_gap", "longest gap between acknowledged writes, direct to PostgreSQL (s)"),
    ("app_gap", "longest gap between acknowledged writes, through the app (s)"),
    ("app_outage", "app outage: pmfad stopping on the old primary until healthy on the new (s)"),
)


def summary(values: list) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"min": None, "median": None, "max": None}
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def compiled(root: str) -> None:
    """Bytecode for the product's modules, as pip writes it for an installed wheel."""
    for name in CODE_DIRS:
        compileall.compile_dir(os.path.join(root, name), quiet=1)


def checkout(ref: str) -> tuple[str, str]:
    """The product at git revision ``ref``, unpacked into a directory of its own."""
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", ref], check=True, capture_output=True, text=True)
    where = tempfile.mkdtemp(prefix=f"mfa-ha-{sha.stdout.strip()}-")
    archive = subprocess.run(["git", "-C", REPO, "archive", ref], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", where], input=archive.stdout, check=True)
    compiled(where)
    return where, sha.stdout.strip()


def idle_cpu_rate(salt_lab) -> float:
    """CPU seconds per second the Salt processes spend with no switchover running."""
    before, started = salt_lab.cpu_seconds(), time.monotonic()
    time.sleep(IDLE_SECONDS)
    return (salt_lab.cpu_seconds() - before) / (time.monotonic() - started)


def floors(lab, salt_lab, label: str, idle: float) -> list[dict]:
    """What any runner pays before it does its own work, beside which the verb's wall and CPU
    are read: ``salt-run`` starting and ending with nothing to do, and ``salt-run`` publishing
    one job to both nodes and collecting their returns."""
    nodes = ",".join(n.minion_id for n in lab.nodes)
    commands = {
        "floor: salt-run alone": ("test.arg",),
        "floor: salt-run, one job on both nodes": ("salt.execute", nodes, "test.ping"),
    }
    runs = []
    for name, command in commands.items():
        cpu_before, started = salt_lab.cpu_seconds(), time.monotonic()
        salt_lab.run(*command, **({"tgt_type": "list"} if len(command) > 1 else {}))
        wall = time.monotonic() - started
        cpu = salt_lab.cpu_seconds() - cpu_before
        runs.append(
            {"how": f"{label} {name}", "ok": True, "wall": round(wall, 3), "cpu_net": round(cpu - idle * wall, 3)}
        )
    return runs


def switch_to_standby(lab, writers, salt_lab, label: str, how: str, idle: float) -> dict:
    """One switchover to whichever node is the standby now, measured."""
    target = next(n.minion_id for n in lab.nodes if n.sql("SELECT pg_is_in_recovery()")[0][0])
    if how == "direct":
        switchover, cpu = direct_switchover(lab, target), None
    else:
        switchover, cpu = WAYS[how](salt_lab, target), salt_lab.cpu_seconds
    before = salt_lab.cpu_by_process() if salt_lab else {}
    result, _ = measure(writers, f"{label} {how}", target, switchover, cpu)
    after = salt_lab.cpu_by_process() if salt_lab else {}
    run = result.as_dict()
    run["cpu_net"] = round(run["cpu_s"] - idle * run["wall"], 3) if run["cpu_s"] is not None else None
    run["cpu_by_process"] = {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
    print(
        f"{label} {how:11} -> {target:11} wall {result.wall:6.3f} s  cpu {run['cpu_net']} s  "
        f"launch->part {result.launch_to_first_part} s  part->exit {result.last_part_to_exit} s  "
        f"db gap {result.db_gap:5.3f} s  outage {result.app_outage} s"
        f"{'' if result.ok else '  FAILED: ' + result.error[-300:]}",
        flush=True,
    )
    time.sleep(1)
    return run


def rounds(lab, writers, versions: dict, count: int, synchronous: str) -> tuple[list, dict]:
    """``count`` rounds; in each, every version in turn runs one switchover each way, its
    daemons started anew on the same lab (PostgreSQL, the app and the writers keep running),
    so a machine that grows slower or faster meanwhile weighs on every version alike."""
    runs, idle = [], {}
    for i in range(count):
        for label, code in versions.items():
            with SaltLab(lab, code=code) as salt_lab:
                if not runs and synchronous == "on":  # needs the witness, which needs a pair set up
                    salt_lab.synchronous_on({"automatic": True})
                time.sleep(SETTLE_SECONDS)  # the daemons' own start-up work done
                idle.setdefault(label, []).append(idle_cpu_rate(salt_lab))
                print(f"round {i + 1}: {label}: Salt processes idle at {idle[label][-1]:.3f} CPU-s/s", flush=True)
                runs += [switch_to_standby(lab, writers, salt_lab, label, how, idle[label][-1]) for how in WAYS]
                runs += floors(lab, salt_lab, label, idle[label][-1])
    return runs, {label: round(statistics.median(rates), 3) for label, rates in idle.items()}


def value(run: dict, key: str):
    if key.startswith("phase:"):
        return (run.get("node_phases") or {}).get(key.split(":", 1)[1])
    if key.startswith("cpu:"):
        spent = run.get("cpu_by_process") or {}
        if not spent:
            return None
        if key == "cpu:minions":
            return round(sum(v for name, v in spent.items() if name not in ("cli", "master")), 3)
        return spent.get(key.split(":", 1)[1])
    return run.get(key)


def run(count: int, loopback: bool = False, synchronous: str = "off", vs: str | None = None) -> dict:
    versions = {"this": None}  # its bytecode written by the bootstrap
    if vs:
        code, sha = checkout(vs)
        versions[f"{vs} ({sha})"] = code
    with (
        netns.hosts_if_possible(loopback) as (network, unavailable),
        Lab(network=network, synchronous="strict" if synchronous == "on" else synchronous) as lab,
    ):
        where = "hosts of their own (network namespaces)" if network else f"loopback ({unavailable})"
        print(f"lab on {where}: prod {lab.prod.address}, dr {lab.dr.address}", flush=True)
        with SaltLab(lab) as salt_lab:
            salt_lab.run("state.orchestrate", "mfa_ha.orch.setup")
        with Writers(lab) as writers:
            runs, idle = rounds(lab, writers, versions, count, synchronous)
            runs += [switch_to_standby(lab, writers, None, "this", "direct", 0.0) for _ in range(count)]
        primary = next(n for n in lab.nodes if n.sql("SELECT NOT pg_is_in_recovery()")[0][0])
        lost = {k: len(v) for k, v in writers.lost(primary).items()}
        acked = writers.acked()
    columns = list(dict.fromkeys(r["how"] for r in runs))
    return {
        "count": count,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "hosts": where,
        "synchronous": synchronous,
        "idle_cpu_per_s": idle,
        "acknowledged": acked,
        "lost": lost,
        "runs": runs,
        "stats": {c: {k: summary([value(r, k) for r in runs if r["how"] == c]) for k, _ in METRICS} for c in columns},
        "failed": sum(not r["ok"] for r in runs),
    }


def markdown(result: dict) -> str:
    columns = list(result["stats"])
    lines = [
        f"{result['count']} switchovers each way of running them, alternating direction, writers every 20 ms "
        f"from the clients' host; synchronous replication {result['synchronous']}; {result['date']}, "
        f"{result['machine']}. Medians, with min-max below.",
        "",
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for key, title in METRICS:
        cells = []
        for column in columns:
            s = result["stats"][column][key]
            cells.append("-" if s["median"] is None else f"{s['median']} ({s['min']}-{s['max']})")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- lab on {result['hosts']}; the Salt processes idle at "
        + ", ".join(f"{label} {rate}" for label, rate in result["idle_cpu_per_s"].items())
        + " CPU-s/s (median of each round's 10 s).",
        f"- acknowledged writes {result['acknowledged']['app']} through the app, {result['acknowledged']['direct']} "
        f"direct; lost {result['lost']['app']} and {result['lost']['direct']}; failed switchovers {result['failed']}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = bench_arguments(__doc__, 10, __file__)
    result = run(args.count, args.loopback, args.synchronous, args.vs)
    name = "switchover" if args.synchronous == "off" else f"switchover-{args.synchronous}"
    write_results(args.out, name, result, markdown(result))
    if result["failed"] or any(result["lost"].values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
