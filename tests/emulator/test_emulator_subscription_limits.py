"""Stripe's per-subscription limits: "10 new invoices per subscription, per minute",
"20 new invoices per subscription, per day", "200 quantity updates per subscription,
per hour" (docs.stripe.com/rate-limits). Past one, the request is refused with 429
``rate_limit`` and changes nothing; invoices a test clock advance makes are never
counted nor refused.

Invoices are made by seat changes invoiced at once (``always_invoice``) on a test
clock, whose frozen time keeps them all inside the windows.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``); those taking ``emu`` read the emulator's own store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import DAY, JAN_15, advance, clocked_customer, licensed_price

from reconciler.emulator import Emulator

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")
#: Internal store kind of the counts (:mod:`reconciler.emulator.resources.subscription_limits`).
COUNTS = "_subscription_limits"
MINUTE = "10 new invoices in the last minute"
DAY_LIMIT = "20 new invoices in the last day"
HOUR_LIMIT = "200 quantity updates in the last hour"


def _invoice_count(client: stripe.StripeClient, sub: str) -> int:
    return len(client.v1.invoices.list(params={"subscription": sub, "limit": 100}).data)


def _seats(client: stripe.StripeClient, sub: Any, quantity: int, behavior: str) -> Any:
    return client.v1.subscription_items.update(
        sub["items"].data[0].id,
        params={"quantity": quantity, "proration_behavior": behavior},
    )


def _invoice_seats(client: stripe.StripeClient, sub: Any, quantities: range) -> None:
    """One invoice per quantity: each change is invoiced at once."""
    for quantity in quantities:
        _seats(client, sub, quantity, "always_invoice")


def _seat_subscription(
    client: stripe.StripeClient, product: str, unit_amount: int = 1000, interval: str = "month"
) -> tuple[Any, Any]:
    """(clock, subscription of one seat) on a clock at Jan 15; its first invoice is made."""
    seat = client.v1.prices.create(
        params={
            "product": product,
            "currency": "usd",
            "unit_amount": unit_amount,
            "recurring": {"interval": interval},  # type: ignore[typeddict-item]
        }
    )
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    return clock, sub


def _refused(call: Any, limit: str) -> None:
    """``call`` is refused with 429 ``rate_limit``; on the emulator the message names ``limit``
    (Stripe's own wording is not documented)."""
    with pytest.raises(stripe.RateLimitError) as refused:
        call()
    assert refused.value.http_status == 429
    assert refused.value.error is not None
    assert refused.value.error.code == "rate_limit"
    if not LIVE_KEY:
        assert limit in str(refused.value.user_message)


def _state(client: stripe.StripeClient, sub: str) -> tuple[Any, ...]:
    kept = client.v1.subscriptions.retrieve(sub)
    item = kept["items"].data[0]
    return (kept.latest_invoice, kept.status, item.quantity, _invoice_count(client, sub))


def test_the_11th_invoice_within_a_minute_is_refused_and_changes_nothing(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _seat_subscription(client, product.id)
    _invoice_seats(client, sub, range(2, 11))  # the first invoice and 9 more: 10
    before = _state(client, sub.id)
    assert before[3] == 10
    _refused(lambda: _seats(client, sub, 11, "always_invoice"), MINUTE)
    assert _state(client, sub.id) == before
    advance(client, clock.id, JAN_15 + 61)
    _seats(client, sub, 11, "always_invoice")
    assert _invoice_count(client, sub.id) == 11


def test_the_21st_invoice_within_a_day_is_refused(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _seat_subscription(client, product.id)
    _invoice_seats(client, sub, range(2, 11))
    advance(client, clock.id, JAN_15 + 61)
    _invoice_seats(client, sub, range(11, 21))  # 20 in the day, 10 in this minute
    advance(client, clock.id, JAN_15 + 122)
    before = _state(client, sub.id)
    _refused(lambda: _seats(client, sub, 21, "always_invoice"), DAY_LIMIT)
    assert _state(client, sub.id) == before
    advance(client, clock.id, JAN_15 + DAY + 61)
    _seats(client, sub, 21, "always_invoice")
    assert _invoice_count(client, sub.id) == 21


def test_the_201st_quantity_update_within_an_hour_is_refused(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _seat_subscription(client, product.id)
    for quantity in range(2, 202):  # 200 updates
        _seats(client, sub, quantity, "none")
    before = _state(client, sub.id)
    assert before[2] == 201
    _refused(lambda: _seats(client, sub, 202, "none"), HOUR_LIMIT)
    assert _state(client, sub.id) == before
    # A change that leaves the quantities alone is not a quantity update.
    client.v1.subscriptions.update(sub.id, params={"metadata": {"kept": "yes"}})
    advance(client, clock.id, JAN_15 + 3601)
    assert _seats(client, sub, 202, "none").quantity == 202


def test_a_refused_schedule_write_leaves_the_schedule_and_subscription_as_they_were(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _seat_subscription(client, product.id)
    seat = sub["items"].data[0].price.id
    free = licensed_price(client, product.id, 0)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    advance(client, clock.id, JAN_15 + 600)
    _invoice_seats(client, sub, range(2, 12))  # 10 in this minute
    before = _state(client, sub.id)
    phases_before = client.v1.subscription_schedules.retrieve(schedule.id).phases
    _refused(
        lambda: client.v1.subscription_schedules.update(
            schedule.id,
            params={
                "phases": [
                    {"start_date": JAN_15, "end_date": "now", "items": [{"price": seat}]},
                    {"items": [{"price": free.id}]},
                ]
            },
        ),
        MINUTE,
    )
    assert _state(client, sub.id) == before
    after = client.v1.subscription_schedules.retrieve(schedule.id).phases
    assert [(p.start_date, p.end_date) for p in after] == [
        (p.start_date, p.end_date) for p in phases_before
    ]


def test_a_clock_advance_past_20_renewals_is_never_refused(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    # $1,000.00 a day, so a change two minutes before the renewal still prorates cents.
    clock, sub = _seat_subscription(client, product.id, 100_000, "day")
    advance(client, clock.id, JAN_15 + DAY - 120)
    _invoice_seats(client, sub, range(2, 11))  # with the first invoice: 10 today
    advance(client, clock.id, JAN_15 + DAY - 59)
    _invoice_seats(client, sub, range(11, 21))  # 20 today, the last 10 in this minute
    # Both limits are reached; the first one (a minute) is named.
    _refused(lambda: _seats(client, sub, 21, "always_invoice"), MINUTE)
    # The renewal a minute later would be the 11th in a minute and the 21st in a day.
    for day in range(1, 24, 2):
        advance(client, clock.id, JAN_15 + (day + 1) * DAY + 7200)
    invoices = client.v1.invoices.list(params={"subscription": sub.id, "limit": 100}).data
    renewals = [invoice for invoice in invoices if invoice.billing_reason == "subscription_cycle"]
    assert len(renewals) == 24
    assert min(int(invoice.created) for invoice in renewals) == JAN_15 + DAY


def test_reset_clears_the_counts(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Seats"})
    _, sub = _seat_subscription(client, product.id)
    _invoice_seats(client, sub, range(2, 11))
    _refused(lambda: _seats(client, sub, 11, "always_invoice"), MINUTE)
    with emu.store.lock:
        assert [record["id"] for record in emu.store.values(COUNTS)] == [sub.id]
    emu.reset()
    with emu.store.lock:
        assert emu.store.values(COUNTS) == []


def test_a_refusal_is_undone_in_the_database_too(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with Emulator(port=0, db_path=db) as first:
        client = make_client(first.url)
        product = client.v1.products.create(params={"name": "Seats"})
        _, sub = _seat_subscription(client, product.id)
        _invoice_seats(client, sub, range(2, 11))
        before = _state(client, sub.id)
        _refused(lambda: _seats(client, sub, 11, "always_invoice"), MINUTE)
    with Emulator(port=0, db_path=db) as second:
        assert _state(make_client(second.url), sub.id) == before


def test_a_refused_request_is_not_replayed_for_its_idempotency_key(emu: Emulator) -> None:
    """The emulator's choice (Stripe does not document whether it replays this 429): no
    result is saved, so the same key succeeds once the window has passed."""
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Seats"})
    clock, sub = _seat_subscription(client, product.id)
    _invoice_seats(client, sub, range(2, 11))
    options: Any = {"idempotency_key": f"seats-11-{sub.id}"}
    params: Any = {"quantity": 11, "proration_behavior": "always_invoice"}
    item = sub["items"].data[0].id
    _refused(
        lambda: client.v1.subscription_items.update(item, params=params, options=options), MINUTE
    )
    advance(client, clock.id, JAN_15 + 61)
    again = client.v1.subscription_items.update(item, params=params, options=options)
    assert again.quantity == 11
