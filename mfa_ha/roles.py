"""Node roles and server states. Their values appear in returns, events and SLS: keep them stable."""

from collections.abc import Mapping
from enum import Enum


class Role(str, Enum):
    PRIMARY = "primary"
    STANDBY = "standby"
    UNKNOWN = "unknown"  # server stopped and control file not conclusive


class ServerState(str, Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    MISSING = "missing"  # no cluster in the data directory


class ServiceState(str, Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


def accepts_writes(status) -> bool:
    """A node's answer (``pgrepl.status``, a lease answer, a status row) says its live server
    is a primary; an error text or a missing answer says nothing of the kind."""
    return isinstance(status, Mapping) and bool(status.get("running")) and status.get("role") == Role.PRIMARY


def primaries(statuses: Mapping) -> list[str]:
    """The ids, sorted, whose answer says their live server accepts writes."""
    return sorted(node for node, status in statuses.items() if accepts_writes(status))
