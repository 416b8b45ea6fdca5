"""Validation of the whole ``mfa_ha`` pillar: every problem named by its key, before any change."""

from __future__ import annotations

import ipaddress
import socket

from mfa_ha.app import app_config
from mfa_ha.errors import InvalidInput, InvalidPillar
from mfa_ha.monitoring.alerts import alert_thresholds
from mfa_ha.monitoring.alerts import targets as alert_targets
from mfa_ha.monitoring.endpoint import endpoint_settings
from mfa_ha.pair.service_address import Hooks
from mfa_ha.postgres.config import MFA_DATA_DIR, check_port, postgres_config, replication_config
from mfa_ha.postgres.hba import wanted_entries as hba_entries
from mfa_ha.postgres.naming import check_address, slot_name, validate_slot_name
from mfa_ha.postgres.tls import tls_config
from mfa_ha.unattended.lease import lease_settings

NODE_KEYS = {"address", "port", "slot"}
NODE_REFERENCES = ("primary", "target")
TOP_KEYS = {
    "nodes",
    "primary",
    "target",
    "postgres",
    "replication",
    "pmfad",
    "hba",
    "standby",
    "settings_restart",
    "switchover",
    "service_address",
    "confirm_primary_lost",
    "confirm_data_loss",
    "alerts",
    "node",
    "tls",
    "failover",
    "lost",
    "endpoint",
}
SWITCHOVER_KEYS = {"max_lag_bytes", "timeout", "job_timeout"}


def validate(pillar, node_id: str | None = None) -> dict:
    """Check ``mfa_ha`` pillar; returns ``{node_id: {address, port, slot}}`` or raises
    InvalidPillar listing every problem with its key. With ``node_id`` (on a minion) that
    node's own TLS certificate and key are verified too."""
    if not isinstance(pillar, dict):
        raise InvalidPillar(f"mfa_ha: must be a mapping, got {type(pillar).__name__}")
    problems = []
    unknown = set(pillar) - TOP_KEYS
    if unknown:
        problems.append(f"mfa_ha: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(TOP_KEYS))})")
    raw_nodes = pillar.get("nodes") if isinstance(pillar.get("nodes"), dict) else {}
    try:
        nodes = validate_nodes(pillar.get("nodes"))
    except InvalidInput as err:
        problems.append(str(err))
        nodes = {}
    for ref in NODE_REFERENCES:
        if pillar.get(ref) is not None and pillar[ref] not in raw_nodes:
            problems.append(f"mfa_ha:{ref}: unknown node id {pillar[ref]!r} (nodes: {', '.join(raw_nodes)})")
    checks = (
        lambda: postgres_config(pillar.get("postgres")),
        lambda: replication_config(pillar.get("replication")),
        lambda: _password(pillar.get("replication")),
        lambda: app_config(pillar.get("pmfad")),
        lambda: _switchover(pillar.get("switchover")),
        lambda: Hooks.from_pillar(pillar.get("service_address")),
        lambda: alert_targets(pillar.get("alerts")),
        lambda: alert_thresholds(pillar.get("alerts")),
        lambda: lease_settings(pillar.get("failover")),
        lambda: endpoint_settings(pillar.get("endpoint")),
        lambda: _synchronous_needs_the_witness(pillar),
        lambda: hba_entries(nodes, replication_config(pillar.get("replication")).user, pillar.get("hba")),
        lambda: tls_config(pillar.get("tls"), nodes, _data_dir(pillar), node_id if node_id in nodes else None),
    )
    for check in checks:
        try:
            check()
        except InvalidInput as err:
            problems.append(str(err))
    if problems:
        raise InvalidPillar("invalid mfa_ha pillar:\n- " + "\n- ".join(problems))
    return nodes


def _data_dir(pillar) -> str:
    postgres = pillar.get("postgres") if isinstance(pillar.get("postgres"), dict) else {}
    return str(postgres.get("data_dir") or MFA_DATA_DIR)


def validate_nodes(raw_nodes) -> dict:
    """``mfa_ha:nodes`` checked: ``{node_id: {address, port, slot}}``, every problem named."""
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        raise InvalidInput("mfa_ha:nodes: must map each minion id to its address")
    nodes, problems = {}, []
    for node_id, node in raw_nodes.items():
        try:
            nodes[node_id] = _node(node_id, node)
        except InvalidInput as err:
            problems.append(str(err))
    if problems:
        raise InvalidInput("\n- ".join(problems))
    return nodes


def _node(node_id: str, node) -> dict:
    key = f"mfa_ha:nodes:{node_id}"
    if not isinstance(node, dict):
        raise InvalidInput(f"{key}: must be a mapping with an address")
    unknown = set(node) - NODE_KEYS
    if unknown:
        raise InvalidInput(f"{key}: unknown key(s) {', '.join(sorted(unknown))}")
    return {
        "address": check_address(node.get("address"), f"{key}:address"),
        "port": check_port(node.get("port", 5432), f"{key}:port"),
        "slot": _slot(node.get("slot"), node_id, f"{key}:slot"),
    }


def _slot(value, node_id: str, key: str) -> str:
    if value is None:
        return slot_name(node_id)
    try:
        return validate_slot_name(value)
    except InvalidInput as err:
        raise InvalidInput(f"{key}: {err}") from None


def _switchover(value) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidInput("mfa_ha:switchover: must be a mapping (max_lag_bytes, timeout, job_timeout)")
    unknown = set(value) - SWITCHOVER_KEYS - {"requesters"}
    if unknown:
        raise InvalidInput(f"mfa_ha:switchover: unknown key(s) {', '.join(sorted(unknown))}")
    requesters = value.get("requesters") or []
    if not isinstance(requesters, list) or not all(isinstance(r, str) for r in requesters):
        raise InvalidInput("mfa_ha:switchover:requesters: must be a list of minion ids")
    for key, number in ((k, v) for k, v in value.items() if k in SWITCHOVER_KEYS):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number <= 0:
            raise InvalidInput(f"mfa_ha:switchover:{key}: must be a positive number, got {number!r}")


def _synchronous_needs_the_witness(pillar) -> None:
    mode = replication_config(pillar.get("replication")).synchronous
    if mode == "on" and not lease_settings(pillar.get("failover")).automatic:
        raise InvalidInput(
            "mfa_ha:replication:synchronous: 'on' needs mfa_ha:failover:automatic: true (the keeper drops the "
            "standby only once the master, as witness, recorded it as behind); without it use 'strict'"
        )


def _password(replication) -> None:
    if not isinstance(replication, dict) or not replication.get("password"):
        raise InvalidInput("mfa_ha:replication:password: missing (keep it in an encrypted pillar)")


def unresolvable(nodes: dict, resolve=socket.getaddrinfo) -> list[str]:
    """The node addresses that are names this host cannot resolve, each named by its key: a
    peer's pg_hba entry and pgpass line would hold a name that reaches nothing."""
    problems = []
    for node_id, node in sorted(nodes.items()):
        address = node["address"]
        try:
            ipaddress.ip_address(address)
            continue
        except ValueError:
            pass
        try:
            resolve(address, None)
        except (socket.gaierror, UnicodeError) as err:
            problems.append(
                f"mfa_ha:nodes:{node_id}:address: {address!r} does not resolve on this node "
                f"({getattr(err, 'strerror', None) or err}): use an IP address or a name it resolves"
            )
    return problems
