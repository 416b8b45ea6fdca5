"""Benchmark: many switchovers in a row while two clients write (not a timed test).

N switchovers through Salt (``salt-run state.orchestrate mfa_ha.orch.switchover``, alternating
direction, default 30), then: acknowledged writes lost, ``pg_amcheck --heapallindexed`` on
both nodes, and a ``pg_dump`` of the MFA database from each node compared. Reported per
switchover: its wall time, and on each node the size of pg_wal, the WAL that slots hold back
(and whether inactive), and the copies of the data directory kept aside. The dumps are
compared without the lines that differ for the same data (``NOT_COMPARED``). Writes
``bench/results/soak.json`` and ``soak.md``.

    bash bench/soak                 # installs what it needs, then runs this
    bash bench/soak -n 60
    bash bench/soak --loopback      # no network namespaces
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import os
import platform
import statistics
import subprocess
import time

from mfa_ha.postgres import keptaside
from mfa_ha_lab import netns
from mfa_ha_lab.lab import APP_DB, OS_USER, Lab
from mfa_ha_lab.measure import Writers, bench_arguments, measure, salt_switchover, write_results
from mfa_ha_lab.salt_daemons import SaltLab

SLOTS_SQL = (
    "SELECT slot_name, active, coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() "
    "THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn), 0)::bigint "
    "FROM pg_replication_slots ORDER BY slot_name"
)


# Lines that differ between two dumps of the same data: a standby's sequences read as far as
# the primary logged them ahead (32 values), not as far as it used them; pg_dump's \restrict
# key is random for each dump.
NOT_COMPARED = ("SELECT pg_catalog.setval(", "\\restrict ", "\\unrestrict ")


def disk(lab: Lab) -> dict:
    """pg_wal, slot retention and copies kept aside, per node."""
    found = {}
    for node in lab.nodes:
        slots = [
            {"slot": name, "active": active, "retained_bytes": retained}
            for name, active, retained in node.sql(SLOTS_SQL)
        ]
        found[node.minion_id] = {
            "pg_wal_bytes": keptaside.tree_bytes(os.path.join(node.data_dir, "pg_wal")),
            "slots": slots,
            "inactive_slot_bytes": sum(s["retained_bytes"] for s in slots if not s["active"]),
            "kept_aside_bytes": sum(c["bytes"] for c in keptaside.kept(node.data_dir)),
        }
    return found


def tool(lab: Lab, node, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "runuser",
            "-u",
            OS_USER,
            "--",
            os.path.join(node.bin_dir, name),
            "-h",
            node.socket_dir,
            "-p",
            str(node.port),
            "-U",
            "postgres",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def integrity(lab: Lab, primary) -> dict:
    """pg_amcheck on both nodes (amcheck installed on the primary first, replicated), and both
    nodes' dumps of the MFA database compared once the standby replayed everything."""
    checks = {primary.minion_id: tool(lab, primary, "pg_amcheck", "--all", "--heapallindexed", "--install-missing")}
    lsn = primary.sql("SELECT pg_current_wal_lsn()::text")[0][0]
    deadline = time.monotonic() + 120
    for node in lab.nodes:
        while node is not primary and not node.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0]:
            if time.monotonic() > deadline:
                raise SystemExit(f"{node.minion_id} did not replay up to {lsn} within 120 s")
            time.sleep(0.1)
    result, dumps = {}, {}
    for node in lab.nodes:
        if node is not primary:
            checks[node.minion_id] = tool(lab, node, "pg_amcheck", "--all", "--heapallindexed")
        dump = tool(lab, node, "pg_dump", "-d", APP_DB)
        dumps[node.minion_id] = [
            line for line in dump.stdout.splitlines(keepends=True) if not line.startswith(NOT_COMPARED)
        ]
        check = checks[node.minion_id]
        result[node.minion_id] = {
            "amcheck_ok": check.returncode == 0,
            "amcheck_output": (check.stdout + check.stderr)[-1000:],
            "dump_sha256": hashlib.sha256("".join(dumps[node.minion_id]).encode()).hexdigest(),
            "dump_ok": dump.returncode == 0,
        }
    first, second = (dumps[n.minion_id] for n in lab.nodes)
    if first != second:
        result["dump_diff"] = "".join(list(difflib.unified_diff(first, second, *(n.minion_id for n in lab.nodes)))[:40])
    return result


