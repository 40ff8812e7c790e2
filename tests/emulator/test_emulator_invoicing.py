"""Test clock advances: renewals, schedule phases, end behaviours and invoices, by hand."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from lifecycle_helpers import (
    APR_15,
    DAY,
    FEB_15,
    JAN_15,
    LEGACY,
    MAR_15,
    advance,
    clocked_customer,
    legacy_price,
    licensed_price,
    meter,
    meter_price,
)

HOUR = 3600


def _invoices(client: stripe.StripeClient, sub: str, version: str | None = None) -> list[Any]:
    """The subscription's invoices, oldest first."""
    options: dict[str, Any] = {"stripe_version": version} if version else {}
    found = client.v1.invoices.list(params={"subscription": sub}, options=options)  # type: ignore[arg-type]
    return list(reversed(found.data))


def _lines(invoice: Any) -> list[tuple[str, int, int, int, int]]:
    """``(price, quantity, amount, period start, period end)`` per line (current version)."""
    return [
        (
            line.pricing.price_details.price,
            line.quantity,
            line.amount,
            line.period.start,
            line.period.end,
        )
        for line in invoice.lines.data
    ]


def _send(client: stripe.StripeClient, event: str, customer: str, value: int, when: int) -> None:
    client.v1.billing.meter_events.create(
        params={
            "event_name": event,
            "timestamp": when,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
        }
    )


