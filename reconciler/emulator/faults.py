"""Deterministic fault injection.

A :class:`FaultPlan` is parsed from a spec string of comma-separated
``key=value`` items::

    seed=7,500=0.05,429=0.05,reset=0.02,latency=0.1:0.2,lost=0.05

- ``seed=N``: the seed of the plan's ``random.Random`` (default 0);
- ``500=P``: answer HTTP 500 ``api_error`` before the handler runs (nothing is written);
- ``429=P``: answer HTTP 429 ``rate_limit_error`` (nothing is written);
- ``reset=P``: close the connection without a response (nothing is written);
- ``lost=P``: run the handler (the write is committed), then drop the connection
  instead of answering: the client sees an error although the change happened;
- ``latency=P:SECONDS``: sleep ``SECONDS`` before handling (independent of the others).

Probabilities are between 0 and 1; ``500 + 429 + reset + lost`` must not exceed 1.
For each API request, in arrival order, the plan draws one number for latency and
one for the exclusive kinds, so a run with the same seed and the same request
sequence meets the same faults. The emulator's own ``/_emulator/*`` endpoints are
never faulted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fault", "FaultPlan"]

EXCLUSIVE_KINDS = ("500", "429", "reset", "lost")


@dataclass(frozen=True)
class Fault:
    """What to do to one request: at most one exclusive kind, plus a delay."""

    kind: str | None = None
    delay: float = 0.0


@dataclass
class FaultPlan:
    """Fault probabilities and the seeded generator that decides per request."""

    seed: int = 0
    probabilities: dict[str, float] = field(default_factory=dict)
    latency_probability: float = 0.0
    latency_seconds: float = 0.0

    def __post_init__(self) -> None:
        for kind, probability in self.probabilities.items():
            if kind not in EXCLUSIVE_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"fault probability for {kind} must be within 0..1")
        if sum(self.probabilities.values()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities (500, 429, reset, lost) add up to more than 1")
        if not 0.0 <= self.latency_probability <= 1.0 or self.latency_seconds < 0:
            raise ValueError("latency must be PROBABILITY:SECONDS with 0 <= p <= 1, seconds >= 0")
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Parse the grammar above; raises ValueError with the offending item."""
        seed = 0
        probabilities: dict[str, float] = {}
        latency_probability = 0.0
        latency_seconds = 0.0
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip()
            value = value.strip()
            if not sep or not value:
                raise ValueError(f"fault spec item {item!r} is not KEY=VALUE")
            try:
                if key == "seed":
                    seed = int(value)
                elif key == "latency":
                    probability, _, seconds = value.partition(":")
                    latency_probability = float(probability)
                    latency_seconds = float(seconds) if seconds else 0.1
                elif key in EXCLUSIVE_KINDS:
                    probabilities[key] = float(value)
                else:
                    raise ValueError(
                        f"unknown fault kind {key!r} (known: seed, latency, "
                        + ", ".join(EXCLUSIVE_KINDS)
                        + ")"
                    )
            except ValueError as exc:
                if "unknown fault kind" in str(exc):
                    raise
                raise ValueError(f"fault spec item {item!r}: {exc}") from None
        return cls(seed, probabilities, latency_probability, latency_seconds)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultPlan:
        """From ``{"spec": "..."}`` or ``{"seed": 7, "500": 0.05, "latency": "0.1:0.2"}``."""
        if "spec" in data:
            return cls.parse(str(data["spec"]))
        return cls.parse(",".join(f"{key}={value}" for key, value in data.items()))

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            **self.probabilities,
            "latency": f"{self.latency_probability}:{self.latency_seconds}",
        }

    def decide(self) -> Fault:
        """The fault for the next request (consumes two draws)."""
        with self._lock:
            latency_draw = self._random.random()
            kind_draw = self._random.random()
        delay = self.latency_seconds if latency_draw < self.latency_probability else 0.0
        cumulative = 0.0
        for kind in EXCLUSIVE_KINDS:
            cumulative += self.probabilities.get(kind, 0.0)
            if kind_draw < cumulative:
                return Fault(kind, delay)
        return Fault(None, delay)
