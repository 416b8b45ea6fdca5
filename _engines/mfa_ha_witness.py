"""
The master as witness of an unattended failover (``mfa_ha:failover:automatic``, off by
default): renews the primary's lease every ``witness_every`` seconds, watches the standby's
WAL receiver, and fails over only when ``mfa_ha.unattended.witness.witness_verdict`` says so, with an
alert naming every measurement. The decision and its proof are in ``mfa_ha.unattended.lease`` and
``mfa_ha.unattended.witness``; this engine only drives them.

.. code-block:: yaml

    # master config
    engines:
      - mfa_ha_witness: {}      # or {pillar_every: 30}: seconds between reads of the pillar
"""

import logging
import time

import salt.loader

from mfa_ha import maintenance, timing
from mfa_ha.adapters import master
from mfa_ha.adapters.pillar import validate_nodes
from mfa_ha.errors import InvalidInput
from mfa_ha.monitoring import status as cluster
from mfa_ha.postgres.config import replication_config
from mfa_ha.unattended import lease
from mfa_ha.unattended.witness import Witness

log = logging.getLogger(__name__)
PILLAR_EVERY = 30  # seconds between reads of the master's pillar


def start(pillar_every=PILLAR_EVERY):
    runners = salt.loader.runner(__opts__, utils=salt.loader.utils(__opts__))
    witness, config, next_read = None, None, 0.0
    while True:
        started = time.monotonic()
        if started >= next_read:
            next_read = started + float(pillar_every)
            latest = _read_config()
            if latest is not None and latest != config:
                config = latest
                witness = _witness(runners, config)
        if witness is not None:
            try:
                witness.tick()
            except Exception:
                log.exception("mfa_ha witness: round failed")
        pace = witness.settings.witness_every if witness is not None else timing.WITNESS_IDLE_SECONDS
        time.sleep(max(0.0, pace - (time.monotonic() - started)))


def _witness_config(opts) -> dict:
    """What the witness runs with: ``mfa_ha:failover`` checked, the node ids and the pillar's
    primary (its first guess, until a node answers as the primary)."""
    pillar = master.pillar(opts)
    nodes = validate_nodes(pillar.get("nodes"))
    settings = lease.lease_settings(pillar.get("failover"))
    if settings.automatic and len(nodes) != 2:
        raise InvalidInput(f"mfa_ha:nodes: automatic failover needs exactly two nodes, found {len(nodes)}")
    synchronous = replication_config(pillar.get("replication")).synchronous == "on"
    return {
        "settings": lease.settings_dict(settings),
        "nodes": sorted(nodes),
        "primary": pillar.get("primary"),
        "synchronous": synchronous,
    }


def _lease_round(opts, seq, acked, nodes, timeout, session="", words=None) -> dict:
    """One renewal job (``pgrepl.lease_renew``) to every node; ``{id: answer or error text}``
    with what returned within ``timeout`` seconds: a silent node must not delay the renewal
    of the other (a job that waits for every minion would, and then ask it again with find_job)."""
    return master.returns_within(
        opts, list(nodes), "pgrepl.lease_renew", [int(seq), dict(acked), str(session), dict(words or {})], timeout
    )


def _witness_failover(opts, target, lost) -> dict:
    """The failover orchestration, run as an operator would, with the loss confirmed by the
    witness's measurements (``mfa_ha.unattended.witness.witness_verdict``); ``lost``: the
    nodes it measured silent."""
    ran = master.orchestrate_as_operator(
        opts, "mfa_ha.orch.failover", {"mfa_ha": {"target": target, "confirm_primary_lost": True, "lost": list(lost)}}
    )
    ok = isinstance(ran, dict) and ran.get("retcode") == 0
    output = None if ok else (cluster.precheck_lines(ran) or str(ran)[-2000:])
    master.remember(
        opts, "failover", "done by the witness" if ok else "failed (witness)", str(output or "done"), target=target
    )
    return {"ok": ok, "output": output}


def _witness_alert(opts, runners, severity, summary, details=None) -> dict:
    """An alert from the witness: the master event ``mfa_ha/alert/<severity>``, the master
    log and every target of ``mfa_ha:alerts``."""
    return master.deliver(opts, severity, summary, details or {}, master.pillar(opts).get("alerts"), runners)


def _read_config():
    try:
        return _witness_config(__opts__)
    except Exception as err:  # noqa: BLE001 - a bad pillar: say so, keep the last good config
        log.error("mfa_ha witness: %s", err)
        return None


def _witness(runners, config):
    settings = lease.LeaseSettings(**config["settings"])
    if not settings.automatic:
        log.info("mfa_ha witness: automatic failover is off (mfa_ha:failover:automatic)")
        return None
    nodes = config["nodes"]
    log.warning(
        "mfa_ha witness: watching %s (lease %g s, failover after %g s)",
        ", ".join(nodes),
        settings.lease_seconds,
        settings.failover_after,
    )
    return Witness(
        settings,
        nodes,
        config.get("primary"),
        ask=lambda seq, acked, session, words: _lease_round(
            __opts__, seq, acked, nodes, settings.witness_job_seconds, session, words
        ),
        failover=lambda target, verdict: _witness_failover(__opts__, target, [n for n in nodes if n != target]),
        alert=lambda severity, summary, details: _witness_alert(__opts__, runners, severity, summary, details),
        paused=lambda: maintenance.read(master.pause_path(__opts__)),
        standbys=lambda: master.standby_records(__opts__),
        record_standby=lambda node, record: master.record_standby(__opts__, node, record),
        synchronous=bool(config.get("synchronous")),
    )
