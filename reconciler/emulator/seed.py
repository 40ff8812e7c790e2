"""Seed a legacy usage-billing account, through the HTTP API with the real SDK.

:func:`seed_legacy_account` builds what the migration job meets in the wild:
an AI-video business billing generated seconds with a legacy meter-less
metered price (usage records). Everything goes through the API, so the
emulator is exercised as a client would (and the same call can target
Stripe test mode): requests that name the legacy price, and the usage
records, are pinned to ``2025-02-24.acacia``, the rest uses the SDK's version.

What it makes (deterministic: no randomness, only Stripe's ids differ):

- product ``prod_video_generation``; the legacy price (lookup key
  ``video_seconds_legacy``, ``aggregate_usage=sum``, ``unit_amount_decimal``
  ``"0.35"``, monthly); a licensed ``platform_fee`` price (49.00 a month); a
  20 % exclusive tax rate and a 10 % forever coupon;
- ``customers`` customers, each on its own test clock, the clocks one day
  apart from ``start``, each paying with Stripe's test card ``pm_card_visa``
  (its default payment method for invoices); each has a subscription on the legacy price; every
  third (index 0, 3, ...) also has the platform fee item, the tax rate and the
  coupon; every fourth from index 1 (1, 5, 9, ...) has a schedule created
  from its subscription (not ours: no metadata);
- each clock then moves ``usage_days`` days into the period, and usage
  records for every elapsed day are reported (``60 x (index + 1) + 7 x day``
  seconds each);
- with ``priority_rendering``: a second legacy licensed plan, the
  ``priority_rendering`` price (15.00 a seat a month, on product
  ``prod_priority_rendering``), 2 seats of it on every sixth subscription from
  index 0 (0, 6, ...: beside the platform fee) and from index 4 (4, 10, ...:
  alone). Off by default: the tests that seed this account work their
  invoices and items from the account above, and the demo alone tells a
  consolidation of the two plans.

This is a test and demo helper, not part of the emulator's server: it is the
one emulator module besides :mod:`.params` that imports the stripe SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from reconciler.emulator.server import Emulator
from reconciler.emulator.versions import LAST_LEGACY_USAGE_VERSION

__all__ = ["MIGRATION_CONFIG", "SeededAccount", "SeededCustomer", "seed_legacy_account"]

DAY = 86400
#: 2025-01-15 00:00:00 UTC.
DEFAULT_START = 1_736_899_200
PRODUCT_ID = "prod_video_generation"
LEGACY_LOOKUP_KEY = "video_seconds_legacy"
PLATFORM_LOOKUP_KEY = "platform_fee"
PRIORITY_LOOKUP_KEY = "priority_rendering"
PRIORITY_PRODUCT_ID = "prod_priority_rendering"
PRIORITY_SEATS = 2
EMULATOR_KEY = "sk_test_emulator_seed"

MIGRATION_CONFIG = """\
version: 1
mode: test
products:
  - id: prod_video_generation
    name: Video generation
meters:
  - event_name: video_seconds
    display_name: Video seconds
    aggregation: sum
prices:
  - lookup_key: video_seconds_metered
    product: prod_video_generation
    currency: usd
    unit_amount_decimal: "0.35"
    recurring: {interval: month, usage: metered, meter: video_seconds}
    default: true
migrations:
  video-seconds-to-meter:
    from_price: video_seconds_legacy
    to_price: video_seconds_metered
