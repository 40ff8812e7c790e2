"""Invoice previews (``POST /v1/invoices/create_preview``) on test clocks.

The preview of a subscription's next invoice must be the invoice the clock
produces when it crosses the period end (licensed, metered with usage, tiered,
with a coupon and a tax rate; after a subscription change with prorations;
after a schedule's phase switch), and a preview must leave nothing behind: no
invoice, no event, no clock moved. The tests taking ``client`` also run against
Stripe test mode (contract run); those taking ``emu`` check the emulator's own
refusals.
"""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import (
    BASIL,
    DAY,
    FEB_15,
    JAN_15,
    LEGACY,
    MAR_15,
    advance,
    clocked_customer,
    legacy_price,
    legacy_subscription,
    licensed_price,
    meter,
    meter_price,
)

from reconciler.emulator import Emulator

HOUR = 3600


def _send(client: stripe.StripeClient, event: str, customer: str, value: int, when: int) -> None:
    client.v1.billing.meter_events.create(
        params={
            "event_name": event,
            "timestamp": when,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
        }
    )


def _money(invoice: Any) -> dict[str, Any]:
    """What a preview must share with the invoice it previews: every amount, per line too."""
    return {
        "lines": [
            (
                line.pricing.price_details.price,
                line.quantity,
                line.amount,
                line.period.start,
                line.period.end,
                bool(line.parent.subscription_item_details.proration),
                [d.amount for d in line.discount_amounts],
                [t.amount for t in line.taxes],
            )
            for line in invoice.lines.data
        ],
        "subtotal": invoice.subtotal,
        "total": invoice.total,
        "amount_due": invoice.amount_due,
        "total_excluding_tax": invoice.total_excluding_tax,
        "discounts": [d.amount for d in invoice.total_discount_amounts],
        "taxes": [t.amount for t in invoice.total_taxes],
        "period": (invoice.period_start, invoice.period_end),
        "currency": invoice.currency,
        "customer": invoice.customer,
    }


def _state(client: stripe.StripeClient, clock: str) -> tuple[Any, ...]:
    """What a preview must not change: the invoices, the event log, the clock."""
    invoices = [(i.id, i.status, i.total) for i in client.v1.invoices.list(params={"limit": 100})]
    events = [e.id for e in client.v1.events.list(params={"limit": 100})]
    frozen = client.v1.test_helpers.test_clocks.retrieve(clock).frozen_time
    return invoices, events, frozen


def _renewal(client: stripe.StripeClient, sub: str) -> Any:
    return client.v1.invoices.retrieve(str(client.v1.subscriptions.retrieve(sub).latest_invoice))


def test_preview_of_the_next_invoice_is_the_renewal(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 4900)
    seconds = meter(client, "preview_seconds")
    metered = meter_price(client, product.id, seconds.id, unit_amount_decimal="0.25")
    gb = meter(client, "preview_gb")
    tiered = meter_price(
        client,
        product.id,
        gb.id,
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[
            {"up_to": 100, "unit_amount_decimal": "1.5", "flat_amount": 200},
            {"up_to": "inf", "unit_amount_decimal": "0.75"},
        ],
    )
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = client.v1.coupons.create(params={"percent_off": 15, "duration": "forever"})
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [
                {"price": seat.id, "quantity": 2},
                {"price": metered.id},
                {"price": tiered.id},
            ],
            "default_tax_rates": [rate.id],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    advance(client, clock.id, JAN_15 + 10 * DAY)
    _send(client, "preview_seconds", customer.id, 4001, JAN_15 + DAY)
    _send(client, "preview_seconds", customer.id, 999, JAN_15 + 9 * DAY)
    _send(client, "preview_gb", customer.id, 130, JAN_15 + 2 * DAY)

    before = _state(client, clock.id)
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert _state(client, clock.id) == before, "a preview stores, emits or moves nothing"

    assert str(preview.id).startswith("upcoming_in_")
    assert (preview.status, preview.billing_reason) == ("draft", "upcoming")
    assert all(str(line.id).startswith("il_tmp_") for line in preview.lines.data)
    # Usage so far (5000 x 0.25 = 1250; 130 GB: 200 + 150 + 30 x 0.75 = 372.5 -> 373) in
    # arrears for Jan 15 - Feb 15, the seats (2 x 4900) in advance for Feb 15 - Mar 15.
    money = _money(preview)
    assert [line[:5] for line in money["lines"]] == [
        (metered.id, 5000, 1250, JAN_15, FEB_15),
        (tiered.id, 130, 373, JAN_15, FEB_15),
        (seat.id, 2, 9800, FEB_15, MAR_15),
    ]
    assert money["subtotal"] == 1250 + 373 + 9800
    assert money["discounts"] and money["taxes"]

    advance(client, clock.id, FEB_15 + 2 * HOUR)
    renewal = _renewal(client, sub.id)
    assert renewal.billing_reason == "subscription_cycle"
    assert _money(renewal) == money


