"""The master as witness of an unattended failover (``mfa_ha:failover:automatic``).

Every ``witness_every`` seconds it sends one renewal job to every node (``pgrepl.lease_renew``:
the renewal's number and, per node, the last one it heard that node answer) and records, by
the master's monotonic clock, when each answered, which node answered as the primary, whether
that primary's lease keeper was alive, and when WAL or the primary keeper's heartbeat last
arrived on the standby (its answer's time less ``quiet_s`` or ``heard_quiet_s``: never earlier
than the real last arrival). ``witness_verdict`` decides; the failover runs once, and
the witness is disarmed until it sees a healthy pair again. See ``mfa_ha.unattended.lease`` for why an
isolated primary has fenced itself before the witness acts.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from mfa_ha import maintenance
from mfa_ha.roles import primaries
from mfa_ha.unattended.lease import LeaseSettings, Verdict

log = logging.getLogger(__name__)


@dataclass
class WitnessView:
    """What the witness measured, in seconds of the master's monotonic clock."""

    automatic: bool
    armed: bool
    primary: str | None
    standby: str | None
    primary_silent_s: float
    keeper_alive: bool
    standby_answers: bool
    standby_role: str
    receiver_lost_s: float
    paused: str | None = None  # what the master's pause record says, when there is one
    behind: str | None = None  # synchronous: on: why the master recorded the standby as not promotable


def witness_verdict(view: WitnessView, settings: LeaseSettings) -> Verdict:
    """``failover`` when every check holds; ``alert`` when something is wrong but not all of
    them hold; ``none`` for a healthy pair."""
    v = Verdict("none")
    after = settings.failover_after
    v.check("automatic failover is on (mfa_ha:failover:automatic)", view.automatic, "on" if view.automatic else "off")
    v.check("automatic failover is not paused (salt-run mfa_ha.unpause)", not view.paused, view.paused or "not paused")
    v.check(
        "armed: a healthy pair seen since the witness started or last failed over",
        view.armed,
        "armed" if view.armed else "not since start or the last failover",
    )
    v.check("a primary is known", view.primary is not None, view.primary or "no node answered as the primary")
    silent = v.check(
        f"the primary's minion silent for longer than lease + margin ({after:g} s)",
        view.primary_silent_s > after,
        f"{view.primary or '?'}: {view.primary_silent_s:.1f} s",
    )
    v.check(
        "the primary's lease keeper was alive at its last answer (it fences an isolated primary)",
        view.keeper_alive,
        "alive" if view.keeper_alive else "not running or never seen",
    )
    v.check(
        "the standby's minion answers",
        view.standby_answers,
        f"{view.standby or '?'}: {'answers' if view.standby_answers else 'no answer'}",
    )
    v.check(
        "the standby is a running standby",
        view.standby_role == "standby",
        f"{view.standby or '?'}: {view.standby_role}",
    )
    v.check(
        "the standby holds every acknowledged commit (not recorded as behind)",
        view.behind is None,
        view.behind or "promotable",
    )
    lost = v.check(
        f"neither WAL nor a heartbeat from the primary reached the standby for longer than lease + margin "
        f"({after:g} s)",
        view.receiver_lost_s > after,
        f"{view.receiver_lost_s:.1f} s",
    )
    if all(c.ok for c in v.checks):
        v.action = "failover"
    elif (
        view.primary_silent_s > settings.lease_seconds
        or view.receiver_lost_s > settings.lease_seconds
        or (silent and not lost)
        or not view.standby_answers
    ):
        v.action = "alert"
    return v


def behind(standby: str | None, record: dict, synchronous: bool) -> str | None:
    """Why the master's record (``synchronous: on``) rules ``standby`` out as a failover
    target, or None: recorded as behind, or (with ``synchronous``) never recorded as holding
    every commit."""
    if record.get("promotable") is True or not (synchronous or record):
        return None
    if record.get("promotable") is False:
        return describe_behind(standby, record)
    return f"{standby} was never recorded as holding every acknowledged commit (its primary's keeper reports it)"


def _after(sync: dict, record: dict) -> bool:
    """The keeper's ``sync`` began after the record it would clear (not a state from before)."""
    began, recorded = sync.get("since"), record.get("since")
    return not isinstance(recorded, (int, float)) or (isinstance(began, (int, float)) and began > recorded)


def describe_behind(standby: str, record: dict) -> str:
    """The master's record of a standby dropped from synchronous replication, in words."""
    since = record.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if isinstance(since, (int, float)) else "?"
    return (
        f"{standby} is behind since {when}: {record.get('primary', 'the primary')} acknowledged commits "
        f"without it from LSN {record.get('lsn', '?')}"
    )


