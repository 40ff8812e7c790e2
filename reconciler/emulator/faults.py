"""Deterministic fault injection.

A :class:`FaultPlan` is parsed from a spec string of comma-separated
``key=value`` items::

    seed=7,500=0.05,429=0.05,409=0.02,lock=0.02,noretry=0.01,reset=0.02,lost=0.05,latency=0.1:0.2

- ``seed=N``: the seed of the plan's ``random.Random`` (default 0);
- ``500=P``: answer HTTP 500 ``api_error`` with ``Stripe-Should-Retry: true``;
- ``429=P``: answer HTTP 429 ``rate_limit_error`` (code ``rate_limit``);
- ``409=P``: answer HTTP 409 ``idempotency_key_in_use``, as Stripe does while another
  request with the same idempotency key is still running (no ``Stripe-Should-Retry``
  header: the status alone says "try again");
- ``lock=P``: answer HTTP 429 ``lock_timeout`` with ``Stripe-Should-Retry: true``: the
  object is locked by another request or a Stripe process;
- ``noretry=P``: answer HTTP 500 ``api_error`` with ``Stripe-Should-Retry: false``: Stripe
  says a retry would not help, so a client must not repeat the request;
- ``reset=P``: close the connection without a response;
- ``lost=P``: run the handler (the write is committed), then drop the connection
  instead of answering: the client sees an error although the change happened;
- ``latency=P:SECONDS``: sleep ``SECONDS`` before handling (independent of the others).
  This is the "slow Stripe" fault: ``latency=1:2`` makes every request take two seconds
  longer; combined with a client timeout it becomes a timeout.

Every kind but ``lost`` answers before the handler runs: nothing is written and no
idempotent result is saved, so the same request with the same key may succeed later.

Probabilities are between 0 and 1; the exclusive kinds (all but ``seed`` and
``latency``) must not add up to more than 1. For each API request, in arrival order,
the plan draws one number for latency and one for the exclusive kinds, so a run with
the same seed and the same request sequence meets the same faults. The emulator's own
``/_emulator/*`` endpoints are never faulted.

Where the answers come from:

- ``lock_timeout``: https://docs.stripe.com/rate-limits#object-lock-timeouts ("errors
  with HTTP status 429, code lock_timeout"; unlike other 429s, the SDKs' automatic
  retries retry them). Stripe documents it as a 429, not a 409: hence a kind of its
  own. The type and message are those of Stripe's responses as users report them
  (type ``invalid_request_error``, doc_url ``.../error-codes/lock-timeout``).
- ``idempotency_key_in_use``: an error code of https://docs.stripe.com/error-codes
  (also in the SDK's error-code enums), answered with HTTP 409 and the message below;
  https://docs.stripe.com/api/idempotent_requests: results are saved only once an
  endpoint began executing, so a request refused as conflicting saves none.
- ``Stripe-Should-Retry``: the header Stripe sets to tell clients whether a retry can
  help (lock timeouts: ``true``). The official SDKs obey it before looking at the
  status: stripe-python's ``HTTPClient._should_retry`` returns False on ``false`` and
  True on ``true``, then retries 409 and 5xx.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from reconciler.emulator.errors import ApiError

__all__ = ["EXCLUSIVE_KINDS", "LOCK_TIMEOUT_MESSAGE", "Fault", "FaultPlan", "fault_error"]

# New kinds go at the end: a seed then meets the same faults as before for any spec
# that does not use them.
EXCLUSIVE_KINDS = ("500", "429", "reset", "lost", "409", "lock", "noretry")

LOCK_TIMEOUT_MESSAGE = (
    "This object cannot be accessed right now because another API request or Stripe "
    "process is currently accessing it. If you see this error intermittently, retry the "
    "request. If you see this error frequently and are making multiple concurrent requests "
    "to a single object, make your requests serially or at a lower rate."
)


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
            raise ValueError(
                f"fault probabilities ({', '.join(EXCLUSIVE_KINDS)}) add up to more than 1"
            )
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


def fault_error(kind: str | None, idempotency_key: str | None = None) -> ApiError | None:
    """The error a fault kind answers with before the handler runs; None for the kinds
    that answer otherwise (no fault, ``reset``, ``lost``). None of them is saved as an
    idempotent result (``store_idempotent=False``): nothing ran."""
    match kind:
        case "500" | "noretry":
            return ApiError(
                500,
                "An unknown error occurred while processing your request.",
                type_="api_error",
                headers={"Stripe-Should-Retry": "false" if kind == "noretry" else "true"},
                store_idempotent=False,
            )
        case "429":
            return ApiError(
                429,
                "Too many requests hit the API too quickly. We recommend an "
                "exponential backoff of your requests.",
                type_="rate_limit_error",
                code="rate_limit",
                headers={"Stripe-Should-Retry": "true"},
                store_idempotent=False,
            )
        case "lock":
            return ApiError(
                429,
                LOCK_TIMEOUT_MESSAGE,
                code="lock_timeout",
                headers={"Stripe-Should-Retry": "true"},
                store_idempotent=False,
            )
        case "409":
            held = f": {idempotency_key}" if idempotency_key else ""
            return ApiError(
                409,
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                f"going through){held}. Please try again later.",
                code="idempotency_key_in_use",
                store_idempotent=False,
            )
        case _:
            return None
