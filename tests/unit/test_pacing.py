"""Adaptive pacing: halve on a rate-limit 429, at most once a second; climb back linearly."""

from __future__ import annotations

import pytest

from reconciler.pacing import RECOVERY_SECONDS, AdaptivePace, PaceReport, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pace(rate: float = 20.0) -> tuple[AdaptivePace, Clock]:
    clock = Clock()
    bucket = TokenBucket(rate, clock=clock, sleep=lambda _seconds: None)
    return AdaptivePace(bucket, clock=clock), clock


def test_a_429_halves_the_pace_and_a_burst_of_them_counts_once() -> None:
    adaptive, clock = pace(20.0)
    for _ in range(5):  # one burst of 429s within the cooldown
        adaptive.rate_limited()
    assert adaptive.bucket.rate == 10.0
    clock.now += 1.0
    adaptive.rate_limited()
    assert adaptive.bucket.rate == 5.0
    assert adaptive.report() == PaceReport(configured=20.0, lowest=5.0, final=5.0, decreases=2)


def test_the_pace_never_falls_below_a_sixteenth() -> None:
    adaptive, clock = pace(16.0)
    for _ in range(10):
        clock.now += 1.0
        adaptive.rate_limited()
    assert adaptive.bucket.rate == 1.0
    assert adaptive.report().decreases == 10


def test_success_climbs_back_linearly_to_the_configured_pace_and_no_further() -> None:
    adaptive, clock = pace(20.0)
    adaptive.rate_limited()
    assert adaptive.bucket.rate == 10.0
    clock.now += RECOVERY_SECONDS / 4  # a quarter of the way: +5/s
    adaptive.succeeded()
    assert adaptive.bucket.rate == pytest.approx(15.0)
    clock.now += RECOVERY_SECONDS
    adaptive.succeeded()
    assert adaptive.bucket.rate == 20.0
    assert adaptive.report() == PaceReport(configured=20.0, lowest=10.0, final=20.0, decreases=1)


def test_successes_without_429s_change_nothing() -> None:
    adaptive, clock = pace(20.0)
    for _ in range(100):
        clock.now += 0.05
        adaptive.succeeded()
    assert adaptive.report() == PaceReport(configured=20.0, lowest=20.0, final=20.0, decreases=0)


def test_a_halved_pace_spaces_calls_twice_as_far_apart() -> None:
    adaptive, _clock = pace(10.0)  # a burst of 2, then one every 0.1 s
    adaptive.rate_limited()  # now one every 0.2 s
    waits = [adaptive.bucket.acquire() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.2, 0.4])