@dataclass
class Seen:
    heard_at: float | None = None
    acked: int | None = None
    answer: dict | None = None


class Witness:
    """``ask(seq, acked, session, words) -> {node: answer dict, or an error text}``;
    ``failover(target, verdict)``; ``alert(severity, summary, details)``; ``paused() -> pause
    record or None`` (the master's, read every round); ``standbys() -> {node: record}`` and
    ``record_standby(node, record)``: the master's durable record of which standby is behind
    (``mfa_ha.unattended.syncguard``; the write raises when it cannot be made durable). One
    ``tick()`` per ``witness_every``.

    Its renewals are numbered from 1 under a random ``session`` of its own, so the nodes tell
    them from a previous witness's (a restarted master's, or this engine's before a pillar
    change) and count them at once."""

    def __init__(
        self,
        settings: LeaseSettings,
        nodes: list[str],
        primary: str | None,
        ask,
        failover,
        alert,
        clock=time.monotonic,
        paused=lambda: None,
        standbys=dict,
        record_standby=lambda node, record: None,
        synchronous: bool = False,
    ):
        self.settings, self.nodes = settings, sorted(nodes)
        self.ask, self.do_failover, self.alert, self.clock, self.paused = ask, failover, alert, clock, paused
        self.standbys, self.record_standby, self.synchronous = standbys, record_standby, synchronous
        self.words: dict[str, str] = {}  # the word each primary may act on: a request recorded first
        self.started_at = clock()
        self.seq = 0
        self.session = "w" + secrets.token_hex(8)  # never all digits: an argument Salt would read as a number
        self.seen = {node: Seen() for node in self.nodes}
        self.primary = primary
        self.last_wal_at: float | None = None  # no earlier than the standby's last WAL or heartbeat from the primary
        self.armed = False
        self.last_state: tuple | None = None

    def tick(self) -> Verdict:
        now = self.clock()
        self.seq += 1
        answers = self.ask(self.seq, {n: s.acked for n, s in self.seen.items()}, self.session, dict(self.words))
        for node, answer in answers.items():
            if node in self.seen and isinstance(answer, dict) and answer.get("seq") == self.seq:
                self.seen[node] = Seen(now, self.seq, answer)
        self._follow_roles(now)
        self._guard_sync()
        verdict = witness_verdict(self.view(now), self.settings)
        self._act(verdict, settling=not self.armed and now - self.started_at < self.settings.failover_after)
        return verdict

    def _answered_now(self, node: str | None) -> dict | None:
        seen = self.seen.get(node) if node else None
        return seen.answer if seen and seen.acked == self.seq else None

    def _follow_roles(self, now: float) -> None:
        answered = {n: self._answered_now(n) for n in self.nodes}
        found = primaries(answered)
        if len(found) == 1:
            self.primary = found[0]
        standby = self.standby
        answer = answered.get(standby) if standby else None
        receiver = (answer or {}).get("receiver") or {}
        if not answer:
            return  # a silent standby proves nothing either way
        quiet = receiver.get("quiet_s")
        if receiver.get("heard_from") == self.primary and isinstance(receiver.get("heard_quiet_s"), (int, float)):
            quiet = min(receiver["heard_quiet_s"], quiet if isinstance(quiet, (int, float)) else float("inf"))
        if isinstance(quiet, (int, float)):
            self.last_wal_at = max(self.last_wal_at or 0.0, now - quiet)
        elif self.last_wal_at is None:
            self.last_wal_at = now  # never seen WAL arrive: count from the first answer
        streaming = receiver.get("status") == "streaming" and receiver.get("from") == self.primary
        primary_answer = answered.get(self.primary) or {}
        if streaming and primary_answer.get("keeper_alive") and not self.armed:
            self.armed = True
            self._tell(
                "info",
                f"mfa_ha witness armed: {self.primary} primary with its lease keeper alive, "
                f"{standby} streaming from it",
                {},
            )

    def _guard_sync(self) -> None:
        """The primary's keeper asks to drop its standby: record the standby as behind, then
        give the word (in the next renewal). It says the standby caught up: record that."""
        primary, standby = self.primary, self.standby
        sync = (self._answered_now(primary) or {}).get("sync") or {}
        if not primary or not standby or not sync.get("state"):
            return
        record = self.standbys().get(standby) or {}
        if sync["state"] == "asked" and sync.get("request"):
            if record.get("request") != sync["request"]:
                behind = {"promotable": False, "primary": primary, "request": sync["request"]}
                behind.update(lsn=sync.get("lsn"), since=sync.get("since"))
                try:
                    self.record_standby(standby, behind)
                except Exception as err:  # noqa: BLE001 - no record, no word: commits keep waiting
                    self._tell("critical", f"mfa_ha witness: cannot record {standby} as behind: {err}", {})
                    return
                self._tell(
                    "warning",
                    f"mfa_ha witness: {standby} stopped acknowledging {primary}'s commits: recorded as not "
                    f"promotable from {sync.get('lsn')}; {primary} drops it from synchronous replication",
                    behind,
                )
            self.words[primary] = sync["request"]
        elif sync["state"] == "sync" and record.get("promotable") is not True and _after(sync, record):
            try:
                self.record_standby(standby, {"promotable": True, "primary": primary, "since": sync.get("since")})
            except Exception as err:  # noqa: BLE001 - it stays recorded as behind: the safe side
                self._tell("critical", f"mfa_ha witness: cannot record {standby} as promotable: {err}", {})
                return
            self._tell("info", f"mfa_ha witness: {standby} holds every commit of {primary} again: promotable", {})

    def behind(self, standby: str | None) -> str | None:
        """Why ``standby`` may not be promoted (the master's record), or None."""
        record = self.standbys().get(standby) or {} if standby else {}
        return behind(standby, record, self.synchronous)

    @property
    def standby(self) -> str | None:
        others = [n for n in self.nodes if n != self.primary]
        return others[0] if self.primary and len(others) == 1 else None

    def view(self, now: float) -> WitnessView:
        primary_seen = self.seen.get(self.primary) if self.primary else None
        standby_answer = self._answered_now(self.standby)
        return WitnessView(
            automatic=self.settings.automatic,
            armed=self.armed,
            primary=self.primary,
            standby=self.standby,
            primary_silent_s=now - ((primary_seen.heard_at if primary_seen else None) or self.started_at),
            keeper_alive=bool(primary_seen and primary_seen.answer and primary_seen.answer.get("keeper_alive")),
            standby_answers=standby_answer is not None,
            standby_role=(standby_answer or {}).get("role", "no answer")
            if not standby_answer or standby_answer.get("running")
            else "stopped",
            receiver_lost_s=now - (self.last_wal_at or now),
            paused=self._pause_seen(),
            behind=self.behind(self.standby),
        )

    def _pause_seen(self) -> str | None:
        """The master's pause, else one a node last reported (a master that lost its record,
        or was replaced without it, must not fail over while a keeper holds a pause)."""
        record = self.paused()
        if record:
            return maintenance.describe(record)
        for node in self.nodes:
            answer = self.seen[node].answer or {}
            if answer.get("paused"):
                return f"{node}: {answer['paused']}"
        return None

    def _act(self, verdict: Verdict, settling: bool) -> None:
        """``settling``: just started and not armed yet (keepers starting, first answers):
        no news until lease + margin have passed."""
        state = (verdict.action, tuple(c.name for c in verdict.checks if not c.ok))
        if settling:
            return
        if verdict.action == "failover":
            target = self.standby
            self.armed = False
            self._tell("critical", f"mfa_ha witness: failing over to {target}. {verdict.summary}", verdict.as_dict())
            try:
                result = self.do_failover(target, verdict)
            except Exception as err:  # noqa: BLE001 - the outcome is alerted whatever went wrong
                result = {"ok": False, "output": f"{type(err).__name__}: {err}"}
            failed = "" if result.get("ok") else f"FAILED: {str(result.get('output'))[-1500:]}"
            self._tell(
                "critical" if failed else "warning",
                f"mfa_ha witness: failover to {target} {failed or 'done'}",
                {"result": result},
            )
        elif verdict.action == "alert" and state != self.last_state:
            self._tell("warning", f"mfa_ha witness: no failover. {verdict.summary}", verdict.as_dict())
        elif verdict.action == "none" and self.last_state and self.last_state[0] == "alert":
            self._tell("info", "mfa_ha witness: the pair is healthy again", {})
        self.last_state = state

    def _tell(self, severity: str, summary: str, details: dict) -> None:
        """An alert whose delivery failing never stops the witness's decision or its failover."""
        try:
            self.alert(severity, summary, details)
        except Exception:  # logged with the text: the master log still has it
            log.exception("mfa_ha witness: alert not delivered: [%s] %s", severity, summary)
