"""Unattended failover that cannot split the brain (opt-in: ``mfa_ha:failover:automatic``).

Two halves, each a pure decision over measured times, with named reasons:

- **the keeper** (``python -m mfa_ha.unattended.keeper``, one per node, a service of its own so that it
  outlives its minion): while its node is the primary it fences the node (pmfad stopped,
  standby configuration written, PostgreSQL stopped) once, for ``lease_seconds``, it has had
  neither a renewal the master proved it received nor proof that the standby streamed from
  it. It needs no master to do so.
- **the witness** (``mfa_ha.unattended.witness``, on the master): it fails over only when, for
  ``lease_seconds + margin_seconds``, the primary's minion has not answered a renewal and the
  standby's minion answers that its WAL receiver lost the primary.

Why the keeper has fenced before the witness acts, with no clock shared between hosts (each
side reads its own host's monotonic clock):

- Renewal ``n`` is stamped on the primary's host at ``at(n)`` when it arrives; the master
  hears the answer at ``heard(n) >= at(n)``. The keeper counts renewal ``m`` only once a
  later renewal says the master heard ``m``, so its lease ends at ``at(m) + lease`` with
  ``m`` no later than the last renewal the master heard: its writes end at the latest
  ``writes_end_bound`` (``mfa_ha.timing``) after ``heard(last) + lease``; the witness waits
  ``heard(last) + lease + margin``.
- Every poll the keeper writes a marker into the WAL at ``t(k)`` and counts the standby as
  streaming at ``t(k)`` once the standby's flush position passes the marker: the marker
  arrived there after ``t(k)``. Each renewal on the standby notes its receive position and
  when a renewal first saw it (``received``); the witness counts the standby's loss from
  ``answer time - quiet_s``, which is no earlier than the last WAL's arrival, so no earlier
  than ``t(k)``. (The markers keep WAL flowing on an idle primary: a second of quiet means
  something.)
- The same holds for the keepers' heartbeats (``mfa_ha.unattended.heartbeat``): beat ``k`` sent at
  ``t(k)`` is recorded on the standby before it is answered, and the witness counts from the
  later of the last WAL and the last beat. They prove contact again as soon as the link is
  back, where the replication connection waits for TCP's backed-off retransmission.

- A keeper that freezes or dies is replaced by its watchdog (``mfa_ha.unattended.keeper.supervise``)
  within ``watchdog_bound``, and the new one takes over the lease where it stood (it never
  grants a fresh one), so it fences at most ``watchdog_bound`` later than the frozen one would
  have.

Hence ``margin_seconds`` must exceed ``poll_seconds + writes_end_bound + watchdog_bound``
(checked), whatever the witness's pace. What the keeper cannot cover: a keeper service that is
not running at all (watchdog and keeper) fences nothing, so the witness fails over only while
the primary's last answer showed its keeper alive and armed; and a whole host stalled (the
keeper, its watchdog and PostgreSQL frozen together) may serve for a poll after it resumes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

from mfa_ha import timing
from mfa_ha.boot import boot_id
from mfa_ha.checks import Checked
from mfa_ha.errors import InvalidInput
from mfa_ha.files import read_json, write_json

RENEWALS_KEPT = 64

log = logging.getLogger("mfa_ha.lease")


@dataclass(frozen=True)
class LeaseSettings:
    automatic: bool = False
    lease_seconds: float = 30
    margin_seconds: float = 35
    poll_seconds: float = 1  # the keeper's
    witness_every: float = 2  # the witness asks both nodes this often
    run_dir: str = "/var/run/mfa_ha"  # the renewals file and the keeper's heartbeat, per node
    service: str = "mfahalease"  # the keeper's SRC subsystem / systemd unit
    heartbeat_port: int = 5434  # UDP, between the two keepers (mfa_ha.heartbeat)

    @property
    def renewals_file(self) -> str:
        return os.path.join(self.run_dir, "lease.json")

    @property
    def keeper_file(self) -> str:
        return os.path.join(self.run_dir, "keeper.json")

    @property
    def pause_file(self) -> str:
        """Present while automatic failover is paused (``mfa_ha.maintenance``)."""
        return os.path.join(self.run_dir, "pause.json")

    @property
    def rejoin_file(self) -> str:
        """What this node's last re-attach as a standby did (``pgrepl.last_rejoin``)."""
        return os.path.join(self.run_dir, "rejoin.json")

    @property
    def sync_file(self) -> str:
        """On the primary, with ``synchronous: on``: where its keeper is in dropping to
        asynchronous and back (``mfa_ha.unattended.syncguard``)."""
        return os.path.join(self.run_dir, "sync.json")

    @property
    def peer_file(self) -> str:
        """On a standby: when the primary's keeper's last heartbeat arrived."""
        return os.path.join(self.run_dir, "peer.json")

    @property
    def failover_after(self) -> float:
        return self.lease_seconds + self.margin_seconds

    @property
    def alive_within(self) -> float:
        """A keeper is alive while its heartbeat is younger than three of its polls and a second."""
        return 3 * self.poll_seconds + 1

    @property
    def watchdog_bound(self) -> float:
        """The longest a frozen keeper goes unreplaced: its beat goes stale, the watchdog's next
        poll sees it, the new keeper starts."""
        return self.alive_within + self.poll_seconds + timing.KEEPER_START_SECONDS

    @property
    def witness_job_seconds(self) -> float:
        """How long a renewal job waits for the nodes' answers: a silent node delays no round more."""
        return max(1, int(self.witness_every))

    @property
    def sync_lost_bound(self) -> float:
        """``synchronous: on``: the longest commits wait once the standby is lost, while the
        primary reaches the master: the keeper's measure and its next poll, the witness's round
        that carries the request (it may have just begun) and the next one that brings the word
        back (each a pace and a job that waits out the silent standby), the keeper's poll that
        acts on it."""
        return timing.SYNC_LOST_SECONDS + 2 * self.poll_seconds + 2 * (self.witness_every + self.witness_job_seconds)

    @property
    def margin_needed(self) -> float:
        """A poll to notice the lease ran out, the fence until writes end, a frozen keeper's
        replacement (``mfa_ha.timing``)."""
        return self.poll_seconds + timing.writes_end_bound() + self.watchdog_bound