def test_preview_of_a_price_change_with_prorations_is_the_next_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 3000)
    pro = licensed_price(client, product.id, 7000)
    rate = client.v1.tax_rates.create(
        params={"display_name": "GST", "percentage": 10, "inclusive": False}
    )
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "default_tax_rates": [rate.id],
        }
    )
    change = JAN_15 + 10 * DAY + HOUR
    advance(client, clock.id, change)
    item = sub["items"].data[0].id
    details: dict[str, Any] = {
        "items": [{"id": item, "price": pro.id, "quantity": 2}],
        "proration_behavior": "create_prorations",
        "proration_date": change,
    }
    before = _state(client, clock.id)
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": details}
    )
    assert _state(client, clock.id) == before
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == seat.id
    lines = preview.lines.data
    prorations = [x for x in lines if x.parent.subscription_item_details.proration]
    assert len(prorations) == 2 and prorations[0].amount < 0 < prorations[1].amount
    assert preview.parent.subscription_details.subscription_proration_date == change

    client.v1.subscriptions.update(sub.id, params=details)  # type: ignore[arg-type]
    advance(client, clock.id, FEB_15 + 2 * HOUR)
    assert _money(_renewal(client, sub.id)) == _money(preview)


def test_preview_of_always_invoice_is_the_invoice_issued_at_once(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 3000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    change = JAN_15 + 5 * DAY
    advance(client, clock.id, change)
    details: dict[str, Any] = {
        "items": [{"id": sub["items"].data[0].id, "quantity": 3}],
        "proration_behavior": "always_invoice",
        "proration_date": change,
    }
    preview = client.v1.invoices.create_preview(
        params={"subscription": sub.id, "subscription_details": details}
    )
    updated = client.v1.subscriptions.update(sub.id, params=details)  # type: ignore[arg-type]
    issued = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert issued.billing_reason == "subscription_update"
    assert _money(issued) == _money(preview)


def test_schedule_details_preview_shows_the_new_price_and_is_the_renewal(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    small = licensed_price(client, product.id, 1000)
    big = licensed_price(client, product.id, 2500)
    seconds = meter(client, "sched_seconds")
    metered = meter_price(client, product.id, seconds.id, unit_amount_decimal="0.5")
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 19, "inclusive": False}
    )
    coupon = client.v1.coupons.create(
        params={"amount_off": 300, "currency": "usd", "duration": "forever"}
    )
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": small.id, "quantity": 3}, {"price": metered.id}],
            "default_tax_rates": [rate.id],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    discount = sub.discounts[0]
    advance(client, clock.id, JAN_15 + 3 * DAY)
    _send(client, "sched_seconds", customer.id, 321, JAN_15 + DAY)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    keep: dict[str, Any] = {"default_tax_rates": [rate.id], "discounts": [{"discount": discount}]}
    phases: list[dict[str, Any]] = [
        {
            "start_date": JAN_15,
            "end_date": FEB_15,
            "items": [{"price": small.id, "quantity": 3}, {"price": metered.id}],
            "proration_behavior": "none",
            **keep,
        },
        {
            "items": [{"price": big.id, "quantity": 3}, {"price": metered.id}],
            "proration_behavior": "none",
            **keep,
        },
    ]
    before = _state(client, clock.id)
    preview = client.v1.invoices.create_preview(
        params={"schedule": schedule.id, "schedule_details": {"phases": phases}}  # type: ignore[typeddict-item]
    )
    assert _state(client, clock.id) == before
    assert len(client.v1.subscription_schedules.retrieve(schedule.id).phases) == 1
    # The switch at Feb 15: usage of phase 0 in arrears (321 x 0.5 = 160.5 -> 161), then
    # the new price in advance (3 x 2500).
    assert [line[:5] for line in _money(preview)["lines"]] == [
        (metered.id, 321, 161, JAN_15, FEB_15),
        (big.id, 3, 7500, FEB_15, MAR_15),
    ]
    # Without schedule_details, the schedule as it stands: the old price.
    unchanged = client.v1.invoices.create_preview(params={"schedule": schedule.id})
    assert [line.amount for line in unchanged.lines.data] == [161, 3000]

    client.v1.subscription_schedules.update(schedule.id, params={"phases": phases})  # type: ignore[typeddict-item]
    advance(client, clock.id, FEB_15 + 2 * HOUR)
    assert _money(_renewal(client, sub.id)) == _money(preview)


