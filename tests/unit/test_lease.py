"""The lease and the witness: pure decisions over measured times."""

import re

import pytest

from mfa_ha import timing
from mfa_ha.errors import InvalidInput
from mfa_ha.unattended import lease
from mfa_ha.unattended.keeper import handed_over
from mfa_ha.unattended.lease import LeaseSettings, StreamProof, keeper_verdict, lease_settings, received, record_renewal
from mfa_ha.unattended.witness import Witness, WitnessView, witness_verdict

ON = LeaseSettings(automatic=True, lease_seconds=10, margin_seconds=32)


@pytest.mark.parametrize(
    "pillar, named",
    [
        ({"automatic": "yes"}, "mfa_ha:failover:automatic: must be true or false"),
        ({"lease_seconds": 0}, "mfa_ha:failover:lease_seconds: must be a positive number"),
        ({"margin_seconds": 5}, "mfa_ha:failover:margin_seconds: 5 s must exceed"),
        (
            {"margin_seconds": 25},
            "25 s must exceed poll_seconds + the fence's bound until writes end (18 s) + the "
            "watchdog's bound (29 s in all at",
        ),
        ({"run_dir": "var/lib"}, "mfa_ha:failover:run_dir: must be an absolute path"),
        ({"lease_seconds": 6}, "mfa_ha:failover:lease_seconds: 6 s must exceed three renewals"),
        ({"lease": 30}, "mfa_ha:failover: unknown key(s) lease"),
        ({"heartbeat_port": 70000}, "mfa_ha:failover:heartbeat_port: must be a UDP port (1-65535), not 70000"),
        ({"heartbeat_port": "5434"}, "mfa_ha:failover:heartbeat_port: must be a UDP port"),
        ([], "mfa_ha:failover: must be a mapping"),
    ],
)
def test_bad_failover_pillar_names_the_key(pillar, named):
    with pytest.raises(InvalidInput, match=re.escape(named)):
        lease_settings(pillar)


def test_failover_is_off_unless_asked():
    assert lease_settings(None).automatic is False and lease_settings({}).failover_after == 65


def test_the_keeper_holds_while_either_the_master_or_the_standby_renews():
    assert keeper_verdict(100, armed_at=0, renewed_at=95, streamed_at=None, lease_seconds=10).action == "hold"
    assert keeper_verdict(100, armed_at=0, renewed_at=None, streamed_at=95, lease_seconds=10).action == "hold"
    fence = keeper_verdict(100, armed_at=0, renewed_at=80, streamed_at=85, lease_seconds=10)
    assert fence.action == "fence"
    assert "the master proved it heard this node within the lease: no (20.0 s ago" in fence.summary


def test_a_paused_keeper_holds_past_its_lease_and_names_the_pause():
    paused = keeper_verdict(100, armed_at=0, renewed_at=80, streamed_at=85, lease_seconds=10, paused="paused by x")
    assert paused.action == "hold" and lease.fence_suspended(paused)
    assert "automatic failover is not paused: no (paused by x)" in paused.summary
    held = keeper_verdict(100, armed_at=0, renewed_at=95, streamed_at=None, lease_seconds=10, paused="paused by x")
    assert held.action == "hold" and not lease.fence_suspended(held)  # within the lease: the pause did nothing


def test_the_keeper_counts_from_when_it_armed():
    assert keeper_verdict(100, armed_at=95, renewed_at=None, streamed_at=None, lease_seconds=10).action == "hold"
    assert keeper_verdict(106, armed_at=95, renewed_at=None, streamed_at=None, lease_seconds=10).action == "fence"


def test_a_renewal_counts_only_once_the_master_proved_it_heard_it():
    record = record_renewal({}, seq=1, acked=None, now=10.0)
    assert record["renewed_at"] is None  # arrived, but the master has not heard the answer yet
    record = record_renewal(record, seq=2, acked=1, now=12.0)
    assert record["renewed_at"] == 10.0  # renewal 1's arrival, not renewal 2's
    record = record_renewal(record, seq=3, acked=99, now=14.0)  # a number never seen here renews nothing
    assert record["renewed_at"] == 10.0
    for seq in range(4, 200):
        record = record_renewal(record, seq=seq, acked=seq - 1, now=float(seq))
    assert len(record["arrived"]) == 64 and record["renewed_at"] == 198.0


