"""The per-target state machine (core/health.py): pure, no sockets, a fake clock.

Rise/fall hysteresis, the start-up state, the circuit breaker's back-off and
what a transition carries; then a hypothesis property over any sequence of
probe results.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geostream_dns.core.health import (
    ALL_UP,
    BREAKER_THRESHOLD,
    HALF_OPEN_MAX,
    HealthView,
    ProbeResult,
    TargetState,
    Transition,
)

KEY = ("example.com.", "web", "192.0.2.10")
PASS = ProbeResult(True, 0.004, "HTTP 200")
FAIL = ProbeResult(False, 0.5, "timeout after 0.5s")


def state(interval: float = 5.0, rise: int = 2, fall: int = 3, since: float = 0.0) -> TargetState:
    return TargetState(KEY, interval, rise, fall, since=since)


def feed(s: TargetState, results: list[ProbeResult], start: float = 1.0
         ) -> list[Transition | None]:
    return [s.record(r, start + i) for i, r in enumerate(results)]


# -- start-up, fall and rise -----------------------------------------------------------


def test_a_target_starts_up_with_nothing_observed() -> None:
    s = state(since=42.0)
    assert s.up
    assert s.since == 42.0
    assert (s.passes, s.failures, s.checks) == (0, 0, 0)
    assert s.last is None and s.last_at is None
    assert not s.breaker_open
    assert s.next_delay() == 5.0


@pytest.mark.parametrize("fall", [1, 2, 3, 5])
def test_fall_consecutive_failures_take_it_down_exactly_at_the_fall_th(fall: int) -> None:
    s = state(fall=fall)
    out = feed(s, [FAIL] * (fall - 1))
    assert out == [None] * (fall - 1)
    assert s.up, f"{fall - 1} failures must not take a fall={fall} target down"
    t = s.record(FAIL, 100.0)
    assert t is not None
    assert (t.old, t.new) == ("up", "down")
    assert not s.up
    assert s.since == 100.0


@pytest.mark.parametrize("rise", [1, 2, 4])
def test_rise_consecutive_passes_bring_it_back_exactly_at_the_rise_th(rise: int) -> None:
    s = state(rise=rise, fall=1)
    feed(s, [FAIL])
    assert not s.up
    out = feed(s, [PASS] * (rise - 1), start=10.0)
    assert out == [None] * (rise - 1)
    assert not s.up, f"{rise - 1} passes must not bring a rise={rise} target up"
    t = s.record(PASS, 50.0)
    assert t is not None and (t.old, t.new) == ("down", "up")
    assert s.up and s.since == 50.0


def test_a_pass_resets_the_failure_streak() -> None:
    s = state(fall=3)
    # fail, fail, pass, fail, fail: never three in a row
    out = feed(s, [FAIL, FAIL, PASS, FAIL, FAIL])
    assert out == [None] * 5
    assert s.up
    assert (s.passes, s.failures) == (0, 2)
    assert s.record(FAIL, 10.0) is not None
    assert not s.up


def test_a_failure_resets_the_pass_streak_while_down() -> None:
    s = state(rise=3, fall=1)
    feed(s, [FAIL, PASS, PASS, FAIL, PASS, PASS])
    assert not s.up
    assert s.passes == 2
    assert s.record(PASS, 10.0) is not None
    assert s.up


def test_passes_while_up_and_failures_while_down_change_nothing() -> None:
    s = state(rise=2, fall=2)
    assert feed(s, [PASS] * 5) == [None] * 5
    assert s.up and s.since == 0.0
    feed(s, [FAIL, FAIL])
    since = s.since
    assert feed(s, [FAIL] * 5, start=20.0) == [None] * 5
    assert not s.up and s.since == since


def test_every_result_is_remembered() -> None:
    s = state()
    s.record(PASS, 3.0)
    s.record(FAIL, 4.5)
    assert s.checks == 2
    assert s.last is FAIL
    assert s.last_at == 4.5


def test_a_transition_carries_the_key_reason_and_latency_of_the_probe_that_caused_it() -> None:
    s = state(rise=1, fall=1)
    down = s.record(ProbeResult(False, 0.0123, "connection refused"), 1.0)
    assert down == Transition(KEY, "up", "down", "connection refused", 0.0123)
    up = s.record(ProbeResult(True, 0.0042, "HTTP 204"), 2.0)
    assert up == Transition(KEY, "down", "up", "HTTP 204", 0.0042)


# -- circuit breaker and probe pacing ----------------------------------------------------


def test_next_delay_is_the_interval_while_up_even_after_failures() -> None:
    s = state(interval=3.0, fall=5)
    feed(s, [FAIL] * 4)
    assert s.up
    assert s.next_delay() == 3.0


def test_the_breaker_opens_only_after_threshold_failures_in_a_row() -> None:
    s = state(interval=1.0, fall=2)
    for i in range(1, BREAKER_THRESHOLD + 1):
        s.record(FAIL, float(i))
        assert not s.breaker_open, f"breaker open after only {i} failures"
        assert s.next_delay() == 1.0
    s.record(FAIL, 100.0)
    assert s.breaker_open
    assert s.next_delay() == 2.0


def test_an_open_breaker_doubles_the_delay_up_to_half_open_max() -> None:
    s = state(interval=0.5, fall=1)
    feed(s, [FAIL] * BREAKER_THRESHOLD)
    delays = []
    for i in range(8):
        s.record(FAIL, 100.0 + i)
        delays.append(s.next_delay())
    assert delays == [1.0, 2.0, 4.0, 8.0, HALF_OPEN_MAX, HALF_OPEN_MAX, HALF_OPEN_MAX,
                      HALF_OPEN_MAX]


def test_a_long_interval_is_capped_while_down_so_down_targets_are_probed_every_10s() -> None:
    s = state(interval=60.0, fall=1)
    assert s.next_delay() == 60.0  # up: the check's own pace
    s.record(FAIL, 1.0)
    assert not s.up and not s.breaker_open
    assert s.next_delay() == HALF_OPEN_MAX
    feed(s, [FAIL] * (BREAKER_THRESHOLD + 3), start=2.0)
    assert s.breaker_open
    assert s.next_delay() == HALF_OPEN_MAX


def test_a_target_down_for_days_still_gets_a_delay() -> None:
    """After ~1000 failures the back-off exponent must not overflow a float: the
    prober task calls next_delay() after every probe and would die, leaving
    the target down (and unprobed) for ever."""
    s = state(interval=1.0, fall=1)
    for i in range(5000):
        s.record(FAIL, float(i))
    assert s.failures == 5000
    assert s.next_delay() == HALF_OPEN_MAX


def test_the_first_pass_closes_the_breaker_and_the_rest_come_at_the_interval() -> None:
    s = state(interval=2.0, rise=3, fall=1)
    feed(s, [FAIL] * (BREAKER_THRESHOLD + 5))
    assert s.breaker_open and s.next_delay() == HALF_OPEN_MAX
    s.record(PASS, 500.0)
    assert not s.up
    assert not s.breaker_open
    assert s.next_delay() == 2.0  # the remaining rise - 1 passes at the normal pace
    s.record(PASS, 502.0)
    assert s.next_delay() == 2.0
    assert s.record(PASS, 504.0) is not None
    assert s.up and s.next_delay() == 2.0


def test_next_delay_never_exceeds_half_open_max_while_down() -> None:
    for interval in (0.1, 1.0, 5.0, 9.9, 10.0, 30.0, 300.0):
        s = state(interval=interval, fall=1)
        for i in range(40):
            s.record(FAIL, float(i))
            assert 0 < s.next_delay() <= HALF_OPEN_MAX, (interval, i)


# -- the health view ------------------------------------------------------------------


def test_the_view_obeys_status_and_drain_over_the_down_set() -> None:
    view = HealthView(3, frozenset({KEY}), frozenset({"eu"}))
    other = ("example.com.", "web", "192.0.2.11")
    assert not view.is_up(KEY, "obey", None)
    assert view.is_up(other, "obey", None)
    assert view.is_up(None, "obey", None)  # no check: healthy
    assert view.is_up(KEY, "up", None)  # status up beats the prober
    assert not view.is_up(other, "down", None)  # status down beats the prober
    assert not view.is_up(other, "up", "eu")  # a drained region beats everything
    assert not view.is_up(None, "obey", "eu")
    assert view.is_up(None, "obey", "us")
    assert ALL_UP.is_up(KEY, "obey", "eu")


# -- property -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(results=st.lists(st.booleans(), max_size=80),
       rise=st.integers(1, 6), fall=st.integers(1, 6))
def test_state_follows_transitions_and_transitions_need_full_streaks(
        results: list[bool], rise: int, fall: int) -> None:
    s = state(interval=1.0, rise=rise, fall=fall)
    last_to: str | None = None  # a target starts up
    streak_ok = streak_fail = 0
    for i, ok in enumerate(results):
        up_before = s.up
        t = s.record(PASS if ok else FAIL, float(i))
        streak_ok = streak_ok + 1 if ok else 0
        streak_fail = 0 if ok else streak_fail + 1
        assert (s.passes, s.failures) == (streak_ok, streak_fail)
        if t is None:
            assert s.up == up_before
        else:
            last_to = t.new
            assert t.old == ("up" if up_before else "down")
            assert t.new != t.old
            if t.new == "down":  # exactly the fall-th failure in a row
                assert not ok and streak_fail == fall
            else:  # exactly the rise-th pass in a row
                assert ok and streak_ok == rise
            assert s.since == float(i)
        assert (not s.up) == (last_to == "down")
        # hysteresis both ways: a full streak always decides the state
        if streak_fail >= fall:
            assert not s.up
        if streak_ok >= rise:
            assert s.up
        if s.up:
            assert s.next_delay() == 1.0
        else:
            assert 0 < s.next_delay() <= HALF_OPEN_MAX
