"""Switchovers measured while clients write: used by the demo and the benchmark alike.

One switchover is measured from the moment it is started (``salt-run`` launched, or the
direct calls begun) until it returns: the longest gap between acknowledged writes (through
the app, and straight to the database), the app outage (pmfad stopping on the old primary
until healthy on the new one), the time until the old primary streams again, and the wall
time. Acknowledged writes missing afterwards are counted as lost.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import asdict, dataclass

from mfa_ha import app as applib
from mfa_ha.adapters.pillar import validate_nodes
from mfa_ha.monitoring.status import phases
from mfa_ha.pair import switchover as sw
from mfa_ha.pair.service_address import Hooks
from mfa_ha.postgres import synchronous
from mfa_ha.postgres.config import postgres_config, replication_config
from mfa_ha.postgres.server import Server
from mfa_ha.postgres.tls import tls_config
from mfa_ha.waiting import poll
from mfa_ha_lab.lab import APP_DB, APP_PORT, APP_USER, LAB_PASSWORD, Lab
from mfa_ha_lab.writer import AppWriter, DbWriter, lost


@dataclass
class Measurement:
    how: str  # "runner" | "orchestrate" | "direct" (what ran it), with the code's version when compared
    target: str
    wall: float
    app_gap: float
    db_gap: float
    app_outage: float | None
    restream: float | None
    restream_from_stop: float | None
    ok: bool
    error: str = ""
    cpu_s: float | None = None  # CPU seconds of the Salt processes (SaltLab.cpu_seconds), background not subtracted
    launch_to_first_part: float | None = None  # the command's launch until the first node part began (s)
    runner_start: float | None = None  # of which: the launch until the runner function began (s)
    prechecks: float | None = None  # of which: the runner's prechecks (pillar, status job, decision) (s)
    last_part_to_exit: float | None = None  # the last node part's end until the command returned (s)
    node_phases: dict | None = None  # the nodes' own phases (mfa_ha.monitoring.status.phases)

    def as_dict(self) -> dict:
        return asdict(self)


class Writers:
    """Both clients, running for as long as the context lasts."""

    def __init__(self, lab: Lab, interval: float = 0.02):
        addresses = [n.address for n in lab.nodes]
        enter = lab.on_clients
        self.app = AppWriter(addresses, APP_PORT, interval, enter=enter)
        self.db = DbWriter(addresses, 5432, APP_USER, LAB_PASSWORD, APP_DB, interval, enter=enter)

    def __enter__(self) -> Writers:
        self.app.start()
        self.db.start()
        self.wait_acked_after(time.monotonic())
        return self

    def __exit__(self, *exc) -> None:
        self.app.stop()
        self.db.stop()

    def wait_acked_after(self, moment: float, timeout: float = 30) -> None:
        """Until both clients have had a write acknowledged after ``moment`` (monotonic)."""
        poll(
            lambda: (all(w.acked and w.acked[-1][1] > moment for w in (self.app, self.db)), None),
            timeout,
            0.02,
            fail=lambda _: RuntimeError(f"the writers got no acknowledgement within {timeout} s"),
        )

    def lost(self, primary) -> dict:
        query = lambda sql, params: primary.sql(sql, params, dbname=APP_DB)  # noqa: E731
        return {"app": lost(query, self.app), "direct": lost(query, self.db)}

    def acked(self) -> dict:
        return {"app": len(self.app.acked), "direct": len(self.db.acked)}


def measure(writers: Writers, how: str, target: str, run, cpu=None) -> tuple[Measurement, dict]:
    """Time ``run()`` (which returns ``(ok, parts, error)``) inside the writers' stream;
    ``cpu()``: CPU seconds so far of what runs it (its difference is the switchover's)."""
    cpu_before = cpu() if cpu else None
    started_mono, started_wall = time.monotonic(), time.time()
    ok, parts, error = run()
    wall, ended_wall = time.monotonic() - started_mono, time.time()
    cpu_s = round(cpu() - cpu_before, 3) if cpu else None
    writers.wait_acked_after(time.monotonic())  # the window closes on a write after the switch
    until = time.monotonic()
    marks = {p.get("part"): p.get("marks", {}) for p in parts.values() if isinstance(p, dict)}
    old, new = marks.get("old primary", {}), marks.get("new primary", {})
    result = Measurement(
        how=how,
        target=target,
        wall=round(wall, 3),
        app_gap=writers.app.longest_gap(started_mono - 0.1, until),
        db_gap=writers.db.longest_gap(started_mono - 0.1, until),
        app_outage=round(new["app_healthy"] - old["start"], 3) if old.get("start") and new.get("app_healthy") else None,
        restream=round(old["streaming"] - started_wall, 3) if old.get("streaming") else None,
        restream_from_stop=round(old["streaming"] - old["start"], 3) if old.get("streaming") else None,
        ok=ok,
        error=error,
        cpu_s=cpu_s,
        **part_spans(parts, started_wall, ended_wall),
    )
    return result, parts


def part_spans(parts: dict, launched: float, returned: float) -> dict:
    """Where a switchover's wall went: the launch until the first node part began, the nodes'
    own phases, and the end of the last part until the command returned (wall clock)."""
    runner = parts.get("runner") or {}
    spans = {}
    if runner.get("began"):
        spans = {"runner_start": round(runner["began"] - launched, 3), "prechecks": runner.get("prechecks_s")}
    marked = [p for p in parts.values() if isinstance(p, dict) and p.get("marks")]
    if not marked:
        return spans
    begun = min(p["marks"]["start"] for p in marked if "start" in p["marks"])
    ended = max(_part_end(p) for p in marked)
    return {
        **spans,
        "launch_to_first_part": round(begun - launched, 3),
        "last_part_to_exit": round(returned - ended, 3),
        "node_phases": phases({n: p for n, p in parts.items() if n != "runner"}),
    }


def _part_end(part: dict) -> float:
    marks = part["marks"]
    end = max(v for v in marks.values() if isinstance(v, (int, float)))
    if isinstance(part.get("seconds"), (int, float)) and "start" in marks:
        end = max(end, marks["start"] + part["seconds"])
    return end


def node_parts(orchestrate_result: dict) -> dict:
    """``{minion: part}`` from the switch step of a ``state.orchestrate`` return."""
    data = orchestrate_result.get("data", orchestrate_result) if isinstance(orchestrate_result, dict) else {}
    for steps in data.values():
        if not isinstance(steps, dict):
            continue
        for step in steps.values():
            ret = (step.get("changes") or {}).get("ret") if isinstance(step, dict) else None
            if isinstance(ret, dict) and any(isinstance(v, dict) and "part" in v for v in ret.values()):
                return ret
    return {}


def salt_switchover(salt_lab, target: str):
    """``salt-run state.orchestrate mfa_ha.orch.switchover`` through the real CLI."""

    def run():
        ret = salt_lab.run(
            "state.orchestrate", "mfa_ha.orch.switchover", pillar={"mfa_ha": {"target": target}}, check=False
        )
        ok = isinstance(ret, dict) and ret.get("retcode") == 0
        return ok, node_parts(ret or {}), "" if ok else str(ret)[-2000:]

    return run


def runner_switchover(salt_lab, target: str):
    """``salt-run mfa_ha.switchover <target>`` (the operator's verb) through the real CLI."""

    def run():
        ret = salt_lab.run("mfa_ha.switchover", target, check=False)
        ok = isinstance(ret, dict) and ret.get("retcode", 1) == 0 and salt_lab.last_returncode == 0
        parts = dict((ret or {}).get("parts") or {}) if isinstance(ret, dict) else {}
        if isinstance(ret, dict) and ret.get("runner"):
            parts["runner"] = ret["runner"]  # not a node: how long the runner took to start and to precheck
        return ok, parts, "" if ok else str(ret)[-2000:]

    return run


def direct_switchover(lab: Lab, target: str, hooks: Hooks | None = None):
    """The same two parts, called in-process in two threads: no Salt at all (the floor)."""
    hooks = hooks or Hooks()

    def run():
        nodes = validate_nodes({n.minion_id: {"address": n.address, "port": n.port} for n in lab.nodes})
        user = replication_config({}).user
        parts, errors = {}, []

        def part(node):
            try:
                pillar = lab.pillar(node)["mfa_ha"]
                cfg = postgres_config(pillar["postgres"])
                own = synchronous.node_settings(replication_config(pillar["replication"]), nodes, node.minion_id)
                server = Server(cfg, tls_config(pillar["tls"], nodes, cfg.data_dir), own)  # as the module builds it
                app_cfg = applib.app_config(node.pmfad_pillar())
                with lab.on(node):  # the node's own host, when the lab has hosts of its own
                    parts[node.minion_id] = sw.run_part(
                        server, app_cfg, node.minion_id, target, nodes, user, hooks, 30, lambda message: None
                    )
            except Exception as err:  # noqa: BLE001 - reported in the measurement
                errors.append(f"{node.minion_id}: {err}")

        threads = [threading.Thread(target=part, args=(node,)) for node in lab.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return not errors, parts, "; ".join(errors)

    return run


def bench_arguments(doc: str, default_count: int, script: str) -> argparse.Namespace:
    """A benchmark's command line: ``-n``, ``--loopback``, ``--synchronous``, ``--vs``, ``--out``
    (default: results/ beside it)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=default_count)
    parser.add_argument("--loopback", action="store_true", help="all on this machine's loopback, no namespaces")
    parser.add_argument(
        "--synchronous",
        choices=("off", "on", "strict"),
        default="off",
        help='mfa_ha:replication:synchronous ("on" with the unattended failover it needs: the master as witness)',
    )
    parser.add_argument("--vs", metavar="REF", help="also run the product at this git revision, side by side")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(script)), "results"))
    return parser.parse_args()


def write_results(out: str, name: str, result: dict, table: str) -> None:
    """``<name>.json`` and ``<name>.md`` in ``out``; the table printed too."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    with open(os.path.join(out, f"{name}.md"), "w", encoding="utf-8") as fh:
        fh.write(table)
    print("\n" + table)