def test_a_restarted_witness_renews_the_lease_at_once():
    """A restarted master's witness numbers its renewals from 1 again, under a new session:
    they count at once, however many renewals the previous witness sent."""
    record = {}
    for seq in range(1, 500):
        record = record_renewal(record, seq=seq, acked=seq - 1, now=float(seq), session="wbefore")
    record = record_renewal(record, seq=1, acked=None, now=600.0, session="wafter")
    record = record_renewal(record, seq=2, acked=1, now=602.0, session="wafter")
    assert record["renewed_at"] == 600.0
    record = record_renewal(record, seq=3, acked=498, now=604.0, session="wafter")  # the old session's number
    assert record["renewed_at"] == 600.0 and len(record["arrived"]) == 64


def test_each_witness_renews_under_a_session_of_its_own():
    sessions = []
    for _ in range(2):
        witness = Witness(
            ON,
            ["server_dr", "server_prod"],
            "server_prod",
            lambda seq, acked, session, words: sessions.append((seq, session)) or {},
            lambda target, verdict: {"ok": True},
            lambda *alert: None,
            clock=lambda: 0.0,
        )
        witness.tick()
    assert [seq for seq, _ in sessions] == [1, 1] and sessions[0][1] != sessions[1][1]
    assert all(not session.isdigit() for _, session in sessions)


def test_a_keeper_that_died_hands_its_lease_over_and_one_stopped_on_request_does_not():
    held = {"role": "primary", "action": "hold", "armed_at": 5.0, "streamed_at": 40.0, "at": 50.0}
    assert handed_over(held) == {"armed_at": 5.0, "streamed_at": 40.0}
    assert handed_over({**held, "action": "fencing"})["armed_at"] == 5.0  # killed mid-fence: fence again
    assert handed_over({**held, "streamed_at": None}) == {"armed_at": 5.0}
    assert handed_over({**held, "action": "stopped"}) == {}
    assert handed_over({"role": "not a primary", "action": "idle", "at": 50.0}) == {}
    assert handed_over({}) == {}


def test_the_watchdog_replaces_a_keeper_that_does_not_beat():
    beat = {"pid": 42, "at": 100.0, "action": "hold"}
    assert lease.keeper_stall(beat, 42, started_at=90.0, now=103.0, settings=ON) is None
    assert "last heartbeat 5.0 s ago (hold; bound 4 s)" in lease.keeper_stall(beat, 42, 90.0, 105.0, ON)
    ending_writes = {**beat, "action": "fencing", "phase_bound_s": timing.writes_end_bound()}
    assert lease.keeper_stall(ending_writes, 42, 90.0, 100.0 + 4 + timing.writes_end_bound(), ON) is None
    assert lease.keeper_stall(ending_writes, 42, 90.0, 100.5 + 4 + timing.writes_end_bound(), ON)
    slow_pmfad = {**beat, "action": "fencing", "phase_bound_s": timing.app_stop_bound(30, "src")}
    assert lease.keeper_stall(slow_pmfad, 42, 90.0, 100.0 + 4 + 6 * 30 + 10, ON) is None  # pmfad's stop may take long
    # a new keeper: the beat on file is its predecessor's
    assert lease.keeper_stall(beat, 43, started_at=101.0, now=104.0, settings=ON) is None
    assert "no heartbeat 6.0 s after it started" in lease.keeper_stall(beat, 43, 101.0, 107.0, ON)


def test_the_standby_streamed_when_it_flushed_past_a_marker():
    proof = StreamProof()
    proof.written(100, at=1.0)
    proof.written(200, at=2.0)
    assert proof.flushed(None) is None and proof.flushed(150) == 1.0
    assert proof.flushed(150) == 1.0  # nothing new passed
    assert proof.flushed(250) == 2.0 and proof.markers == []


