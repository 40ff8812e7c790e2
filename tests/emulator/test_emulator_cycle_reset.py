"""A move between free and paid inside a period resets the billing cycle at once.

Stripe ("Update a subscription"): when "the subscription moves from free to paid,
or paid to free [...] we apply a credit for the unused time on the previous
price, immediately charge the customer using the new price, and reset the
billing date"; a schedule phase entered inside a period does the same. A change
between two paid prices prorates and keeps the billing date; a phase entered at
a period end switches with the renewal.

Every amount below is worked by hand. The clock starts on 2025-01-15 (a 31-day
January period) and the change comes 10 days and an hour in: 21 days less an
hour, 503 of 744 hours, are left.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``); those taking ``emu`` check what the emulator refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import (
    DAY,
    FEB_15,
    JAN_15,
    MAR_15,
    advance,
    clocked_customer,
    licensed_price,
    meter,
    meter_price,
)

from reconciler.emulator import Emulator

HOUR = 3600
#: 2025-01-25 01:00 UTC: 10 days and an hour into the Jan 15 -> Feb 15 period.
SWITCH = JAN_15 + 10 * DAY + HOUR
#: A month after SWITCH: 2025-02-25 01:00 UTC (January has 31 days).
NEXT = SWITCH + 31 * DAY
#: $30.00 for the 503 of 744 hours left at SWITCH: 3000 x 503 / 744 = 2028.23 -> 2028.
UNUSED_30 = 2028


def _invoices(client: stripe.StripeClient, sub: str) -> list[Any]:
    """The subscription's invoices, oldest first."""
    return list(reversed(client.v1.invoices.list(params={"subscription": sub}).data))


def _period(sub: Any) -> tuple[int, int]:
    item = sub["items"].data[0]
    return int(item.current_period_start), int(item.current_period_end)


def _metered_setup(client: stripe.StripeClient, product: str, uid: str) -> tuple[Any, Any, Any]:
    """A clock at SWITCH on a subscription of one metered item (5 cents a call) started on
    Jan 15, with 100 calls on Jan 16 and 40 an hour before SWITCH: (clock, sub, customer)."""
    calls = meter(client, f"calls_{uid}")
    per_call = meter_price(client, product, calls.id, unit_amount=5)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": per_call.id}]}
    )
    advance(client, clock.id, SWITCH)
    for value, when in ((100, JAN_15 + DAY), (40, SWITCH - HOUR)):
        client.v1.billing.meter_events.create(
            params={
                "event_name": f"calls_{uid}",
                "timestamp": when,
                "payload": {"stripe_customer_id": customer.id, "value": str(value)},
            }
        )
    return clock, sub, customer


def _seat_on_a_schedule(
    client: stripe.StripeClient, product: str, uid: str
) -> tuple[Any, Any, Any, Any, Any, Any]:
    """A $30.00 seat subscribed on Jan 15 on a clock, a schedule made from it, and a
    per-call price (5 cents) on a new meter to move it to:
    (clock, customer, sub, schedule, seat, per_call)."""
    calls = meter(client, f"calls_{uid}")
    per_call = meter_price(client, product, calls.id, unit_amount=5)
    seat = licensed_price(client, product, 3000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    return clock, customer, sub, schedule, seat, per_call


def _to_paid(client: stripe.StripeClient, sub: Any, price: str, **params: Any) -> Any:
    """Replace the metered item with one seat of ``price``."""
    return client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "deleted": True}, {"price": price}],
            **params,
        },
    )


def test_metered_only_to_licensed_mid_period_invoices_at_once_and_resets_the_anchor(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    clock, sub, _ = _metered_setup(client, product.id, uid)
    seat = licensed_price(client, product.id, 2000)
    updated = _to_paid(client, sub, seat.id)
    assert updated.billing_cycle_anchor == SWITCH
    assert _period(updated) == (SWITCH, NEXT)
    create, reset = _invoices(client, sub.id)
    assert create.billing_reason == "subscription_create"
    assert reset.billing_reason == "subscription_update"
    assert reset.id == updated.latest_invoice
    assert (reset.period_start, reset.period_end) == (JAN_15, SWITCH)
    # 140 calls x 5 cents = 700 for Jan 15 -> SWITCH; then the seat for the new month.
    assert [(line.amount, line.period.start, line.period.end) for line in reset.lines.data] == [
        (700, JAN_15, SWITCH),
        (2000, SWITCH, NEXT),
    ]
    assert reset.total == 2700
    assert reset.status == "paid"
    advance(client, clock.id, NEXT + 2 * HOUR)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert _period(renewed) == (NEXT, NEXT + 28 * DAY)
    renewal = _invoices(client, sub.id)[-1]
    assert renewal.billing_reason == "subscription_cycle"
    assert [line.amount for line in renewal.lines.data] == [2000]


def test_licensed_to_metered_only_through_a_phase_entered_now_credits_the_unused_time(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    clock, _customer, sub, schedule, seat, per_call = _seat_on_a_schedule(client, product.id, uid)
    advance(client, clock.id, SWITCH)
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {"start_date": JAN_15, "end_date": "now", "items": [{"price": seat.id}]},
                {"items": [{"price": per_call.id}]},
            ]
        },
    )
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.billing_cycle_anchor == SWITCH
    assert _period(after) == (SWITCH, NEXT)
    reset = _invoices(client, sub.id)[-1]
    assert reset.billing_reason == "subscription_update"
    assert [line.amount for line in reset.lines.data] == [-UNUSED_30]
    assert reset.lines.data[0].parent.subscription_item_details.proration is True
    assert reset.total == -UNUSED_30