def test_full_migration_on_a_test_clock(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    legacy = legacy_price(client, product.id, unit_amount_decimal="0.35")
    seat = licensed_price(client, product.id, 4900)
    seconds = meter(client, "video_seconds")
    metered = meter_price(client, product.id, seconds.id, unit_amount_decimal="0.25")
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    clock, customer = clocked_customer(client)
    other = client.v1.customers.create(params={"name": "Neighbour", "test_clock": clock.id})
    response = client.raw_request(
        "post",
        "/v1/subscriptions",
        stripe_version=LEGACY,
        customer=customer.id,
        items=[{"price": legacy["id"]}, {"price": seat.id, "quantity": 2}],
        default_tax_rates=[rate.id],
        discounts=[{"coupon": coupon.id}],
    )
    sub = client.deserialize(response, api_mode="V1")
    legacy_item, seat_item = (item["id"] for item in sub["items"]["data"])
    discount = sub["discounts"][0]

    # Creation: the seats in advance for Jan 15 - Feb 15; the legacy item bills in arrears.
    # 2 x 4900 = 9800; -10% = 980; tax 20% of 8820 = 1764; total 9800 - 980 + 1764 = 10584.
    (created,) = _invoices(client, sub["id"])
    assert created.billing_reason == "subscription_create"
    assert (created.period_start, created.period_end) == (JAN_15, JAN_15)
    assert _lines(created) == [(seat.id, 2, 9800, JAN_15, FEB_15)]
    assert (created.subtotal, created.total, created.amount_due) == (9800, 10584, 10584)
    assert created.total_discount_amounts[0].amount == 980
    assert created.total_taxes[0].amount == 1764
    assert created.status == "paid"
    assert client.v1.subscriptions.retrieve(sub["id"]).latest_invoice == created.id

    # Usage records during period 1: 1001 + 2000, then 500 set at a third timestamp: 3501.
    advance(client, clock.id, JAN_15 + 10 * DAY)
    for quantity, day, action in ((1001, 1, "increment"), (2000, 2, "increment"), (500, 3, "set")):
        client.raw_request(
            "post",
            f"/v1/subscription_items/{legacy_item}/usage_records",
            stripe_version=LEGACY,
            quantity=quantity,
            timestamp=JAN_15 + day * DAY,
            action=action,
        )
    # Meter events before the switch are not billed: no item is on the meter in period 1.
    _send(client, "video_seconds", customer.id, 777, JAN_15 + 5 * DAY)

    # Schedule from the subscription, then the migration phases (pinned to acacia: the
    # legacy price is named in phase 0).
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub["id"]})
    keep: dict[str, Any] = {"default_tax_rates": [rate.id], "discounts": [{"discount": discount}]}
    client.raw_request(
        "post",
        f"/v1/subscription_schedules/{schedule.id}",
        stripe_version=LEGACY,
        phases=[
            {
                "start_date": JAN_15,
                "end_date": FEB_15,
                "items": [{"price": legacy["id"]}, {"price": seat.id, "quantity": 2}],
                **keep,
            },
            {"items": [{"price": metered.id}, {"price": seat.id, "quantity": 2}], **keep},
        ],
    )

    # Through the switch. Invoice for period 1, from the usage records:
    # legacy 3501 x 0.35 = 1225.35 -> 1225 (Jan 15 - Feb 15, arrears);
    # seats 2 x 4900 = 9800 (Feb 15 - Mar 15, advance); subtotal 11025;
    # discount 10% = 1102.5 -> 1103, spread: legacy 1103 x 1225 / 11025 = 122.56 -> 123,
    # seats 980; tax 20%: (1225 - 123) = 1102 -> 220.4 -> 220, (9800 - 980) = 8820 -> 1764;
    # total 11025 - 1103 + 220 + 1764 = 11906.
    advance(client, clock.id, FEB_15 + DAY)
    first_cycle = _invoices(client, sub["id"])[1]
    assert first_cycle.billing_reason == "subscription_cycle"
    assert (first_cycle.period_start, first_cycle.period_end) == (JAN_15, FEB_15)
    assert _lines(first_cycle) == [
        (legacy["id"], 3501, 1225, JAN_15, FEB_15),
        (seat.id, 2, 9800, FEB_15, MAR_15),
    ]
    assert [line.discount_amounts[0].amount for line in first_cycle.lines.data] == [123, 980]
    assert (first_cycle.subtotal, first_cycle.total, first_cycle.amount_due) == (
        11025,
        11906,
        11906,
    )
    assert first_cycle.total_discount_amounts[0].amount == 1103
    assert first_cycle.total_taxes[0].amount == 220 + 1764
    migrated = client.v1.subscriptions.retrieve(sub["id"])
    assert [(i.id == seat_item, i.price.id) for i in migrated["items"].data] == [
        (False, metered.id),
        (True, seat.id),
    ]
    assert legacy_item not in {i.id for i in migrated["items"].data}
    assert [r.id for r in migrated.default_tax_rates] == [rate.id]
    assert migrated.discounts == [discount]
    assert migrated["items"].data[0].current_period_end == MAR_15
    assert client.v1.subscription_schedules.retrieve(schedule.id).current_phase.end_date == MAR_15

    # Meter events in period 2: 4000 + 1999 + 1 = 6000 for the customer; another customer's
    # 50 000 and the customer's period-1 event stay out.
    _send(client, "video_seconds", customer.id, 4000, FEB_15 + HOUR)
    _send(client, "video_seconds", customer.id, 1999, FEB_15 + 20 * HOUR)
    _send(client, "video_seconds", other.id, 50000, FEB_15 + 2 * HOUR)
    advance(client, clock.id, FEB_15 + 10 * DAY)
    _send(client, "video_seconds", customer.id, 1, FEB_15 + 9 * DAY)

    # Past period 2. Invoice from the meter: 6000 x 0.25 = 1500 (Feb 15 - Mar 15);
    # seats 9800 (Mar 15 - Apr 15); subtotal 11300; discount 1130, spread 150 + 980;
    # tax (1500 - 150) x 20% = 270, 8820 x 20% = 1764; total 11300 - 1130 + 2034 = 12204.
    advance(client, clock.id, MAR_15 + DAY)
    second_cycle = _invoices(client, sub["id"])[2]
    assert (second_cycle.period_start, second_cycle.period_end) == (FEB_15, MAR_15)
    assert _lines(second_cycle) == [
        (metered.id, 6000, 1500, FEB_15, MAR_15),
        (seat.id, 2, 9800, MAR_15, APR_15),
    ]
    assert (second_cycle.subtotal, second_cycle.total, second_cycle.amount_due) == (
        11300,
        12204,
        12204,
    )
    assert second_cycle.total_taxes[0].amount == 270 + 1764

    # The last phase ended: end_behavior release, the subscription runs on its items.
    released = client.v1.subscription_schedules.retrieve(schedule.id)
    assert (released.status, released.released_at) == ("released", MAR_15)
    assert released.released_subscription == sub["id"]
    after = client.v1.subscriptions.retrieve(sub["id"])
    assert (after.status, after.schedule) == ("active", None)
    assert [i.price.id for i in after["items"].data] == [metered.id, seat.id]

    # Older versions see the pre-basil invoice shape.
    old = _invoices(client, sub["id"], LEGACY)[1]
    assert old["subscription"] == sub["id"]
    assert old["tax"] == 220 + 1764
    assert old["lines"]["data"][0]["price"]["id"] == legacy["id"]
    assert old["lines"]["data"][0]["subscription_item"] == legacy_item
    new = client.v1.invoices.retrieve(first_cycle.id)
    assert "subscription" not in new and "tax" not in new
    assert new.parent.subscription_details.subscription == sub["id"]
    lines = client.v1.invoices.line_items.list(first_cycle.id, params={"limit": 1})
    assert [line.amount for line in lines.data] == [1225] and lines.has_more
    # The neighbour on the same clock has no subscription, hence no invoice.
    assert client.v1.invoices.list(params={"customer": other.id}).data == []


