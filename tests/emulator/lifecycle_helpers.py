"""Builders for the billing lifecycle tests: prices, clocks, customers, subscriptions."""

from __future__ import annotations

import time
from typing import Any

import stripe

LEGACY = "2025-02-24.acacia"
BASIL = "2025-03-31.basil"
DAY = 86400
#: 2025-01-15 00:00:00 UTC: a mid-month start, so month boundaries are easy to read.
JAN_15 = 1_736_899_200
FEB_15 = 1_739_577_600
MAR_15 = 1_741_996_800
APR_15 = 1_744_675_200


def legacy_price(
    client: stripe.StripeClient, product: str, *, aggregate_usage: str = "sum", **extra: Any
) -> Any:
    """A meter-less metered monthly price (created on the last legacy API version)."""
    params: dict[str, Any] = {
        "product": product,
        "currency": "usd",
        "recurring": {
            "interval": "month",
            "usage_type": "metered",
            "aggregate_usage": aggregate_usage,
        },
    }
    params.update(extra)
    if (
        "unit_amount" not in params
        and "unit_amount_decimal" not in params
        and params.get("billing_scheme") != "tiered"
    ):
        params["unit_amount_decimal"] = "0.35"
    response = client.raw_request("post", "/v1/prices", stripe_version=LEGACY, **params)
    return client.deserialize(response, api_mode="V1")


def meter_price(client: stripe.StripeClient, product: str, meter: str, **extra: Any) -> Any:
    """A metered monthly price backed by ``meter``."""
    params: dict[str, Any] = {
        "product": product,
        "currency": "usd",
        "recurring": {"interval": "month", "usage_type": "metered", "meter": meter},
    }
    params.update(extra)
    return client.v1.prices.create(params=params)  # type: ignore[arg-type]


def licensed_price(client: stripe.StripeClient, product: str, unit_amount: int = 4900) -> Any:
    return client.v1.prices.create(
        params={
            "product": product,
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": {"interval": "month"},
        }
    )


def clocked_customer(
    client: stripe.StripeClient,
    frozen_time: int = JAN_15,
    *,
    payment_method: str | None = "pm_card_visa",
) -> tuple[Any, Any]:
    """A test clock at ``frozen_time`` and a customer on it, paying with ``payment_method``
    (a test card made the default for invoices, as Stripe's Billing quickstart does; None
    for a customer without any payment method)."""
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen_time})
    params: dict[str, Any] = {"name": "Clocked", "test_clock": clock.id}
    if payment_method is not None:
        params["payment_method"] = payment_method
        params["invoice_settings"] = {"default_payment_method": payment_method}
    customer = client.v1.customers.create(params=params)  # type: ignore[arg-type]
    return clock, customer


def meter(client: stripe.StripeClient, event_name: str, formula: str = "sum", **extra: Any) -> Any:
    params: dict[str, Any] = {
        "display_name": event_name,
        "event_name": event_name,
        "default_aggregation": {"formula": formula},
    }
    params.update(extra)
    return client.v1.billing.meters.create(params=params)  # type: ignore[arg-type]


def legacy_subscription(client: stripe.StripeClient, customer: str, items: list[Any]) -> Any:
    """A subscription created on the legacy version (needed for meter-less metered prices)."""
    response = client.raw_request(
        "post", "/v1/subscriptions", stripe_version=LEGACY, customer=customer, items=items
    )
    return client.deserialize(response, api_mode="V1")


def advance(client: stripe.StripeClient, clock: str, to: int, *, wait_seconds: int = 120) -> Any:
    """Move a test clock to ``to`` and wait until it is ``ready``: Stripe answers an
    advance with ``advancing`` and finishes it in the background (the emulator at once)."""
    client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    for _ in range(wait_seconds * 10):
        moved = client.v1.test_helpers.test_clocks.retrieve(clock)
        if moved.status == "ready":
            assert moved.frozen_time == to
            return moved
        time.sleep(0.1)
    raise AssertionError(f"test clock {clock} did not finish advancing in {wait_seconds} s")
