"""The response-rate limiter's accounts (core/rrl.py): balance, window, slip, table bound.

Time is a parameter: every test passes its own clock values.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geostream_dns.core.rrl import DROP, SEND, SLIP, RateLimiter


def run(limiter: RateLimiter, key: object, count: int, now: float) -> list[int]:
    return [limiter.charge(key, now) for _ in range(count)]


def test_a_new_account_gets_one_second_of_responses_then_is_limited() -> None:
    limiter = RateLimiter(rate=5, window=3, slip=2)
    actions = run(limiter, "a", 12, now=100.0)
    assert actions[:5] == [SEND] * 5
    assert actions[5:] == [DROP, SLIP, DROP, SLIP, DROP, SLIP, DROP]


def test_accounts_are_separate() -> None:
    limiter = RateLimiter(rate=2, window=1, slip=0)
    assert run(limiter, "a", 3, 0.0) == [SEND, SEND, DROP]
    assert run(limiter, "b", 2, 0.0) == [SEND, SEND]


def test_credit_is_rate_per_second_capped_at_rate() -> None:
    limiter = RateLimiter(rate=4, window=10, slip=0)
    assert run(limiter, "a", 4, 0.0) == [SEND] * 4
    # a quarter of a second later: one response's worth of credit
    assert run(limiter, "a", 2, 0.25) == [SEND, DROP]
    # a long quiet time: no more than one second's worth (the cap)
    limiter2 = RateLimiter(rate=4, window=10, slip=0)
    limiter2.charge("a", 0.0)
    assert run(limiter2, "a", 6, 1000.0) == [SEND] * 4 + [DROP] * 2


def test_the_debt_is_capped_at_rate_times_window() -> None:
    limiter = RateLimiter(rate=10, window=2, slip=0)
    run(limiter, "a", 10_000, 0.0)  # a flood: the debt stops at -20
    assert limiter.accounts["a"][0] == -20.0
    # after window seconds of quiet the account is back in credit
    assert limiter.charge("a", 2.0 + 0.15) == SEND
    limiter2 = RateLimiter(rate=10, window=2, slip=0)
    run(limiter2, "a", 10_000, 0.0)
    assert limiter2.charge("a", 1.5) == DROP  # not yet


def test_a_flood_that_goes_on_stays_limited() -> None:
    """Every response is charged, sent or not: a steady flood far above the rate
    gets its first second's worth and then (almost) nothing for as long as it lasts."""
    limiter = RateLimiter(rate=20, window=15, slip=0)
    sent = 0
    for tick in range(10 * 1000):  # 10 s at 1000 queries per second
        sent += limiter.charge("a", tick / 1000) == SEND
    assert sent == 20


@pytest.mark.parametrize(("slip", "expected"), [
    (0, [DROP] * 6),
    (1, [SLIP] * 6),
    (3, [DROP, DROP, SLIP, DROP, DROP, SLIP]),
])
def test_slip(slip: int, expected: list[int]) -> None:
    limiter = RateLimiter(rate=1, window=5, slip=slip)
    assert limiter.charge("a", 0.0) == SEND
    assert run(limiter, "a", 6, 0.0) == expected


def test_the_table_keeps_at_most_size_accounts_least_recently_used_dropped() -> None:
    limiter = RateLimiter(rate=1, window=1, slip=0, size=3)
    for key in "abc":
        limiter.charge(key, 0.0)
    limiter.charge("a", 0.0)  # within the same second: recency is kept to the second
    assert list(limiter.accounts) == ["a", "b", "c"]
    limiter.charge("a", 1.0)  # a is now the most recent
    limiter.charge("a", 1.0)  # (and limited)
    limiter.charge("d", 1.0)  # b, the least recent, goes
    assert list(limiter.accounts) == ["c", "a", "d"]
    assert len(limiter) == 3
    assert limiter.charge("a", 1.0) == DROP  # still limited: it was kept


@pytest.mark.parametrize(("options", "message"), [
    ({"rate": 0}, "rate"), ({"window": 0.5}, "window"), ({"slip": -1}, "slip"),
    ({"size": 0}, "table size"),
])
def test_bad_settings_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter(**options)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(1, 50), window=st.integers(1, 20), slip=st.integers(0, 5),
       size=st.integers(1, 20),
       events=st.lists(st.tuples(st.integers(0, 30), st.floats(0, 3)), max_size=300))
def test_properties(rate: int, window: int, slip: int, size: int,
                    events: list[tuple[int, float]]) -> None:
    """Whatever the traffic: the table never holds more than `size` accounts; a
    balance stays within [-rate*window, rate]; an account never sends more than
    rate + elapsed*rate responses; slips are exactly every slip-th limited one."""
    limiter = RateLimiter(rate, window, slip, size)
    now = 0.0
    sent: dict[int, int] = {}
    first: dict[int, float] = {}
    limited: dict[int, int] = {}
    slipped: dict[int, int] = {}
    for key, step in events:
        now += step
        if key not in limiter.accounts:  # new (or evicted and back): counts afresh
            sent[key] = limited[key] = slipped[key] = 0
            first[key] = now
        action = limiter.charge(key, now)
        assert len(limiter) <= size
        balance = limiter.accounts[key][0]
        assert -rate * window - 1e-9 <= balance <= rate
        if action == SEND:
            sent[key] += 1
            assert sent[key] <= rate + (now - first[key]) * rate + 1e-6
        else:
            limited[key] += 1
            slipped[key] += action == SLIP
            assert slipped[key] == (limited[key] // slip if slip else 0)