def run(count: int, loopback: bool = False) -> dict:
    runs = []
    with (
        netns.hosts_if_possible(loopback) as (network, unavailable),
        Lab(network=network) as lab,
        SaltLab(lab) as salt_lab,
    ):
        where = "hosts of their own (network namespaces)" if network else f"loopback ({unavailable})"
        print(f"lab on {where}: prod {lab.prod.address}, dr {lab.dr.address}", flush=True)
        salt_lab.run("state.orchestrate", "mfa_ha.orch.setup")
        targets = [lab.dr.minion_id, lab.prod.minion_id]
        started = time.monotonic()
        with Writers(lab) as writers:
            for i in range(count):
                result, _ = measure(writers, "salt", targets[i % 2], salt_switchover(salt_lab, targets[i % 2]))
                runs.append(
                    {
                        "n": i + 1,
                        "target": targets[i % 2],
                        "wall": result.wall,
                        "ok": result.ok,
                        "db_gap": result.db_gap,
                        "disk": disk(lab),
                    }
                )
                print(
                    f"#{i + 1:3} -> {targets[i % 2]:11} wall {result.wall:6.3f} s  db gap {result.db_gap:5.3f} s  "
                    + "  ".join(
                        f"{n}: pg_wal {d['pg_wal_bytes'] >> 20} MiB, inactive slots "
                        f"{d['inactive_slot_bytes'] >> 20} MiB"
                        for n, d in runs[-1]["disk"].items()
                    )
                    + ("" if result.ok else "  FAILED: " + result.error[-300:]),
                    flush=True,
                )
                time.sleep(1)
        primary = next(n for n in lab.nodes if n.sql("SELECT NOT pg_is_in_recovery()")[0][0])
        lost = {k: len(v) for k, v in writers.lost(primary).items()}
        acked = writers.acked()
        checks = integrity(lab, primary)
    walls = [r["wall"] for r in runs]
    third = max(1, count // 3)
    return {
        "count": count,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "hosts": where,
        "seconds": round(time.monotonic() - started, 1),
        "failed": sum(not r["ok"] for r in runs),
        "acknowledged": acked,
        "lost": lost,
        "integrity": checks,
        "runs": runs,
        "wall_first_third_median": round(statistics.median(walls[:third]), 3),
        "wall_last_third_median": round(statistics.median(walls[-third:]), 3),
    }


def markdown(result: dict) -> str:
    first, last = result["runs"][0]["disk"], result["runs"][-1]["disk"]
    checks = {n: c for n, c in result["integrity"].items() if n != "dump_diff"}
    dumps = {c["dump_sha256"] for c in checks.values()}
    lines = [
        f"{result['count']} switchovers in a row through Salt, alternating direction, writers every 20 ms from "
        f"the clients' host; the lab on {result['hosts']}; {result['machine']}; {result['date']}; "
        f"{result['seconds']} s in all.",
        "",
        f"- acknowledged writes: {result['acknowledged']['app']} through the app, {result['acknowledged']['direct']}"
        f" direct; lost: {result['lost']['app']} and {result['lost']['direct']}; failed switchovers: "
        f"{result['failed']}",
        "- pg_amcheck --heapallindexed: "
        + ", ".join(f"{n} {'clean' if c['amcheck_ok'] else 'FAILED'}" for n, c in checks.items())
        + f"; pg_dump of both nodes {'identical' if len(dumps) == 1 else 'DIFFERENT'}",
        f"- switchover wall time, median of the first third {result['wall_first_third_median']} s, of the last "
        f"third {result['wall_last_third_median']} s",
        "",
        "| node | pg_wal after the 1st / last | WAL held by inactive slots, 1st / last | kept aside, 1st / last |",
        "|---|---|---|---|",
    ]
    for node in sorted(first):
        a, b = first[node], last[node]
        lines.append(
            f"| {node} | {a['pg_wal_bytes'] >> 20} / {b['pg_wal_bytes'] >> 20} MiB | "
            f"{a['inactive_slot_bytes'] >> 20} / {b['inactive_slot_bytes'] >> 20} MiB | "
            f"{a['kept_aside_bytes'] >> 20} / {b['kept_aside_bytes'] >> 20} MiB |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = bench_arguments(__doc__, 30, __file__)
    result = run(args.count, args.loopback)
    write_results(args.out, "soak", result, markdown(result))
    checks = [c for n, c in result["integrity"].items() if n != "dump_diff"]
    bad = result["failed"] or any(result["lost"].values()) or not all(c["amcheck_ok"] and c["dump_ok"] for c in checks)
    if bad or "dump_diff" in result["integrity"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