def test_tiered_volume_and_transformed_prices_by_hand(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    graduated_meter = meter(client, "g")
    volume_meter = meter(
        client,
        "v",
        "last",
        customer_mapping={"type": "by_id", "event_payload_key": "account"},
        value_settings={"event_payload_key": "seconds"},
    )
    up_meter = meter(client, "u")
    down_meter = meter(client, "d")
    graduated = meter_price(
        client,
        product.id,
        graduated_meter.id,
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[
            {"up_to": 1000, "unit_amount_decimal": "0.5", "flat_amount": 100},
            {"up_to": "inf", "unit_amount_decimal": "0.125", "flat_amount_decimal": "50.5"},
        ],
    )
    volume = meter_price(
        client,
        product.id,
        volume_meter.id,
        billing_scheme="tiered",
        tiers_mode="volume",
        tiers=[
            {"up_to": 100, "unit_amount": 2},
            {"up_to": 1000, "unit_amount_decimal": "1.555", "flat_amount": 25},
            {"up_to": "inf", "unit_amount_decimal": "1.2"},
        ],
    )
    rounded_up = meter_price(
        client,
        product.id,
        up_meter.id,
        unit_amount=300,
        transform_quantity={"divide_by": 1000, "round": "up"},
    )
    rounded_down = meter_price(
        client,
        product.id,
        down_meter.id,
        unit_amount_decimal="12.5",
        transform_quantity={"divide_by": 1000, "round": "down"},
    )
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [
                {"price": graduated.id},
                {"price": volume.id},
                {"price": rounded_up.id},
                {"price": rounded_down.id},
            ],
        }
    )
    (created,) = _invoices(client, sub.id)
    assert (created.lines.data, created.total) == ([], 0)
    advance(client, clock.id, JAN_15 + 20 * DAY)
    _send(client, "g", customer.id, 1000, JAN_15 + DAY)
    _send(client, "g", customer.id, 503, JAN_15 + 2 * DAY)
    for value, day in ((900, 1), (250, 3), (40, 2)):  # "last" by timestamp: 250
        client.v1.billing.meter_events.create(
            params={
                "event_name": "v",
                "timestamp": JAN_15 + day * DAY,
                "payload": {"account": customer.id, "seconds": str(value)},
            }
        )
    _send(client, "u", customer.id, 2001, JAN_15 + DAY)
    _send(client, "d", customer.id, 2999, JAN_15 + DAY)
    advance(client, clock.id, FEB_15)
    invoice = _invoices(client, sub.id)[1]
    # graduated 1503: 100 + 1000 x 0.5 = 600, then 50.5 + 503 x 0.125 = 113.375 -> 713.375 -> 713
    # volume "last" 250 (tier 2): 25 + 250 x 1.555 = 413.75 -> 414
    # up: ceil(2001 / 1000) = 3 x 300 = 900; down: floor(2999 / 1000) = 2 x 12.5 = 25
    assert _lines(invoice) == [
        (graduated.id, 1503, 713, JAN_15, FEB_15),
        (volume.id, 250, 414, JAN_15, FEB_15),
        (rounded_up.id, 2001, 900, JAN_15, FEB_15),
        (rounded_down.id, 2999, 25, JAN_15, FEB_15),
    ]
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (2052, 2052, 2052)


