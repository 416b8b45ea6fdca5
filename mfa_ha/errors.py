"""One exception hierarchy for the core, one class per meaning, free of Salt.

The Salt faces translate them (``mfa_ha.adapters.saltface.translate_errors``): a bad argument
(``InvalidInput``) becomes Salt's ``SaltInvocationError``; a bad pillar (``InvalidPillar``) and
every other error ``CommandExecutionError`` (a pillar is not an argument of the call), with the
message the core wrote.
"""


class MfaHaError(Exception):
    """Something on a node is not as the operation needs it."""


class InvalidInput(ValueError):
    """A parameter or pillar value is malformed; nothing was changed."""


class InvalidPillar(InvalidInput):
    """The ``mfa_ha`` pillar is malformed (every problem named with its key); nothing was changed."""


class CommandFailed(MfaHaError):
    """An external command (pg_ctl, pg_basebackup, startsrc, ...) failed."""


class ServerNotRunning(MfaHaError):
    """The operation needs a running PostgreSQL server."""


class ServerRunning(MfaHaError):
    """The operation needs the PostgreSQL server to be stopped."""


class DataDirMissing(MfaHaError):
    """The data directory does not exist or is not a PostgreSQL cluster."""


class ConnectionFailed(MfaHaError):
    """A connection to a PostgreSQL server failed (down, unreachable, bad password)."""


class NotStandbyError(MfaHaError):
    """The operation needs a standby and the server is a primary."""


class NotCleanlyShutDown(MfaHaError):
    """The server's control file does not record a clean shutdown."""


class LsnNotReached(MfaHaError):
    """A standby did not receive/replay a required LSN in time."""


class VersionMismatch(MfaHaError):
    """Two servers (or a server and its binaries) have different major versions."""


class ServiceError(MfaHaError):
    """The application service could not be brought to the wanted state."""


class NeedsRejoin(MfaHaError):
    """The node can follow the primary only after a clone or rewind (mfa_ha.orch.rejoin)."""


class InsufficientSpace(MfaHaError):
    """Not enough free disk for a step; nothing was changed."""
