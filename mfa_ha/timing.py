"""Every timing of the project, decided once, each with its reason: poll intervals, connect
and statement timeouts, stop bounds, retries, and the budgets the unattended failover's safety
rests on, computed from their parts (``mfa_ha.unattended.lease`` states the inequality they serve).

A fence ends writes first (standby configuration, then PostgreSQL stopped) and stops pmfad
after: the witness's margin must cover the first part only; the watchdog lets a fencing keeper
finish each part within its own bound before it replaces it.
"""

from __future__ import annotations

# -- the fence: the steps the lease inequality counts (writes_end_bound, fence_bound)
PG_CTL_SECONDS = 2  # one pg_ctl status or stop -W: it reads postmaster.pid and sends a signal, no waiting
STANDBY_CONFIG_SECONDS = 1  # standby.signal and postgresql.auto.conf written in the data directory
FAST_STOP_SECONDS = 3  # then immediate: with the standby unreachable a fast stop waits for it; the WAL is durable
IMMEDIATE_STOP_SECONDS = 6  # PostgreSQL kills (SIGKILL) children that ignore an immediate stop after 5 s
SRC_FORCED_STOP_SECONDS = 10  # after stopsrc -f (SIGKILL): the subsystem leaves lssrc's active list
KEEPER_START_SECONDS = 5  # a new keeper's first heartbeat (Python started, modules imported)

# -- PostgreSQL on one node
LOCAL_CONNECT_SECONDS = 5  # a connection to this node's own server over its socket
PID_FILE_POLL_SECONDS = (
    0.01  # postmaster.pid changes within milliseconds of a start or stop (pg_ctl -w looks every 100 ms)
)
PID_FILE_GRACE_SECONDS = 5  # a starting postmaster writes postmaster.pid within this, or it has exited
PEER_TOOL_CONNECT_SECONDS = 5  # a tool (pg_basebackup, pg_rewind, a replication check) connecting across the DC link
PEER_TCP_USER_TIMEOUT_MS = 25_000  # a query in flight when the link goes silent ends after this (TCP keepalives probe idle connections only; retransmissions alone take ~15 min)
LOCAL_STATEMENT_SECONDS = 120  # the tool's own statements on its node never wait forever on a stuck one
LOCK_WAIT_SECONDS = 30  # ... nor on a lock
PEER_STATEMENT_SECONDS = 30  # a statement on the other node
REPLICATION_POLL_SECONDS = 0.1  # replication state (a receiver, a replay position) between queries
PROMOTE_POLL_SECONDS = 0.01  # pg_is_in_recovery() after a promote: this wait is inside the switchover's write gap
COPY_SECONDS = (
    3600  # a clone (pg_basebackup) or a rewind copies the database across the DC link: its own bound, not its caller's
)
WAL_READ_SECONDS = 30  # pg_waldump reading a few pages of this node's own pg_wal
WAL_SCAN_SECONDS = 120  # pg_waldump counting the commits of a former primary's WAL after a fork
SOURCE_CHECKPOINT_SECONDS = (
    60  # a new primary's first checkpoint (its control file names the new timeline only then), before pg_rewind
)

# -- the two nodes
SWITCHOVER_POLL_SECONDS = (
    0.02  # the switch's own waits (the shutdown checkpoint arriving, the peer promoted): inside the write gap
)
STANDBY_POLL_SECONDS = 0.05  # a standby starting to stream
DIVERGENCE_GRACE_SECONDS = 5.0  # a standby may take this long to start streaming before its timeline is doubted
PEER_CONNECT_SECONDS = (
    3  # this tool's own session to the other node: a peer that does not answer within it counts as unreachable
)
REPLAY_CATCH_UP_SECONDS = 30  # a failover's target replays what it already received before it is promoted

# -- the application service
APP_POLL_SECONDS = 0.05  # the service manager's status and the app's health endpoint

# -- monitoring
BEACON_CONNECT_SECONDS = 2  # the beacon's one read of the local server: it runs every few seconds
STATUS_TURN_POLL_SECONDS = 0.02  # a status job waiting for the one under way on its node
ENDPOINT_CACHE_SECONDS = 0.5  # the health endpoint's requests share one reading of the node this long
ENDPOINT_PEER_SECONDS = 1  # the endpoint asks the other node its role this often, beside the requests
ENDPOINT_PEER_CONNECT_SECONDS = 2  # libpq's shortest connect timeout
ENDPOINT_REQUEST_SECONDS = 5  # a client that sends nothing (or stalls its TLS handshake) holds a thread this long
ENDPOINT_RELOAD_SECONDS = 1  # the endpoint reads its config this often; a changed one re-binds it

# -- the unattended failover
HEARTBEAT_RECEIVE_SECONDS = 0.5  # how often the heartbeat's receiving thread looks whether it should end
SYNC_LOST_SECONDS = 5  # synchronous: on: a standby not acknowledging for this long is lost, the keeper asks the witness