def test_end_behavior_cancel_completes_the_schedule(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    small = licensed_price(client, product.id, 1000)
    big = licensed_price(client, product.id, 3000)
    clock, customer = clocked_customer(client)
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "end_behavior": "cancel",
            "phases": [
                {"items": [{"price": small.id}], "duration": {"interval": "month"}},
                {"items": [{"price": big.id, "quantity": 2}]},
            ],
        }
    )
    sub_id = schedule.subscription
    advance(client, clock.id, FEB_15)
    mid = client.v1.subscriptions.retrieve(sub_id)
    assert [(i.price.id, i.quantity) for i in mid["items"].data] == [(big.id, 2)]
    advance(client, clock.id, MAR_15 + DAY)
    done = client.v1.subscription_schedules.retrieve(schedule.id)
    assert (done.status, done.completed_at) == ("completed", MAR_15)
    ended = client.v1.subscriptions.retrieve(sub_id)
    assert (ended.status, ended.canceled_at) == ("canceled", MAR_15)
    # create 1000 (Jan 15 - Feb 15), cycle 2 x 3000 (Feb 15 - Mar 15); nothing after the end.
    assert [(i.billing_reason, i.total) for i in _invoices(client, sub_id)] == [
        ("subscription_create", 1000),
        ("subscription_cycle", 6000),
    ]


def test_a_future_schedule_starts_when_the_clock_gets_there(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1200)
    clock, customer = clocked_customer(client)
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "start_date": JAN_15 + 5 * DAY,
            "phases": [{"items": [{"price": seat.id}]}],
        }
    )
    advance(client, clock.id, JAN_15 + 6 * DAY)
    started = client.v1.subscription_schedules.retrieve(schedule.id)
    assert started.status == "active"
    sub = client.v1.subscriptions.retrieve(started.subscription)
    assert sub.start_date == JAN_15 + 5 * DAY
    assert [i.total for i in _invoices(client, sub.id)] == [1200]


def test_clock_advance_is_capped_at_two_intervals(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 100)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    with pytest.raises(stripe.InvalidRequestError) as too_far:
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": MAR_15 + 1})
    assert (too_far.value.http_status, too_far.value.param) == (400, "frozen_time")
    moved = advance(client, clock.id, MAR_15)
    assert moved.status in ("advancing", "ready")
    invoices = _invoices(client, sub.id)
    assert [(i.period_start, i.period_end, i.total) for i in invoices] == [
        (JAN_15, JAN_15, 100),
        (JAN_15, FEB_15, 100),
        (FEB_15, MAR_15, 100),
    ]
    item = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (MAR_15, APR_15)


def test_cancel_at_period_end_and_legacy_summaries_after_invoicing(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    legacy = legacy_price(client, product.id, unit_amount=2)
    clock, customer = clocked_customer(client)
    response = client.raw_request(
        "post",
        "/v1/subscriptions",
        stripe_version=LEGACY,
        customer=customer.id,
        items=[{"price": legacy["id"]}],
    )
    sub = client.deserialize(response, api_mode="V1")
    item = sub["items"]["data"][0]["id"]
    advance(client, clock.id, JAN_15 + DAY)
    client.raw_request(
        "post",
        f"/v1/subscription_items/{item}/usage_records",
        stripe_version=LEGACY,
        quantity=40,
        timestamp=JAN_15 + HOUR,
    )
    advance(client, clock.id, FEB_15 + DAY)
    client.raw_request(
        "post",
        f"/v1/subscription_items/{item}/usage_records",
        stripe_version=LEGACY,
        quantity=7,
        timestamp=FEB_15 + HOUR,
    )
    summaries = client.deserialize(
        client.raw_request(
            "get", f"/v1/subscription_items/{item}/usage_record_summaries", stripe_version=LEGACY
        ),
        api_mode="V1",
    )
    billed = _invoices(client, sub["id"])[1]
    assert [(s["total_usage"], s["period"]["start"], s["invoice"]) for s in summaries["data"]] == [
        (7, FEB_15, None),
        (40, JAN_15, billed.id),
    ]
    assert billed.total == 80  # 40 x 2
    client.v1.subscriptions.update(sub["id"], params={"cancel_at_period_end": True})
    advance(client, clock.id, MAR_15)
    ended = client.v1.subscriptions.retrieve(sub["id"])
    assert (ended.status, ended.ended_at) == ("canceled", MAR_15)
    final = _invoices(client, sub["id"])[-1]
    assert _lines(final) == [(legacy["id"], 7, 14, FEB_15, MAR_15)]
