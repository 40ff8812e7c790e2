"""Subscriptions and subscription items, tax rates and coupons, through the real SDK."""

from __future__ import annotations

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import (
    BASIL,
    DAY,
    FEB_15,
    JAN_15,
    LEGACY,
    clocked_customer,
    legacy_price,
    legacy_subscription,
    licensed_price,
    meter,
    meter_price,
)

from reconciler.emulator.resources.billing import next_boundary, shift

JAN_31 = 1_738_281_600


def test_calendar_periods_clamp_to_the_month() -> None:
    # Jan 31 anchor: Feb 28, Mar 31, Apr 30 (never drifting to the 28th).
    assert shift(JAN_31, "month", 1) == JAN_31 + 28 * DAY
    assert shift(JAN_31, "month", 2) == JAN_31 + (28 + 31) * DAY
    assert next_boundary(JAN_31, "month", 1, JAN_31 + 28 * DAY) == JAN_31 + (28 + 31) * DAY
    assert next_boundary(JAN_31, "month", 1, JAN_31 + 60 * DAY) == JAN_31 + (28 + 31 + 30) * DAY
    assert shift(JAN_15, "year", 1) == JAN_15 + 365 * DAY
    assert next_boundary(JAN_15, "week", 2, JAN_15) == JAN_15 + 14 * DAY
    assert next_boundary(JAN_15, "day", 3, JAN_15 + 4 * DAY) == JAN_15 + 6 * DAY


def test_create_retrieve_and_item_shapes(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    m = meter(client, "frames")
    metered = meter_price(client, product.id, m.id, unit_amount=2)
    seat = licensed_price(client, product.id, 1500)
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": metered.id}, {"price": seat.id, "quantity": 3}],
            "default_tax_rates": [rate.id],
            "discounts": [{"coupon": coupon.id}],
            "metadata": {"team": "video"},
        }
    )
    assert sub.id.startswith("sub_")
    assert (sub.status, sub.customer, sub.test_clock) == ("active", customer.id, clock.id)
    assert (sub.start_date, sub.billing_cycle_anchor) == (JAN_15, JAN_15)
    assert sub.schedule is None
    assert sub.metadata.to_dict() == {"team": "video"}
    assert [r.id for r in sub.default_tax_rates] == [rate.id]
    assert len(sub.discounts) == 1 and sub.discounts[0].startswith("di_")
    assert "current_period_end" not in sub  # basil moved periods onto items
    first, second = sub["items"].data
    assert first.id.startswith("si_") and first.price.id == metered.id
    assert first.price.object == "price"  # embedded, not an id
    assert "quantity" not in first
    assert second.quantity == 3
    assert (first.current_period_start, first.current_period_end) == (JAN_15, FEB_15)
    fetched = client.v1.subscriptions.retrieve(sub.id)
    assert fetched["items"].data[1].price.unit_amount == 1500
    old = client.v1.subscriptions.retrieve(sub.id, options={"stripe_version": LEGACY})
    assert (old.current_period_start, old.current_period_end) == (JAN_15, FEB_15)
    listed = client.v1.subscription_items.list(params={"subscription": sub.id})
    assert [i.id for i in listed.data] == [first.id, second.id]
    item = client.v1.subscription_items.retrieve(second.id)
    assert (item.subscription, item.quantity) == (sub.id, 3)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.subscription_items.retrieve("si_missing")
    assert missing.value.http_status == 404


def test_quantity_on_a_metered_item_is_refused(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    m = meter(client, "refused")
    metered = meter_price(client, product.id, m.id, unit_amount=1)
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": metered.id, "quantity": 2}]}
        )
    assert (caught.value.http_status, caught.value.param) == (400, "items[0][quantity]")
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": metered.id}]}
    )
    item = sub["items"].data[0]
    with pytest.raises(stripe.InvalidRequestError) as on_update:
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "quantity": 5}]})
    assert on_update.value.param == "items[0][quantity]"


def test_legacy_price_refused_on_basil_allowed_on_acacia(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    legacy = legacy_price(client, product.id)
    seat = licensed_price(client, product.id)
    _, customer = clocked_customer(client)
    for version in (BASIL, None):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.subscriptions.create(
                params={"customer": customer.id, "items": [{"price": legacy.id}]},
                options={"stripe_version": version} if version else {},
            )
        assert (caught.value.http_status, caught.value.param) == (400, "items[0][price]")
    sub = legacy_subscription(client, customer.id, [{"price": legacy.id}])
    assert sub["items"]["data"][0]["price"]["recurring"]["aggregate_usage"] == "sum"
    other = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    with pytest.raises(stripe.InvalidRequestError) as added:
        client.v1.subscriptions.update(other.id, params={"items": [{"price": legacy.id}]})
    assert added.value.param == "items[0][price]"
    response = client.raw_request(
        "post", f"/v1/subscriptions/{other.id}", stripe_version=LEGACY, items=[{"price": legacy.id}]
    )
    both = client.deserialize(response, api_mode="V1")
    assert [i["price"]["id"] for i in both["items"]["data"]] == [seat.id, legacy.id]


def test_update_items_add_replace_delete(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1000)
    support = licensed_price(client, product.id, 500)
    premium = licensed_price(client, product.id, 2500)
    yearly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "year"},
        }
    )
    _, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id, "quantity": 2}]}
    )
    seat_item = sub["items"].data[0]
    added = client.v1.subscriptions.update(
        sub.id, params={"items": [{"price": support.id}], "metadata": {"a": "1"}}
    )
    assert [(i.price.id, i.quantity) for i in added["items"].data] == [
        (seat.id, 2),
        (support.id, 1),
    ]
    support_item = added["items"].data[1]
    replaced = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [
                {"id": seat_item.id, "price": premium.id, "quantity": 4},
                {"id": support_item.id, "deleted": True},
            ]
        },
    )
    assert [(i.id, i.price.id, i.quantity) for i in replaced["items"].data] == [
        (seat_item.id, premium.id, 4)
    ]
    assert replaced.metadata.to_dict() == {"a": "1"}
    with pytest.raises(stripe.InvalidRequestError) as mismatch:
        client.v1.subscriptions.update(sub.id, params={"items": [{"price": yearly.id}]})
    assert mismatch.value.param == "items"
    with pytest.raises(stripe.InvalidRequestError) as empty:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": seat_item.id, "deleted": True}]}
        )
    assert empty.value.param == "items"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": "si_nope"}]})
    assert (unknown.value.code, unknown.value.param) == ("resource_missing", "items[0][id]")