def test_preview_of_a_new_subscription_is_its_first_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1234)
    rate = client.v1.tax_rates.create(
        params={"display_name": "Sales tax", "percentage": 8.25, "inclusive": False}
    )
    clock, customer = clocked_customer(client)
    details: dict[str, Any] = {
        "items": [{"price": seat.id, "quantity": 3}],
        "default_tax_rates": [rate.id],
    }
    before = _state(client, clock.id)
    preview = client.v1.invoices.create_preview(
        params={"customer": customer.id, "subscription_details": details}
    )
    assert _state(client, clock.id) == before
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    sub = client.v1.subscriptions.create(params={"customer": customer.id, **details})
    first = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert _money(first) == _money(preview)
    assert preview.total == 3702 + 305  # 3 x 1234, tax 8.25 % of 3702 = 305.4 -> 305


def test_refusals(client: stripe.StripeClient, product: stripe.Product) -> None:
    seat = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as nothing:
        client.v1.invoices.create_preview(params={"customer": customer.id})
    assert "You must provide at least one of" in str(nothing.value.user_message)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as both:
        client.v1.invoices.create_preview(params={"subscription": sub.id, "schedule": schedule.id})
    assert both.value.http_status == 400
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.invoices.create_preview(
            params={
                "subscription": sub.id,
                "subscription_details": {
                    "items": [{"id": sub["items"].data[0].id, "price": "price_missing"}]
                },
            }
        )
    assert unknown.value.code == "resource_missing"
    assert unknown.value.param == "subscription_details[items][0][price]"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.create_preview(params={"subscription": "sub_missing"})
    client.v1.subscriptions.cancel(sub.id)
    with pytest.raises(stripe.InvalidRequestError) as ended:
        client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert ended.value.code == "invoice_upcoming_none"


def test_what_is_not_emulated_is_refused(emu: Emulator, product: stripe.Product) -> None:
    client = make_client(emu.url)
    seat = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    refused: list[dict[str, Any]] = [
        {"invoice_items": [{"price": seat.id}]},
        {"subscription_details": {"cancel_now": True}},
        {"subscription_details": {"billing_cycle_anchor": {"type": "now"}}},
        {"automatic_tax": {"enabled": True}},
        {"preview_mode": "recurring"},
    ]
    for extra in refused:
        with pytest.raises(stripe.InvalidRequestError) as refusal:
            client.v1.invoices.create_preview(params={"subscription": sub.id, **extra})  # type: ignore[typeddict-item]
        assert "not emulated" in str(refusal.value.user_message), extra


def test_legacy_prices_preview_on_acacia_only_and_upcoming_before_basil(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    legacy = legacy_price(client, product.id, unit_amount=3)
    clock, customer = clocked_customer(client)
    sub = legacy_subscription(client, customer.id, [{"price": legacy["id"]}])
    item = sub["items"]["data"][0]["id"]
    advance(client, clock.id, JAN_15 + 2 * DAY)
    client.raw_request(
        "post",
        f"/v1/subscription_items/{item}/usage_records",
        stripe_version=LEGACY,
        quantity=70,
        timestamp=JAN_15 + DAY,
    )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.create_preview(params={"subscription": sub["id"]})
    preview = client.deserialize(
        client.raw_request(
            "post", "/v1/invoices/create_preview", stripe_version=LEGACY, subscription=sub["id"]
        ),
        api_mode="V1",
    )
    assert [(line["quantity"], line["amount"]) for line in preview["lines"]["data"]] == [(70, 210)]
    upcoming = client.deserialize(
        client.raw_request(
            "get", "/v1/invoices/upcoming", stripe_version=LEGACY, subscription=sub["id"]
        ),
        api_mode="V1",
    )
    assert "id" not in upcoming or upcoming["id"] is None
    assert upcoming["total"] == preview["total"] == 210
    lines = client.deserialize(
        client.raw_request(
            "get", "/v1/invoices/upcoming/lines", stripe_version=LEGACY, customer=customer.id
        ),
        api_mode="V1",
    )
    assert [line["amount"] for line in lines["data"]] == [210]
    with pytest.raises(stripe.InvalidRequestError) as removed:
        client.raw_request(
            "get", "/v1/invoices/upcoming", stripe_version=BASIL, subscription=sub["id"]
        )
    assert removed.value.http_status == 404
    advance(client, clock.id, FEB_15 + 2 * HOUR)
    assert _renewal(client, sub["id"]).total == 210


def test_a_customer_without_a_test_clock_previews_on_the_emulator_clock(
    emu: Emulator, product: stripe.Product
) -> None:
    client = make_client(emu.url)
    emu.clock.freeze(JAN_15)
    seat = licensed_price(client, product.id, 2000)
    customer = client.v1.customers.create(
        params={
            "name": "No clock",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id, "quantity": 2}]}
    )
    emu.clock.freeze(JAN_15 + 7 * DAY)
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert [line[:5] for line in _money(preview)["lines"]] == [(seat.id, 2, 4000, FEB_15, MAR_15)]
    assert preview.test_clock is None
    assert emu.clock.now() == JAN_15 + 7 * DAY


