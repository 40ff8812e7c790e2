"""Pacing requests to Stripe: a token bucket, and additive-increase, multiplicative-
decrease (AIMD) of its rate when the account's own traffic pushes it into 429s.

Stripe limits an account as a whole (25 operations a second in test mode, 100
live) and each endpoint on its own (25 a second unless documented otherwise).
Apply keeps headroom for the account's production traffic by pacing at a
share of those limits; when 429s come anyway, that traffic is using more than
its share, so the pace halves (at most once a second, never below a
sixteenth) and then climbs back linearly, to the configured pace in
``RECOVERY_SECONDS`` of success.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RECOVERY_SECONDS", "AdaptivePace", "PaceReport", "TokenBucket"]

RECOVERY_SECONDS = 5.0
_COOLDOWN_SECONDS = 1.0
_FLOOR_SHARE = 1 / 16


class TokenBucket:
    """Spaces calls to at most ``rate`` per second on average, with bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate / 5)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the seconds waited.

        The token is reserved before the sleep (the count may go below zero), so each
        caller sleeps exactly once, until its own turn. Sleeping for a shortfall and
        checking again would spin forever once the shortfall is a rounding error that
        the clock cannot show (a coarse or fake clock), and lets threads race for the
        same token.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class PaceReport:
    """How the pace went: configured, lowest reached, at the end, and how often it fell."""

    configured: float
    lowest: float
    final: float
    decreases: int


class AdaptivePace:
    """AIMD on a bucket's rate: halve on a 429 from the rate limiter, recover linearly."""

    def __init__(self, bucket: TokenBucket, *, clock: Callable[[], float] = time.monotonic):
        self.bucket = bucket
        self.configured = bucket.rate
        self.lowest = bucket.rate
        self.decreases = 0
        self._clock = clock
        self._last_change = clock()
        self._last_decrease = float("-inf")
        self._lock = threading.Lock()

    def rate_limited(self) -> None:
        """A 429 from Stripe's rate limiter: halve the pace (once per cooldown)."""
        with self._lock:
            now = self._clock()
            if now - self._last_decrease < _COOLDOWN_SECONDS:
                return
            floor = self.configured * _FLOOR_SHARE
            self.bucket.rate = max(floor, self.bucket.rate / 2)
            self.lowest = min(self.lowest, self.bucket.rate)
            self.decreases += 1
            self._last_decrease = self._last_change = now

    def succeeded(self) -> None:
        """An answered request: climb back towards the configured pace."""
        with self._lock:
            now = self._clock()
            if self.bucket.rate < self.configured:
                step = (now - self._last_change) * self.configured / RECOVERY_SECONDS
                self.bucket.rate = min(self.configured, self.bucket.rate + step)
            self._last_change = now

    def report(self) -> PaceReport:
        with self._lock:
            return PaceReport(self.configured, self.lowest, self.bucket.rate, self.decreases)