def lease_settings(pillar) -> LeaseSettings:
    """``mfa_ha:failover`` checked; InvalidInput names the key that is wrong."""
    pillar = {} if pillar is None or pillar == "" else pillar
    if not isinstance(pillar, dict):
        raise InvalidInput("mfa_ha:failover: must be a mapping")
    known = {f for f in LeaseSettings.__dataclass_fields__}
    unknown = sorted(set(pillar) - known)
    if unknown:
        raise InvalidInput(f"mfa_ha:failover: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = {}
    for name, value in pillar.items():
        default = LeaseSettings.__dataclass_fields__[name].default
        if name == "heartbeat_port":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                raise InvalidInput(f"mfa_ha:failover:heartbeat_port: must be a UDP port (1-65535), not {value!r}")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InvalidInput(f"mfa_ha:failover:{name}: must be true or false, not {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise InvalidInput(f"mfa_ha:failover:{name}: must be a positive number of seconds, not {value!r}")
        elif not isinstance(value, str) or not value:
            raise InvalidInput(f"mfa_ha:failover:{name}: must be a non-empty string, not {value!r}")
        values[name] = value
    settings = LeaseSettings(**values)
    if settings.lease_seconds <= 3 * settings.witness_every:
        raise InvalidInput(
            f"mfa_ha:failover:lease_seconds: {settings.lease_seconds:g} s must exceed three renewals "
            f"({3 * settings.witness_every:g} s at witness_every {settings.witness_every:g} s): a "
            "renewal counts once the next one proves the master heard it"
        )
    needed = settings.margin_needed
    if settings.margin_seconds <= needed:
        raise InvalidInput(
            f"mfa_ha:failover:margin_seconds: {settings.margin_seconds:g} s must exceed poll_seconds "
            f"+ the fence's bound until writes end ({timing.writes_end_bound():g} s) + the watchdog's "
            f"bound ({needed:g} s in all at poll_seconds "
            f"{settings.poll_seconds:g}), or the witness could fail over before an isolated primary "
            "has fenced itself"
        )
    if not os.path.isabs(settings.run_dir):
        raise InvalidInput(f"mfa_ha:failover:run_dir: must be an absolute path, not {settings.run_dir!r}")
    return settings


@dataclass
class Verdict(Checked):
    """A decision and the measured checks behind it."""

    action: str

    @property
    def summary(self) -> str:
        return f"{self.action}: " + "; ".join(
            f"{c.name}: {'yes' if c.ok else 'no'} ({c.measured})" for c in self.checks
        )

    def as_dict(self) -> dict:
        return {"action": self.action, "summary": self.summary, "checks": self.checks_as_dicts()}


# -- the keeper's side ------------------------------------------------------------------------
NOT_PAUSED = "automatic failover is not paused"


def keeper_verdict(
    now: float,
    armed_at: float,
    renewed_at: float | None,
    streamed_at: float | None,
    lease_seconds: float,
    paused: str | None = None,
) -> Verdict:
    """``fence`` when neither the master's renewals nor the standby's streaming renewed the
    lease for ``lease_seconds`` (counted from ``armed_at`` when nothing did since); ``hold``
    otherwise, and ``hold`` while automatic failover is ``paused`` (its description): the
    witness does not fail over then either. Times are this host's monotonic clock."""
    v = Verdict("hold")
    master_age = now - max(armed_at, renewed_at or armed_at)
    stream_age = now - max(armed_at, streamed_at or armed_at)
    heard = v.check(
        "the master proved it heard this node within the lease",
        master_age <= lease_seconds,
        f"{master_age:.1f} s ago, lease {lease_seconds:g} s",
    )
    streamed = v.check(
        "the standby heard this node (its WAL or heartbeat) within the lease",
        stream_age <= lease_seconds,
        f"{stream_age:.1f} s ago, lease {lease_seconds:g} s",
    )
    if not heard and not streamed and v.check(NOT_PAUSED, not paused, paused or "not paused"):
        v.action = "fence"
    return v


def fence_suspended(verdict: Verdict) -> bool:
    """The lease ran out, and only the pause kept the keeper from fencing."""
    return any(c.name == NOT_PAUSED and not c.ok for c in verdict.checks)


class QuietSpell:
    """The longest time a held lease went without proof of contact (from the master or the
    standby), logged when contact returns after more than half a lease: how near a flapping
    link came to a fence."""

    def __init__(self):
        self.longest = 0.0
        self.current = 0.0

    def seen(self, verdict_ages: dict, lease_seconds: float) -> None:
        age = min(verdict_ages.values())
        if age < self.current and self.current > lease_seconds / 2:
            log.warning(
                "mfa_ha lease: contact proven again after %.1f s without (lease %g s; now %s)",
                self.current,
                lease_seconds,
                ", ".join(f"{k} {v:.1f} s ago" for k, v in verdict_ages.items()),
            )
        self.current = age
        self.longest = max(self.longest, age)


def record_renewal(renewals: dict, seq: int, acked: int | None, now: float, session: str = "") -> dict:
    """A renewal ``seq`` of the witness ``session`` arrives at ``now``, telling the last renewal
    of that session it heard the answer to (``acked``). Returns the new renewals record: when
    each recent renewal arrived and ``renewed_at``, the arrival of the newest one the master
    proved it heard. A restarted or replaced witness numbers from 1 again under a session of
    its own, so the newest arrivals are kept, whatever their numbers."""
    arrived = {str(k): v for k, v in (renewals.get("arrived") or {}).items() if isinstance(v, (int, float))}
    arrived.setdefault(renewal_key(session, seq), now)
    renewed_at = renewals.get("renewed_at")
    if acked is not None and renewal_key(session, acked) in arrived:
        renewed_at = max(renewed_at or 0.0, arrived[renewal_key(session, acked)])
    kept = dict(sorted(arrived.items(), key=lambda item: item[1])[-RENEWALS_KEPT:])
    return {"arrived": kept, "renewed_at": renewed_at}


def renewal_key(session: str, seq: int) -> str:
    return f"{session}/{int(seq)}" if session else str(int(seq))


def received(previous: dict | None, receive_lsn: str | None, now: float) -> dict | None:
    """On a standby: the receive position and the renewal that first saw it (this host's
    monotonic clock). WAL that arrived was seen by the next renewal at the latest, so the
    last arrival is never later than ``seen_at``."""
    if not receive_lsn:
        return previous
    if previous and previous.get("lsn") == receive_lsn:
        return previous
    return {"lsn": receive_lsn, "seen_at": now}


class StreamProof:
    """WAL markers written by the keeper and the time of the newest one the standby flushed."""

    def __init__(self):
        self.markers: list[tuple[int, float]] = []
        self.streamed_at: float | None = None

    def written(self, lsn: int, at: float) -> None:
        self.markers.append((lsn, at))

    def flushed(self, flush_lsn: int | None) -> float | None:
        if flush_lsn is not None:
            passed = [at for lsn, at in self.markers if lsn <= flush_lsn]
            if passed:
                self.streamed_at = max(self.streamed_at or 0.0, max(passed))
            self.markers = [(lsn, at) for lsn, at in self.markers if lsn > flush_lsn]
        del self.markers[:-RENEWALS_KEPT]
        return self.streamed_at

    def heard(self, beat_sent_at: float | None) -> None:
        """The standby answered a heartbeat sent at ``beat_sent_at`` (``mfa_ha.unattended.heartbeat``)."""
        if beat_sent_at is not None:
            self.streamed_at = max(self.streamed_at or 0.0, beat_sent_at)


def read_record(path: str) -> dict:
    """A file of this host's monotonic times (renewals, the keeper's heartbeat); empty when
    it was written before the last reboot (its times would look recent, or in the future)."""
    data = read_json(path)
    return data if data.get("boot") == boot_id() else {}


def write_record(path: str, data: dict) -> None:
    write_json(path, {**data, "boot": boot_id()}, durable=False)  # a reboot voids it anyway


def keeper_alive(keeper: dict, now: float, settings: LeaseSettings) -> bool:
    """The keeper wrote its heartbeat recently (same host's monotonic clock)."""
    at = keeper.get("at")
    return isinstance(at, (int, float)) and now - at <= settings.alive_within


def keeper_stall(beat: dict, pid: int, started_at: float, now: float, settings: LeaseSettings) -> str | None:
    """Why the watchdog must replace keeper ``pid`` (started at ``started_at``), or None: no
    first heartbeat within ``timing.KEEPER_START_SECONDS``, or a heartbeat older than ``alive_within``
    (a fence in progress gets the bound of the step it announced, ``phase_bound_s``, on top:
    ending writes, then stopping pmfad)."""
    at = beat.get("at")
    if beat.get("pid") != pid or not isinstance(at, (int, float)) or at < started_at:
        waited = now - started_at
        return f"no heartbeat {waited:.1f} s after it started" if waited > timing.KEEPER_START_SECONDS else None
    phase = beat.get("phase_bound_s") if beat.get("action") == "fencing" else 0
    bound = settings.alive_within + (phase if isinstance(phase, (int, float)) else timing.writes_end_bound())
    age = now - at
    return f"last heartbeat {age:.1f} s ago ({beat.get('action')}; bound {bound:g} s)" if age > bound else None


def settings_dict(settings: LeaseSettings) -> dict:
    return asdict(settings)