def test_a_schedule_that_has_not_started_previews_its_first_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1500)
    clock, customer = clocked_customer(client)
    schedule = client.v1.subscription_schedules.create(
        params={
            "customer": customer.id,
            "start_date": JAN_15 + 5 * DAY,
            "phases": [{"items": [{"price": seat.id, "quantity": 2}]}],
        }
    )
    preview = client.v1.invoices.create_preview(params={"schedule": schedule.id})
    assert [line[:5] for line in _money(preview)["lines"]] == [
        (seat.id, 2, 3000, JAN_15 + 5 * DAY, FEB_15 + 5 * DAY)
    ]
    assert client.v1.subscription_schedules.retrieve(schedule.id).status == "not_started"
    advance(client, clock.id, JAN_15 + 6 * DAY)
    started = client.v1.subscription_schedules.retrieve(schedule.id)
    first = _renewal(client, str(started.subscription))
    assert _money(first) == _money(preview)


def test_before_basil_a_customer_alone_previews_its_subscription(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 800)
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as none:
        client.raw_request(
            "post", "/v1/invoices/create_preview", stripe_version=LEGACY, customer=customer.id
        )
    assert none.value.code == "invoice_upcoming_none"
    client.v1.subscriptions.create(params={"customer": customer.id, "items": [{"price": seat.id}]})
    preview = client.deserialize(
        client.raw_request(
            "post", "/v1/invoices/create_preview", stripe_version=LEGACY, customer=customer.id
        ),
        api_mode="V1",
    )
    assert preview["total"] == 800
    assert preview["lines"]["data"][0]["period"]["start"] == FEB_15


def test_upcoming_takes_the_flat_parameters_before_basil(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    change = JAN_15 + 10 * DAY
    advance(client, clock.id, change)
    item = sub["items"].data[0].id
    upcoming = client.deserialize(
        client.raw_request(
            "get",
            "/v1/invoices/upcoming",
            stripe_version=LEGACY,
            subscription=sub.id,
            subscription_items=[{"id": item, "quantity": 4}],
            subscription_proration_date=change,
        ),
        api_mode="V1",
    )
    preview = client.deserialize(
        client.raw_request(
            "post",
            "/v1/invoices/create_preview",
            stripe_version=LEGACY,
            subscription=sub.id,
            subscription_details={
                "items": [{"id": item, "quantity": 4}],
                "proration_date": change,
            },
        ),
        api_mode="V1",
    )
    assert upcoming["subscription_proration_date"] == preview["subscription_proration_date"]
    assert upcoming["subscription_proration_date"] == change
    assert [line["amount"] for line in upcoming["lines"]["data"]] == [
        line["amount"] for line in preview["lines"]["data"]
    ]
    assert [line["proration"] for line in upcoming["lines"]["data"]] == [True, True, False]
    assert upcoming["total"] == preview["total"]


def test_prorations_are_not_discountable(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    """A coupon added after a change leaves its pending prorations alone: proration items
    are ``discountable=false`` (docs.stripe.com/billing/subscriptions/prorations)."""
    seat = licensed_price(client, product.id, 3000)
    pro = licensed_price(client, product.id, 6000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    change = JAN_15 + 10 * DAY
    advance(client, clock.id, change)
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": pro.id}],
            "proration_date": change,
        },
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    client.v1.subscriptions.update(sub.id, params={"discounts": [{"coupon": coupon.id}]})
    preview = client.v1.invoices.create_preview(params={"subscription": sub.id})
    advance(client, clock.id, FEB_15 + 2 * HOUR)
    renewal = _renewal(client, sub.id)
    assert _money(renewal) == _money(preview)
    credit, debit, cycle = renewal.lines.data
    assert (credit.discountable, debit.discountable, cycle.discountable) == (False, False, True)
    assert [len(line.discount_amounts) for line in (credit, debit)] == [0, 0]
    assert [d.amount for d in cycle.discount_amounts] == [600]
    assert renewal.total == credit.amount + debit.amount + 6000 - 600
