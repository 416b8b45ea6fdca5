"""The lab demo, mfa-ha's main job: a salt-master, two salt-minions, two PostgreSQL servers and
the pmfad stand-in, on hosts of their own (network namespaces: DC1, DC2, the master's site,
the clients) when this machine allows it, else on loopback (``--loopback`` asks for that);
replication set up by ``mfa_ha.orch.setup``, the cluster
shown by ``mfa_ha.status``, then a switchover to dr and back while two clients keep writing;
a summary of each phase, the app outage, the longest write gaps and the rows lost.
Everything it starts, it stops.

    bash scripts/demo.sh            # installs what it needs, then runs this
"""

from __future__ import annotations

import argparse
import time

from mfa_ha_lab import netns
from mfa_ha_lab.lab import Lab
from mfa_ha_lab.measure import Writers, measure
from mfa_ha_lab.salt_daemons import SaltLab


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def switchover(salt_lab: SaltLab, target: str):
    """``salt-run mfa_ha.switchover`` (prechecks, then the orchestration) through the CLI."""

    def run():
        ret = salt_lab.run("mfa_ha.switchover", target, check=False)
        ok = isinstance(ret, dict) and ret.get("ok") is True
        for line in (ret or {}).get("phases", []):
            print(f"   {line}", flush=True)
        if not ok:
            print(f"   FAILED: {str(ret)[-2000:]}", flush=True)
        return ok, (ret or {}).get("parts", {}), "" if ok else "switchover failed"

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab's files (servers are stopped)")
    parser.add_argument("--loopback", action="store_true", help="all on this machine's loopback, no namespaces")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with netns.hosts_if_possible(args.loopback) as (network, unavailable):
        return _run(args, started, network, unavailable)


def _run(args, started: float, network, unavailable) -> int:
    lab = Lab(network=network)
    where = (
        f"hosts of their own: DC1 {lab.prod.address}, DC2 {lab.dr.address}, master "
        f"{lab.master_address}, clients {lab.clients}"
        if network
        else f"loopback ({unavailable})"
    )
    banner(f"lab in {lab.root}: prod {lab.prod.address} (server_prod), dr {lab.dr.address} (server_dr); {where}")
    try:
        lab.create()
        with SaltLab(lab) as salt_lab:
            print(f"   salt-master and 2 minions up after {time.monotonic() - started:.1f} s", flush=True)
            banner("salt-run state.orchestrate mfa_ha.orch.setup")
            setup = salt_lab.run("state.orchestrate", "mfa_ha.orch.setup", output="highstate")
            print(_tail(setup), flush=True)
            print(f"   setup took {salt_lab.last_seconds:.1f} s", flush=True)
            banner("salt-run mfa_ha.status")
            print(salt_lab.run("mfa_ha.status", output="mfa_ha_status", check=False), flush=True)
            results = []
            with Writers(lab) as writers:
                for target in ("server_dr", "server_prod"):
                    banner(f"salt-run mfa_ha.switchover {target}   (clients writing every 20 ms)")
                    result, _ = measure(writers, "salt", target, switchover(salt_lab, target))
                    results.append(result)
                    print(salt_lab.run("mfa_ha.status", output="mfa_ha_status", check=False), flush=True)
            lost = writers.lost(lab.prod)  # the writers have stopped; prod is the primary again
            acked = writers.acked()
        _summary(results, acked, lost, time.monotonic() - started)
        return 0 if all(r.ok for r in results) and not any(lost.values()) else 1
    finally:
        lab.destroy(keep=args.keep)


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def _summary(results, acked: dict, lost: dict, total: float) -> None:
    banner("summary")
    for r in results:
        print(
            f"   to {r.target:11}: salt-run {r.wall:.2f} s, app outage {r.app_outage} s, old primary streaming "
            f"again after {r.restream} s; longest write gap {r.db_gap:.3f} s direct, {r.app_gap:.3f} s "
            f"through the app{'' if r.ok else '  (FAILED)'}"
        )
    print(
        f"   writes acknowledged: {acked['app']} through the app, {acked['direct']} direct; "
        f"lost: {len(lost['app'])} and {len(lost['direct'])}"
    )
    print(f"   whole demo {total:.0f} s; everything it started is stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
