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

from mfa_ha import timing
from mfa_ha.unattended.lease import LeaseSettings
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
            latest = _read_config(runners)
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


def _read_config(runners):
    try:
        return runners["mfa_ha.witness_config"]()
    except Exception as err:  # noqa: BLE001 - a bad pillar: say so, keep the last good config
        log.error("mfa_ha witness: %s", err)
        return None


def _witness(runners, config):
    settings = LeaseSettings(**config["settings"])
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
        ask=lambda seq, acked, session: runners["mfa_ha.lease_round"](
            seq, acked, nodes, max(1, int(settings.witness_every)), session
        ),
        failover=lambda target, verdict: runners["mfa_ha.witness_failover"](target, [n for n in nodes if n != target]),
        alert=lambda severity, summary, details: runners["mfa_ha.witness_alert"](severity, summary, details),
    )