def test_monotonic_times_from_before_a_reboot_are_not_read(tmp_path, monkeypatch):
    path = str(tmp_path / "lease.json")
    lease.write_record(path, {"renewed_at": 123.0})
    assert lease.read_record(path)["renewed_at"] == 123.0
    monkeypatch.setattr(lease, "boot_id", lambda: "another boot")
    assert lease.read_record(path) == {}  # a renewal "123 s after boot" means nothing in this boot


def test_the_standby_notes_when_a_renewal_first_saw_its_receive_position():
    first = received(None, "0/3000000", now=5.0)
    assert first == {"lsn": "0/3000000", "seen_at": 5.0}
    assert received(first, "0/3000000", now=9.0) == first  # nothing new arrived: quiet since 5.0
    assert received(first, "0/3000100", now=9.0)["seen_at"] == 9.0
    assert received(first, None, now=9.0) == first  # a primary, or no receiver: nothing learnt


def view(**changes):
    healthy_loss = dict(
        automatic=True,
        armed=True,
        primary="server_prod",
        standby="server_dr",
        primary_silent_s=50,
        keeper_alive=True,
        standby_answers=True,
        standby_role="standby",
        receiver_lost_s=50,
    )
    return WitnessView(**{**healthy_loss, **changes})


def test_the_witness_fails_over_only_when_every_check_holds():
    assert witness_verdict(view(), ON).action == "failover"
    for change in (
        {"automatic": False},
        {"armed": False},
        {"primary_silent_s": 41},
        {"keeper_alive": False},
        {"standby_answers": False},
        {"standby_role": "primary"},
        {"receiver_lost_s": 41},
        {"paused": "automatic failover paused by operator since ...: patching the master"},
    ):
        verdict = witness_verdict(view(**change), ON)
        assert verdict.action == "alert", change
        assert [c.name for c in verdict.checks if not c.ok], change


def test_the_witness_reaching_the_primary_only_alerts_when_the_dc_link_is_cut():
    verdict = witness_verdict(view(primary_silent_s=1, receiver_lost_s=300), ON)
    assert verdict.action == "alert" and "prod: 1.0 s" in verdict.summary


def test_a_healthy_pair_is_no_news():
    assert witness_verdict(view(primary_silent_s=1, receiver_lost_s=0), ON).action == "none"


class Simulated:
    """Two nodes answering renewals, as the master would see them, on a clock of our own."""

    def __init__(self, settings=ON):
        self.now = self.last_wal = self.last_beat = 0.0
        self.reach_primary = self.reach_standby = self.standby_streams = True
        self.standby_hears_beats = False
        self.primary_paused = None  # what the primary's answer says of a pause on that node
        self.primary_sync = None  # what the primary's answer says of its synchronous standby
        self.failovers, self.alerts, self.words, self.records = [], [], [], {}
        self.witness = Witness(
            settings,
            ["server_dr", "server_prod"],
            "server_prod",
            self.ask,
            lambda target, verdict: self.failovers.append(target) or {"ok": True},
            lambda severity, summary, details: self.alerts.append((severity, summary)),
            clock=lambda: self.now,
            standbys=lambda: dict(self.records),
            record_standby=self.records.__setitem__,
        )

    def ask(self, seq, acked, session, words):
        self.words.append(dict(words))
        answers = {}
        if self.reach_primary:
            answers["server_prod"] = {
                "seq": seq,
                "running": True,
                "role": "primary",
                "keeper_alive": True,
                "paused": self.primary_paused,
                "sync": self.primary_sync,
            }
        if self.standby_streams:
            self.last_wal = self.now
        if self.standby_hears_beats:
            self.last_beat = self.now
        if self.reach_standby:
            answers["server_dr"] = {
                "seq": seq,
                "running": True,
                "role": "standby",
                "receiver": {
                    "status": "streaming" if self.standby_streams else "waiting",
                    "from": "server_prod" if self.standby_streams else None,
                    "quiet_s": self.now - self.last_wal,
                    "heard_from": "server_prod",
                    "heard_quiet_s": self.now - self.last_beat,
                },
            }
        return answers

    def run(self, seconds, every=2.0):
        for _ in range(int(seconds / every)):
            self.now += every
            self.witness.tick()


