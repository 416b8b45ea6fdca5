"""The lab's delay line (``mfa_ha_lab.delayline.Line``): each packet out after the delay, in
the order it came, some dropped when a loss rate is set (a clock and a random source of the
test's own)."""

import random

from mfa_ha_lab.delayline import IDLE_SECONDS, Line
from tests.support import Clock


def test_a_packet_is_due_after_the_one_way_delay():
    clock = Clock(10.0)
    line = Line(0.005, 0.0, 0.0, clock)
    assert line.wait() == IDLE_SECONDS
    line.take(b"a")
    assert line.due() == [] and abs(line.wait() - 0.005) < 1e-9
    clock.now += 0.005
    assert line.due() == [b"a"]


def test_jitter_never_lets_a_later_packet_overtake_an_earlier_one():
    clock, rng = Clock(10.0), random.Random(7)
    line = Line(0.005, 0.004, 0.0, clock, rng)
    for i in range(200):
        line.take(bytes([i]))
        clock.now += 0.0001
    clock.now += 1
    out = line.due()
    assert out == [bytes([i]) for i in range(200)]


def test_jitter_spreads_the_delays_around_the_one_way_delay():
    clock, rng = Clock(10.0), random.Random(3)
    releases = []
    for _ in range(200):
        line = Line(0.005, 0.001, 0.0, clock, rng)
        line.take(b"x")
        releases.append(line.queue[0][0] - clock.now)
    assert 0.004 - 1e-9 <= min(releases) < 0.0045 and 0.0055 < max(releases) <= 0.006 + 1e-9


def test_a_loss_rate_drops_about_that_share():
    line = Line(0.0, 0.0, 0.25, Clock(10.0), random.Random(11))
    for _ in range(4000):
        line.take(b"x")
    assert 0.2 < 1 - len(line.queue) / 4000 < 0.3
