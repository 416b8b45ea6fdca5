"""Benchmark: what synchronous replication costs a commit, at several round trips between
the data centres (not a timed test).

pgbench from the clients' host writes one row per transaction (the MFA table, as pmfad
does) to the primary, with ``synchronous_standby_names`` empty (off) and then naming the
standby (on: what ``synchronous: on`` and ``strict`` run with while the standby
acknowledges), at each round trip the lab's wan adds between DC1 and DC2 (its delay line,
``mfa_ha_lab.netns.Network.delay``). Writes ``bench/results/synchronous.json`` and ``.md``.

    bash bench/synchronous                      # installs what it needs, then runs this
    bash bench/synchronous --rtt 0,10 -s 20     # round trips (ms) and seconds per run
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import time

from mfa_ha_lab import netns
from mfa_ha_lab.lab import APP_DB, APP_USER, LAB_PASSWORD, Lab
from mfa_ha_lab.measure import write_results
from mfa_ha_lab.salt_daemons import SaltLab

INSERT = "INSERT INTO auth_events (node, client_seq) VALUES ('pgbench', :client_id);\n"
JITTER_SHARE = 0.1  # jitter as a share of the round trip, as a WAN has
MODES = {"off": "", "on": '"server_dr"'}


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", default="0,2,10,30", help="round trips to add, ms, comma-separated")
    parser.add_argument("-s", "--seconds", type=int, default=15, help="each pgbench run")
    parser.add_argument("-c", "--clients", type=int, default=4)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    return parser.parse_args()


def set_names(lab, names: str) -> None:
    lab.prod.sql("ALTER SYSTEM SET synchronous_standby_names = %s", (names,))
    lab.prod.sql("SELECT pg_reload_conf()")
    wanted = "sync" if names else "async"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if lab.prod.sql("SELECT sync_state FROM pg_stat_replication") == [(wanted,)]:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the standby is not {wanted} within 60 s")


def pgbench(lab, script: str, seconds: int, clients: int) -> dict:
    command = [os.path.join(lab.prod.bin_dir, "pgbench"), "-n", "-f", script, "-T", str(seconds)]
    command += ["-c", str(clients), "-j", str(min(clients, 2)), "-h", lab.prod.address, "-p", str(lab.prod.port)]
    command += ["-U", APP_USER, APP_DB]
    env = {**os.environ, "PGPASSWORD": LAB_PASSWORD, "PGSSLMODE": "prefer"}
    with lab.on_clients():
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    tps = re.search(r"tps = ([\d.]+)", done.stdout)
    return {"latency_ms": float(latency.group(1)), "tps": round(float(tps.group(1)), 1)}


def run(rtts: list[float], seconds: int, clients: int) -> dict:
    rows = []
    with netns.Network() as net, Lab(network=net) as lab, SaltLab(lab) as salt_lab:
        salt_lab.run("state.orchestrate", "mfa_ha.orch.setup")
        script = os.path.join(lab.root, "insert.sql")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(INSERT)
        os.chmod(script, 0o644)
        for rtt in rtts:
            if rtt:
                net.delay("dc1", "dc2", rtt, rtt * JITTER_SHARE)
            else:
                net.undelay()
            measured = sorted(net.round_trip_ms("dc1", "dc2", 30))
            row = {"rtt_ms": rtt, "measured_rtt_ms": round(measured[len(measured) // 2], 2)}
            for mode, names in MODES.items():
                set_names(lab, names)
                row[mode] = pgbench(lab, script, seconds, clients)
                print(f"rtt {rtt:4g} ms (measured {row['measured_rtt_ms']} ms) {mode:3}: {row[mode]}", flush=True)
            rows.append(row)
        set_names(lab, "")
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "date": time.strftime("%Y-%m-%d"),
        "seconds": seconds,
        "clients": clients,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"pgbench, {result['clients']} clients from the clients' host, {result['seconds']} s per run, one INSERT "
        f"per transaction; {result['machine']}; {result['date']}.",
        "",
        "| round trip added (measured), ms | off: latency ms / tps | on: latency ms / tps | latency on - off, ms |",
        "|---|---|---|---|",
    ]
    for row in result["rows"]:
        off, on = row["off"], row["on"]
        lines.append(
            f"| {row['rtt_ms']:g} ({row['measured_rtt_ms']}) | {off['latency_ms']} / {off['tps']} | "
            f"{on['latency_ms']} / {on['tps']} | {on['latency_ms'] - off['latency_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    args = arguments()
    reason = netns.available()
    if reason:
        raise SystemExit(f"this benchmark needs the lab's hosts of their own: {reason}")
    result = run([float(x) for x in args.rtt.split(",")], args.seconds, args.clients)
    write_results(args.out, "synchronous", result, markdown(result))


if __name__ == "__main__":
    main()