def test_a_pause_the_primary_reported_holds_off_the_failover_when_the_master_has_none():
    """A master that lost its pause record (or replaced without it) still sees the pause the
    primary's last answer reported: its keeper does not fence, so the witness must not fail over."""
    sim = Simulated()
    sim.primary_paused = "automatic failover paused by operator since ..."
    sim.run(10)
    sim.reach_primary, sim.standby_streams = False, False
    sim.run(60)
    assert sim.failovers == []
    assert any("server_prod: automatic failover paused by operator" in summary for _, summary in sim.alerts)


def test_the_primary_site_lost_fails_over_once_after_lease_and_margin():
    sim = Simulated()
    sim.run(10)
    assert sim.witness.armed and sim.alerts[0][0] == "info"
    sim.reach_primary, sim.standby_streams = False, False
    sim.run(40)
    assert sim.failovers == []  # 40 s < lease 10 + margin 32
    sim.run(6)
    assert sim.failovers == ["server_dr"]
    sim.run(60)
    assert sim.failovers == ["server_dr"]  # disarmed until a healthy pair is seen again


def test_a_flapping_link_never_fails_over():
    sim = Simulated()
    sim.run(10)
    for _ in range(10):
        sim.reach_primary, sim.standby_streams = False, False
        sim.run(20)
        sim.reach_primary, sim.standby_streams = True, True
        sim.run(4)
    assert sim.failovers == []
    assert any(severity == "warning" for severity, _ in sim.alerts)


def test_a_standby_still_hearing_the_primarys_heartbeats_is_not_failed_over_to():
    """The replication connection stalled (TCP still backing off) but the keepers' heartbeats
    arrive: the primary is not cut off from the standby, its lease holds, no failover."""
    sim = Simulated()
    sim.run(10)
    sim.reach_primary, sim.standby_streams, sim.standby_hears_beats = False, False, True
    sim.run(120)
    assert sim.failovers == []
    sim.standby_hears_beats = False
    sim.run(46)
    assert sim.failovers == ["server_dr"]  # lease + margin after the last beat


def test_with_the_option_off_nothing_automatic_happens():
    sim = Simulated(LeaseSettings(automatic=False, lease_seconds=10, margin_seconds=32))
    sim.run(10)
    sim.reach_primary, sim.standby_streams = False, False
    sim.run(300)
    assert sim.failovers == []


def test_a_witness_that_never_saw_a_healthy_pair_does_not_fail_over():
    sim = Simulated()
    sim.reach_primary, sim.standby_streams = False, False  # the master starts during the outage
    sim.run(40)
    assert sim.alerts == []  # settling: lease + margin (42 s) before it says it is not armed
    sim.run(300)
    assert sim.failovers == [] and not sim.witness.armed
    assert (
        sim.alerts
        and "armed: a healthy pair seen since the witness started or last failed over: no" in sim.alerts[0][1]
    )


def test_the_margin_covers_a_poll_the_fence_until_writes_end_and_a_frozen_keepers_replacement():
    """The witness may fail over only after an isolated primary's writes have ended: a change
    of any bound the fence rests on must keep the default settings valid."""
    assert timing.writes_end_bound() == (
        timing.STANDBY_CONFIG_SECONDS
        + 4 * timing.PG_CTL_SECONDS
        + timing.FAST_STOP_SECONDS
        + timing.IMMEDIATE_STOP_SECONDS
    )
    default = LeaseSettings()
    assert default.margin_needed == default.poll_seconds + timing.writes_end_bound() + default.watchdog_bound
    assert lease_settings({"automatic": True}).margin_seconds > default.margin_needed
    assert lease_settings({"automatic": True, "lease_seconds": 10, "margin_seconds": 32}) == ON


def test_pmfads_stop_bound_covers_every_command_the_backend_runs():
    # SRC: lssrc, stopsrc, a wait of the timeout (one more lssrc at its end), stopsrc -f, the forced wait
    assert timing.app_stop_bound(30, "src") == 30 + 30 + 2 * 30 + 30 + timing.SRC_FORCED_STOP_SECONDS + 30
    assert timing.app_stop_bound(30, "systemd") == 30 + 30 + 2 * 30
    assert timing.fence_bound(30) == timing.writes_end_bound() + timing.app_stop_bound(30)


