"""
Replication health beacon: reads this node's PostgreSQL once per interval (one connection,
one query, no subprocess) and fires events on transitions only, plus a heartbeat.

.. code-block:: yaml

    beacons:
      pgrepl:
        - interval: 10
        - report_interval: 60          # heartbeat with the full figures
        - lag_warn_bytes: 16777216
        - lag_crit_bytes: 268435456
        - lag_warn_seconds: 30
        - lag_crit_seconds: 300
        - hysteresis: 0.8              # lag/ok only below 80 % of the warn thresholds
        - receiver_down_after: 3       # polls without streaming before receiver/down
        - slot_max_retained_bytes: 1073741824
        - slot_inactive_seconds: 600

Events (``salt/beacon/<minion>/pgrepl/<kind>/<what>``): ``lag/alert``, ``lag/ok``,
``receiver/down``, ``receiver/up``, ``role/changed``, ``slot/alert``, ``server/down``,
``server/up``, ``heartbeat`` (with ``kept_aside``: the copies of the data directory clones
moved aside, path and bytes). Every event but the heartbeat carries ``event_id``, an
unguessable token this minion remembers: the master's alert runner sends an alert only after
this minion confirms, by that id, that its beacon fired the event (``pgrepl.beacon_fired``),
so another minion cannot forge one. The server is found from pillar ``mfa_ha:postgres``.
State between polls is kept in the minion's cache directory, so a beacon refresh does not
repeat or lose a transition.
"""

import time

import salt.utils.beacons

from mfa_ha import maintenance
from mfa_ha.adapters.saltface import pillar_value
from mfa_ha.errors import InvalidInput
from mfa_ha.files import read_json, write_json
from mfa_ha.monitoring import health
from mfa_ha.postgres import keptaside
from mfa_ha.postgres.config import postgres_config
from mfa_ha.unattended.lease import lease_settings

__virtualname__ = "pgrepl"


def __virtual__():
    return __virtualname__


def validate(config):
    """Check the beacon configuration, naming any bad key or value."""
    try:
        health.thresholds(salt.utils.beacons.list_to_dict(config))
    except (InvalidInput, ValueError, TypeError, AttributeError) as err:
        return False, f"pgrepl beacon: {err}"
    return True, "valid pgrepl beacon configuration"


def _paused() -> dict | None:
    """This node's pause of automatic failover, if any (a bad failover pillar: none here;
    the pillar's validation names it)."""
    try:
        settings = lease_settings(pillar_value(__pillar__, "mfa_ha:failover", {}))
    except InvalidInput:
        return None
    return maintenance.read(settings.pause_file)


def beacon(config):
    thresholds = health.thresholds(salt.utils.beacons.list_to_dict(config))
    cfg = postgres_config(pillar_value(__pillar__, "mfa_ha:postgres", {}))
    path = health.state_path(__opts__["cachedir"])
    now = time.time()
    events, state = health.transitions(read_json(path), health.read(cfg), thresholds, now, _paused())
    for event in events:
        event["id"] = __opts__["id"]
        if event["tag"] == "heartbeat":
            event["kept_aside"] = [{"path": c["path"], "bytes": c["bytes"]} for c in keptaside.kept(cfg.data_dir)]
        if event["tag"] != "heartbeat":
            event["event_id"] = health.record_fired(state, event, now)
    write_json(path, state)  # before the events leave: the master may ask at once
    return events