def test_licensed_to_metered_only_through_a_phase_starting_mid_period_on_the_clock(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    clock, customer, sub, schedule, seat, per_call = _seat_on_a_schedule(client, product.id, uid)
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {"start_date": JAN_15, "end_date": SWITCH, "items": [{"price": seat.id}]},
                {"items": [{"price": per_call.id}], "proration_behavior": "none"},
            ]
        },
    )
    advance(client, clock.id, SWITCH + HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.billing_cycle_anchor == SWITCH
    assert _period(after) == (SWITCH, NEXT)
    reset = _invoices(client, sub.id)[-1]
    # proration_behavior none: no credit; no metered item before, no licensed one after.
    assert reset.billing_reason == "subscription_update"
    assert (reset.period_start, reset.period_end, reset.total) == (JAN_15, SWITCH, 0)
    assert reset.lines.data == []
    client.v1.billing.meter_events.create(
        params={
            "event_name": f"calls_{uid}",
            "timestamp": SWITCH + HOUR // 2,
            "payload": {"stripe_customer_id": customer.id, "value": "30"},
        }
    )
    advance(client, clock.id, NEXT + 2 * HOUR)
    renewal = _invoices(client, sub.id)[-1]
    # 30 calls x 5 cents, billed in arrears for SWITCH -> NEXT.
    assert renewal.billing_reason == "subscription_cycle"
    assert [(line.amount, line.period.start) for line in renewal.lines.data] == [(150, SWITCH)]


def test_a_switch_at_the_period_end_rides_on_the_renewal(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    clock, _customer, sub, schedule, seat, per_call = _seat_on_a_schedule(client, product.id, uid)
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {"start_date": JAN_15, "end_date": FEB_15, "items": [{"price": seat.id}]},
                {"items": [{"price": per_call.id}]},
            ]
        },
    )
    advance(client, clock.id, FEB_15 + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.billing_cycle_anchor == JAN_15
    assert _period(after) == (FEB_15, MAR_15)
    reasons = [invoice.billing_reason for invoice in _invoices(client, sub.id)]
    assert reasons == ["subscription_create", "subscription_cycle"]


def test_a_licensed_to_licensed_change_prorates_without_a_reset(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 3000)
    pro = licensed_price(client, product.id, 6000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    advance(client, clock.id, SWITCH)
    updated = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": pro.id}]}
    )
    assert updated.billing_cycle_anchor == JAN_15
    assert _period(updated) == (JAN_15, FEB_15)
    assert [i.billing_reason for i in _invoices(client, sub.id)] == ["subscription_create"]


def test_a_zero_priced_seat_to_a_paid_one_is_a_move_to_paid(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    free = licensed_price(client, product.id, 0)
    seat = licensed_price(client, product.id, 2000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": free.id}]}
    )
    advance(client, clock.id, SWITCH)
    item = client.v1.subscription_items.update(sub["items"].data[0].id, params={"price": seat.id})
    assert item.current_period_start == SWITCH
    reset = _invoices(client, sub.id)[-1]
    # The $0 seat leaves no credit: only the new month at $20.
    assert [line.amount for line in reset.lines.data] == [2000]
    assert client.v1.subscriptions.retrieve(sub.id).billing_cycle_anchor == SWITCH


def test_a_paid_to_free_quantity_change_credits_the_unused_seats(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id, "quantity": 3}]}
    )
    advance(client, clock.id, SWITCH)
    client.v1.subscription_items.update(sub["items"].data[0].id, params={"quantity": 0})
    reset = _invoices(client, sub.id)[-1]
    # Three $10 seats, 503 of 744 hours unused: 3000 x 503 / 744 = 2028.23 -> 2028;
    # then 0 seats for the new month.
    assert [line.amount for line in reset.lines.data] == [-UNUSED_30, 0]
    assert client.v1.subscriptions.retrieve(sub.id).billing_cycle_anchor == SWITCH