def test_cancel_and_status_filters(client: stripe.StripeClient, product: stripe.Product) -> None:
    seat = licensed_price(client, product.id)
    _, customer = clocked_customer(client)
    kept = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    gone = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    canceled = client.v1.subscriptions.cancel(gone.id)
    assert (canceled.status, canceled.canceled_at, canceled.ended_at) == (
        "canceled",
        JAN_15,
        JAN_15,
    )
    assert canceled.cancellation_details.reason == "cancellation_requested"
    default = client.v1.subscriptions.list(params={"customer": customer.id})
    assert [s.id for s in default.data] == [kept.id]
    everything = client.v1.subscriptions.list(params={"customer": customer.id, "status": "all"})
    assert [s.id for s in everything.data] == [gone.id, kept.id]
    only = client.v1.subscriptions.list(params={"customer": customer.id, "status": "canceled"})
    assert [s.id for s in only.data] == [gone.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(gone.id)
    with pytest.raises(stripe.InvalidRequestError) as frozen:
        client.v1.subscriptions.update(gone.id, params={"items": [{"price": seat.id}]})
    assert frozen.value.param == "items"


def test_tax_rates_and_coupons(client: stripe.StripeClient) -> None:
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 19.5, "inclusive": False, "country": "DE"}
    )
    assert rate.id.startswith("txr_")
    assert (rate.percentage, rate.inclusive, rate.active) == (19.5, False, True)
    assert client.v1.tax_rates.retrieve(rate.id).display_name == "VAT"
    assert rate.id in {r.id for r in client.v1.tax_rates.list().data}
    coupon = client.v1.coupons.create(
        params={"id": "LAUNCH", "amount_off": 500, "currency": "usd", "duration": "once"}
    )
    assert (coupon.id, coupon.amount_off, coupon.percent_off) == ("LAUNCH", 500, None)
    assert client.v1.coupons.retrieve("LAUNCH").duration == "once"
    with pytest.raises(stripe.InvalidRequestError) as both:
        client.v1.coupons.create(params={"percent_off": 5, "amount_off": 5, "currency": "usd"})
    assert both.value.param == "percent_off"
    with pytest.raises(stripe.InvalidRequestError) as repeating:
        client.v1.coupons.create(params={"percent_off": 5, "duration": "repeating"})
    assert repeating.value.param == "duration_in_months"


def test_billing_cycle_anchor_and_weekly_periods(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    weekly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 700,
            "recurring": {"interval": "week", "interval_count": 2},
        }
    )
    _, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": weekly.id}]}
    )
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (JAN_15, JAN_15 + 14 * DAY)
    anchored = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": weekly.id}],
            "billing_cycle_anchor": JAN_15 + 3 * DAY,
        }
    )
    assert anchored["items"].data[0].current_period_end == JAN_15 + 3 * DAY


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"billing_cycle_anchor": {"type": "now"}}, "billing_cycle_anchor"),
        ({"billing_thresholds": {"amount_gte": 10000}}, "billing_thresholds"),
        ({"automatic_tax": {"enabled": True}}, "automatic_tax"),
        ({"invoice_settings": {"issuer": {"type": "self"}}}, "invoice_settings"),
        ({"pending_invoice_item_interval": {"interval": "week"}}, "pending_invoice_item_interval"),
    ],
)
def test_an_update_the_emulator_cannot_carry_out_is_refused_not_ignored(
    emu: object, params: dict[str, object], param: str
) -> None:
    """Emulator only: real Stripe carries these out."""
    client = make_client(emu.url)  # type: ignore[attr-defined]
    product = client.v1.products.create(params={"name": "Seats"})
    seat = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscriptions.update(sub.id, params=params)  # type: ignore[arg-type]
    assert refused.value.param == param
    assert "not emulated" in str(refused.value)
    unchanged = client.v1.subscriptions.update(
        sub.id, params={"billing_cycle_anchor": {"type": "unchanged"}, "metadata": {"k": "v"}}
    )
    assert unchanged.billing_cycle_anchor == sub.billing_cycle_anchor