"""
"""A billing.yaml that moves the seeded account to a meter: the smallest migration."""


@dataclass(frozen=True)
class SeededCustomer:
    """One seeded customer and what hangs off it."""

    index: int
    customer: str
    test_clock: str
    subscription: str
    legacy_item: str
    platform_item: str | None
    schedule: str | None
    usage_total: int
    period_start: int
    period_end: int
    priority_item: str | None = None
    priority_seats: int = 0


@dataclass(frozen=True)
class SeededAccount:
    """The ids :func:`seed_legacy_account` created."""

    product: str
    legacy_price: str
    platform_price: str
    tax_rate: str
    coupon: str
    customers: tuple[SeededCustomer, ...]
    priority_price: str | None = None

    @property
    def subscriptions(self) -> list[str]:
        return [c.subscription for c in self.customers]

    @property
    def scheduled(self) -> list[SeededCustomer]:
        """The customers whose subscription already has a (foreign) schedule."""
        return [c for c in self.customers if c.schedule is not None]


def _client(target: stripe.StripeClient | Emulator | str) -> stripe.StripeClient:
    if isinstance(target, stripe.StripeClient):
        return target
    url = target.url if isinstance(target, Emulator) else target
    return stripe.StripeClient(
        EMULATOR_KEY,
        base_addresses={"api": url, "files": url, "connect": url, "meter_events": url},
        max_network_retries=0,
    )


def _legacy(client: stripe.StripeClient, method: str, path: str, **params: Any) -> Any:
    """A request pinned to the last API version with legacy usage billing."""
    response = client.raw_request(method, path, stripe_version=LAST_LEGACY_USAGE_VERSION, **params)
    return client.deserialize(response, api_mode="V1")


def seed_legacy_account(
    target: stripe.StripeClient | Emulator | str,
    *,
    customers: int = 12,
    start: int = DEFAULT_START,
    usage_days: int = 10,
    priority_rendering: bool = False,
) -> SeededAccount:
    """Create the legacy AI-video account (see the module docstring); returns its ids."""
    if not 1 <= usage_days <= 27:
        raise ValueError("usage_days must stay inside the first monthly period (1 to 27)")
    client = _client(target)
    product = client.v1.products.create(
        params={"id": PRODUCT_ID, "name": "Video generation", "unit_label": "second"}
    )
    legacy = _legacy(
        client,
        "post",
        "/v1/prices",
        product=product.id,
        currency="usd",
        unit_amount_decimal="0.35",
        lookup_key=LEGACY_LOOKUP_KEY,
        nickname="Generated video seconds (legacy usage records)",
        recurring={"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
    )
    platform = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 4900,
            "lookup_key": PLATFORM_LOOKUP_KEY,
            "recurring": {"interval": "month"},
        }
    )
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = client.v1.coupons.create(
        params={"id": "LOYALTY10", "percent_off": 10, "duration": "forever"}
    )
    priority = _priority_price(client) if priority_rendering else None
    seeded = [
        _seed_customer(
            client,
            index,
            start + index * DAY,
            usage_days,
            legacy,
            platform,
            rate,
            coupon,
            priority,
        )
        for index in range(customers)
    ]
    return SeededAccount(
        product=product.id,
        legacy_price=str(legacy["id"]),
        platform_price=platform.id,
        tax_rate=rate.id,
        coupon=coupon.id,
        customers=tuple(seeded),
        priority_price=priority.id if priority is not None else None,
    )


def _priority_price(client: stripe.StripeClient) -> Any:
    """The second legacy licensed plan: priority rendering, a seat add-on."""
    product = client.v1.products.create(
        params={"id": PRIORITY_PRODUCT_ID, "name": "Priority rendering", "unit_label": "seat"}
    )
    return client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 1500,
            "lookup_key": PRIORITY_LOOKUP_KEY,
            "nickname": "Priority rendering seat (legacy)",
            "recurring": {"interval": "month"},
        }
    )


def _seed_customer(
    client: stripe.StripeClient,
    index: int,
    frozen_time: int,
    usage_days: int,
    *catalog: Any,
) -> SeededCustomer:
    legacy, platform, rate, coupon, priority = catalog
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": frozen_time, "name": f"legacy-{index:02d}"}
    )
    customer = client.v1.customers.create(
        params={
            "name": f"Studio {index:02d}",
            "email": f"studio{index:02d}@example.com",
            "metadata": {"seed": "legacy"},
            "test_clock": clock.id,
            # Pays its invoices: Stripe charges the default payment method.
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    extras = index % 3 == 0
    items: list[dict[str, Any]] = [{"price": legacy["id"]}]
    params: dict[str, Any] = {"customer": customer.id, "metadata": {"seed": "legacy"}}
    if extras:
        items.append({"price": platform.id, "quantity": 1})
        params["default_tax_rates"] = [rate.id]
        params["discounts"] = [{"coupon": coupon.id}]
    seats = PRIORITY_SEATS if priority is not None and index % 6 in (0, 4) else 0
    if seats:
        items.append({"price": priority.id, "quantity": seats})
    subscription = _legacy(client, "post", "/v1/subscriptions", items=items, **params)
    sub_items = subscription["items"]["data"]
    schedule = None
    if index % 4 == 1:
        schedule = client.v1.subscription_schedules.create(
            params={"from_subscription": subscription["id"]}
        ).id
    client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": frozen_time + usage_days * DAY}
    )
    total = 0
    for day in range(usage_days):
        quantity = 60 * (index + 1) + 7 * day
        _legacy(
            client,
            "post",
            f"/v1/subscription_items/{sub_items[0]['id']}/usage_records",
            quantity=quantity,
            timestamp=frozen_time + day * DAY + 3600,
            action="increment",
        )
        total += quantity
    return SeededCustomer(
        index=index,
        customer=customer.id,
        test_clock=clock.id,
        subscription=str(subscription["id"]),
        legacy_item=str(sub_items[0]["id"]),
        platform_item=str(sub_items[1]["id"]) if extras else None,
        schedule=schedule,
        usage_total=total,
        period_start=int(sub_items[0]["current_period_start"]),
        period_end=int(sub_items[0]["current_period_end"]),
        priority_item=str(sub_items[-1]["id"]) if seats else None,
        priority_seats=seats,
    )