def test_the_default_lease_settings_keep_the_lease_inequality():
    """margin > poll + the fence until writes end + the watchdog's bound, at the shipped defaults."""
    defaults = lease_settings({"automatic": True})
    assert defaults.margin_seconds > defaults.poll_seconds + timing.writes_end_bound() + defaults.watchdog_bound


@pytest.mark.parametrize(
    "constant",
    ["PG_CTL_SECONDS", "STANDBY_CONFIG_SECONDS", "FAST_STOP_SECONDS", "IMMEDIATE_STOP_SECONDS", "KEEPER_START_SECONDS"],
)
def test_a_longer_fence_step_breaks_the_default_margin(monkeypatch, constant):
    """Each step of the fence counts in the margin the witness waits: lengthening any of them
    by the default margin's slack makes the shipped defaults refused, not silently unsafe."""
    defaults = LeaseSettings(automatic=True)
    slack = defaults.margin_seconds - defaults.margin_needed
    monkeypatch.setattr(timing, constant, getattr(timing, constant) + slack + 1)
    with pytest.raises(InvalidInput, match="margin_seconds: 35 s must exceed"):
        lease_settings({"automatic": True})


def test_an_alert_that_cannot_be_delivered_does_not_stop_the_failover():
    sim = Simulated()

    def broken(severity, summary, details):
        raise OSError("the master event bus is gone")

    sim.witness.alert = broken
    sim.run(10)
    sim.reach_primary, sim.standby_streams = False, False
    sim.run(60)
    assert sim.failovers == ["server_dr"]


def test_the_witness_records_the_standby_as_behind_before_it_gives_the_word():
    sim = Simulated()
    sim.run(10)
    assert not any(sim.words[-1].values())
    sim.primary_sync = {"state": "asked", "request": "r7", "lsn": "0/7000000", "since": 1.7e9}
    sim.run(2)
    record = sim.records["server_dr"]
    assert record["promotable"] is False and record["lsn"] == "0/7000000" and record["request"] == "r7"
    assert sim.words[-1] == {}  # the record was written in that round; the word goes with the next
    sim.run(2)
    assert sim.words[-1] == {"server_prod": "r7"}
    assert any("recorded as not promotable from 0/7000000" in summary for _, summary in sim.alerts)


def test_no_word_is_given_when_the_record_cannot_be_written():
    sim = Simulated()

    def full_disk(node, record):
        raise OSError(28, "No space left on device")

    sim.witness.record_standby = full_disk
    sim.run(10)
    sim.primary_sync = {"state": "asked", "request": "r8", "lsn": "0/8000000", "since": 1.7e9}
    sim.run(6)
    assert all("server_prod" not in words for words in sim.words)
    assert any("cannot record server_dr as behind" in summary for _, summary in sim.alerts)


def test_the_standby_is_promotable_again_once_the_keeper_reports_sync():
    sim = Simulated()
    sim.records["server_dr"] = {"promotable": False, "primary": "server_prod", "lsn": "0/7000000", "since": 1.7e9}
    sim.primary_sync = {"state": "sync", "since": 1.8e9}
    sim.run(4)
    assert sim.records["server_dr"]["promotable"] is True


def test_a_sync_state_from_before_the_record_does_not_make_the_standby_promotable():
    sim = Simulated()
    sim.records["server_dr"] = {"promotable": False, "primary": "server_prod", "lsn": "0/7000000", "since": 2000.0}
    sim.primary_sync = {"state": "sync", "since": 1000.0}  # the keeper's state began before the record
    sim.run(6)
    assert sim.records["server_dr"]["promotable"] is False
    sim.primary_sync = {"state": "sync", "since": 3000.0}
    sim.run(2)
    assert sim.records["server_dr"]["promotable"] is True


def test_the_witness_never_fails_over_to_a_standby_recorded_as_behind():
    assert witness_verdict(view(), ON).action == "failover"
    verdict = witness_verdict(view(behind="server_dr is behind since 2026-12-03 18:00:00 UTC"), ON)
    assert verdict.action == "alert"
    assert [c.name for c in verdict.checks if not c.ok] == [
        "the standby holds every acknowledged commit (not recorded as behind)"
    ]
