"""Emulated time.

:class:`Clock` answers "now" for every timestamp the emulator writes
(``created``, ``updated``, event windows). It follows real time by default;
tests can freeze it, set it or move it forward. Test clocks
(``/v1/test_helpers/test_clocks``) are separate objects with their own
``frozen_time``; billing logic that runs on a test clock reads that value, not
this one.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Clock"]


class Clock:
    """A thread-safe clock: real time plus an offset, or a frozen instant."""

    def __init__(self, frozen_at: int | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = float(frozen_at) if frozen_at is not None else None

    def time(self) -> float:
        """Seconds since the epoch, as a float."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self) -> int:
        """Whole seconds since the epoch (what Stripe timestamps hold)."""
        return int(self.time())

    def freeze(self, at: int | None = None) -> None:
        """Stop the clock, at ``at`` or at the current instant."""
        current = self.time()
        with self._lock:
            self._frozen = float(at) if at is not None else current

    def unfreeze(self) -> None:
        """Let the clock run again from where it stands."""
        current = self.time()
        with self._lock:
            self._frozen = None
            self._offset = current - time.time()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (frozen or running)."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._frozen = None
            self._offset = 0.0
