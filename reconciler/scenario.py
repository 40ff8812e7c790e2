"""Test-clock primitives that ``simulate`` and the demo both drive.

Moving a test clock (and waiting until Stripe has run what the move
triggers), reporting a legacy usage record, and sending a meter event: the
three things a migration rehearsal does to an account, all through the gateway.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from reconciler.errors import ReconcileError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.model import DEFAULT_CUSTOMER_KEY, DEFAULT_VALUE_KEY

__all__ = [
    "DEFAULT_CUSTOMER_KEY",
    "DEFAULT_VALUE_KEY",
    "advance_clock",
    "customer_invoices",
    "meter_keys",
    "report_usage",
    "send_meter_event",
]


def customer_invoices(gateway: Gateway, customer: str) -> list[dict[str, Any]]:
    """A customer's invoices (the latest 100), oldest first, read on the legacy version so
    a legacy price on a line shows whole."""
    found: list[dict[str, Any]] = gateway.get(
        "/v1/invoices", {"customer": customer, "limit": 100}, stripe_version=LEGACY_API_VERSION
    )["data"]
    return sorted(found, key=lambda invoice: invoice["created"])


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


def meter_keys(meter: Mapping[str, Any]) -> tuple[str, str]:
    """A Stripe meter object's payload keys: (customer key, value key)."""
    customer = (meter.get("customer_mapping") or {}).get("event_payload_key")
    value = (meter.get("value_settings") or {}).get("event_payload_key")
    return str(customer or DEFAULT_CUSTOMER_KEY), str(value or DEFAULT_VALUE_KEY)


def send_meter_event(
    gateway: Gateway,
    event_name: str,
    customer: str,
    value: int,
    *,
    at: int,
    identifier: str,
    customer_key: str = DEFAULT_CUSTOMER_KEY,
    value_key: str = DEFAULT_VALUE_KEY,
) -> None:
    """One meter event, its payload under the meter's own keys; ``identifier`` makes a
    resend harmless."""
    gateway.post(
        "/v1/billing/meter_events",
        {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": at,
            "payload": {customer_key: customer, value_key: str(value)},
        },
    )