# -- the Salt faces
NODE_STATUS_TURN_SECONDS = 5  # a status job waits this long for the one under way: within the master's status timeout
STATUS_TIMEOUT_SECONDS = 10  # salt-run mfa_ha.status waits this long for the nodes
GATHER_JOB_SECONDS = 3  # the prechecks' status job: a silent node is named, not waited for
FENCE_JOB_SECONDS = 10  # one fence check of a returning former primary
FENCE_ATTEMPTS = 6  # fence checks of a node that just came back, before it is reported unproven
FENCE_RETRY_SECONDS = 5  # between fence checks: a minion that just started may not answer yet
SWITCH_STEP_SECONDS = (
    30  # each step of a node's switchover part (a stop, a start, a wait), unless mfa_ha:switchover:timeout
)
TAKEOVER_MARGIN_SECONDS = (
    10  # the old primary's wait for the target outlasts the target's own steps by this: the job may reach it later
)
SWITCH_JOB_MARGIN_SECONDS = 30  # the switch job's bound beyond the node parts': the return's way back to the master
RESTART_STEP_SECONDS = 120  # a rolling restart: each standby's stop, start and return to streaming
RESTART_COMMAND_SECONDS = 900  # the command a rolling restart runs on a stopped node (a package upgrade)
FAILOVER_DECIDED_SECONDS = (
    900  # a decided failover's prechecks to its end: the witness may not drop its target meanwhile
)
LOST_PROBE_SECONDS = 3  # a node the witness measured silent for lease + margin is asked once more, this long
MASTER_CHECK_SECONDS = 1  # how often a long runner call checks that the master still runs
WITNESS_IDLE_SECONDS = 5  # the witness's pace while automatic failover is off
TEST_MODE_STREAM_SECONDS = 5  # test=True waits this long to see a configured standby stream

# -- the defaults of the Salt functions' ``timeout`` arguments
SERVER_ACTION_SECONDS = 60  # pgrepl.start, stop, restart and promote: a server up, gone or promoted
LSN_WAIT_SECONDS = 30  # pgrepl.wait_for_lsn
STANDBY_SECONDS = 120  # make_standby, rejoin and the pgrepl.standby state: every step but a copy (COPY_SECONDS)
STREAMING_WAIT_SECONDS = 60  # pgrepl.wait_streaming
FOLLOW_SECONDS = 30  # pgrepl.follow and the pgrepl.follows state: a reload or restart, then streaming
TOOL_VERSION_SECONDS = 30  # a PostgreSQL binary's --version (read once per process, a cold disk allowed)
OUTPUT_DRAIN_SECONDS = 5  # a finished command's output thread hands over what is left


def server_stop_bound(wait_seconds: float) -> float:
    """``Server.stop``: pg_ctl status, pg_ctl stop -W, then the wait for postmaster.pid to go."""
    return 2 * PG_CTL_SECONDS + wait_seconds


def writes_end_bound() -> float:
    """From the fence's start until PostgreSQL is stopped: the standby configuration, a fast
    stop that may time out, then an immediate one (a signal to the postmaster, or where its
    PID cannot be proven, pg_ctl: the longer of the two is counted)."""
    return STANDBY_CONFIG_SECONDS + server_stop_bound(FAST_STOP_SECONDS) + server_stop_bound(IMMEDIATE_STOP_SECONDS)


def app_stop_bound(app_timeout: float, manager: str = "src") -> float:
    """``mfa_ha.app``'s stop with ``mfa_ha:pmfad:timeout``: each command is bounded by it, and a
    wait polls the status (one more command) until it runs out. SRC: lssrc, stopsrc, the wait,
    stopsrc -f, the forced wait; systemd: status, stop, the wait."""
    wait = 2 * app_timeout
    if manager == "systemd":
        return 2 * app_timeout + wait
    return 3 * app_timeout + wait + SRC_FORCED_STOP_SECONDS + app_timeout


def fence_bound(app_timeout: float, manager: str = "src") -> float:
    """The whole fence: writes ended, then pmfad stopped."""
    return writes_end_bound() + app_stop_bound(app_timeout, manager)


def takeover_wait(step: float) -> float:
    """How long the old primary waits for the target to accept writes: the target's proof of
    the shutdown checkpoint and its promotion, each bounded by ``step``, and a margin. A target
    that has not promoted by then has given up on its own, so this node may serve again."""
    return 2 * step + TAKEOVER_MARGIN_SECONDS


def switch_part_bound(step: float) -> float:
    """A node's whole switchover part, the longest being the old primary's: its stop, the wait
    for the target, then the re-attachment's wait for its slot, start and streaming (a rewind or
    a clone copies the database under COPY_SECONDS of its own). The app's stop comes before."""
    return step + takeover_wait(step) + 3 * step


def switch_job_bound(step: float, app_stop: float) -> float:
    """The switch job on the master: the longest node part, the app's stop before it
    (``app_stop_bound``), and the return's way back."""
    return app_stop + switch_part_bound(step) + SWITCH_JOB_MARGIN_SECONDS
