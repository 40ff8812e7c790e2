"""Test-clock primitives that ``simulate`` and the demo both drive.

Moving a test clock (and waiting until Stripe has run what the move
triggers), reporting a legacy usage record, and sending a meter event: the
three things a migration rehearsal does to an account, all through the gateway.
"""

from __future__ import annotations

import time

from reconciler.errors import ReconcileError
from reconciler.gateway import LEGACY_API_VERSION, Gateway

__all__ = ["advance_clock", "report_usage", "send_meter_event"]


def advance_clock(gateway: Gateway, clock: str, to: int, *, wait_seconds: int = 120) -> None:
    """Move a test clock to ``to`` and wait until it is ``ready`` again."""
    gateway.post(f"/v1/test_helpers/test_clocks/{clock}/advance", {"frozen_time": to})
    for _ in range(wait_seconds):
        if gateway.get(f"/v1/test_helpers/test_clocks/{clock}")["status"] == "ready":
            return
        time.sleep(1)
    raise ReconcileError(f"test clock {clock} did not finish advancing")


def report_usage(gateway: Gateway, item: str, quantity: int, at: int) -> None:
    """A legacy usage record (only on the last API version that has them)."""
    gateway.post(
        f"/v1/subscription_items/{item}/usage_records",
        {"quantity": quantity, "timestamp": at, "action": "increment"},
        stripe_version=LEGACY_API_VERSION,
    )


def send_meter_event(
    gateway: Gateway, event_name: str, customer: str, value: int, *, at: int, identifier: str
) -> None:
    """One meter event; ``identifier`` makes a resend harmless."""
    gateway.post(
        "/v1/billing/meter_events",
        {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": at,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
        },
    )
