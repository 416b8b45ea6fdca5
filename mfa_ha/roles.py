"""Node roles and server states. Their values appear in returns, events and SLS: keep them stable."""

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