def _per_call_on_a_failing_card(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> tuple[stripe.Subscription, stripe.Price]:
    """A per-call subscription whose card fails, at the switch time, and a $20 seat."""
    calls = meter(client, f"calls_{uid}")
    per_call = meter_price(client, product.id, calls.id, unit_amount=5)
    seat = licensed_price(client, product.id, 2000)
    clock, customer = clocked_customer(client, payment_method="pm_card_chargeCustomerFail")
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": per_call.id}]}
    )
    advance(client, clock.id, SWITCH)
    return sub, seat


def test_a_failed_payment_of_the_reset_invoice_makes_the_subscription_past_due(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    sub, seat = _per_call_on_a_failing_card(client, product, uid)
    updated = _to_paid(client, sub, seat.id)
    assert updated.status == "past_due"
    reset = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert (reset.status, reset.amount_due) == ("open", 2000)


def test_error_if_incomplete_refuses_the_switch_and_keeps_the_subscription(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    sub, seat = _per_call_on_a_failing_card(client, product, uid)
    with pytest.raises(stripe.CardError):
        _to_paid(client, sub, seat.id, payment_behavior="error_if_incomplete")
    kept = client.v1.subscriptions.retrieve(sub.id)
    assert kept.status == "active"
    assert kept.billing_cycle_anchor == JAN_15
    assert [item.price.id for item in kept["items"].data] == [sub["items"].data[0].price.id]
    assert len(_invoices(client, sub.id)) == 1


def test_pause_collection_keeps_the_reset_invoice_as_a_draft(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    _, sub, _ = _metered_setup(client, product.id, uid)
    seat = licensed_price(client, product.id, 2000)
    client.v1.subscriptions.update(
        sub.id, params={"pause_collection": {"behavior": "keep_as_draft"}}
    )
    updated = _to_paid(client, sub, seat.id)
    reset = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert (reset.billing_reason, reset.status, reset.total) == (
        "subscription_update",
        "draft",
        2700,
    )


def test_a_change_during_a_trial_does_not_reset(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 2000)
    free = licensed_price(client, product.id, 0)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}], "trial_period_days": 14}
    )
    advance(client, clock.id, JAN_15 + 3 * DAY)
    updated = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": free.id}]}
    )
    assert updated.status == "trialing"
    assert updated.billing_cycle_anchor == JAN_15 + 14 * DAY
    assert len(_invoices(client, sub.id)) == 1


def test_the_preview_of_a_move_to_paid_is_the_reset_invoice(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    _, sub, _ = _metered_setup(client, product.id, uid)
    seat = licensed_price(client, product.id, 2000)
    preview = client.v1.invoices.create_preview(
        params={
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": sub["items"].data[0].id, "deleted": True}, {"price": seat.id}]
            },
        }
    )
    assert [(line.amount, line.period.start) for line in preview.lines.data] == [
        (700, JAN_15),
        (2000, SWITCH),
    ]
    assert preview.total == 2700
    assert len(_invoices(client, sub.id)) == 1, "a preview issues nothing"


def test_a_credit_on_a_discounted_subscription_is_refused_as_not_emulated(
    emu: Emulator,
) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Seats"})
    seat = licensed_price(client, product.id, 3000)
    free = licensed_price(client, product.id, 0)
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    advance(client, clock.id, SWITCH)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": sub["items"].data[0].id, "price": free.id}]}
        )
    assert "not emulated" in str(refused.value)
    assert refused.value.param == "proration_behavior"
    kept = client.v1.subscriptions.retrieve(sub.id)
    assert [item.price.id for item in kept["items"].data] == [seat.id]
    assert kept.billing_cycle_anchor == JAN_15


def test_a_move_to_paid_on_another_interval_starts_the_new_cycle_at_once(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    _, sub, _ = _metered_setup(client, product.id, uid)
    yearly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 12000,
            "recurring": {"interval": "year"},
        }
    )
    updated = _to_paid(client, sub, yearly.id)
    # 2025-01-25 01:00 -> 2026-01-25 01:00: 365 days.
    assert _period(updated) == (SWITCH, SWITCH + 365 * DAY)
    reset = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert [line.amount for line in reset.lines.data] == [700, 12000]
