"""Subscription items on their own, tax rate and coupon updates, supported currencies.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``); tests taking ``emu`` check the emulator's own
refusals of what it does not emulate (Stripe accepts those requests).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import stripe
from lifecycle_helpers import clocked_customer, licensed_price, meter, meter_price

from reconciler.emulator import Emulator

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")


def _subscription(client: stripe.StripeClient, price: str) -> Any:
    _, customer = clocked_customer(client)
    return client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )


def _updates_of(client: stripe.StripeClient, sub_id: str, at_least: int) -> list[Any]:
    """``customer.subscription.updated`` events of ``sub_id`` (polled against Stripe)."""
    deadline = time.monotonic() + (30 if LIVE_KEY else 0)
    while True:
        page = client.v1.events.list(
            params={"type": "customer.subscription.updated", "limit": 100}
        ).data
        found = [e for e in page if e.data.object["id"] == sub_id]
        if len(found) >= at_least or time.monotonic() >= deadline:
            return found
        time.sleep(1)


# --- subscription items ------------------------------------------------------------------------


def test_items_create_update_retrieve_list_delete(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1000)
    support = licensed_price(client, product.id, 500)
    sub = _subscription(client, seat.id)
    before = len(_updates_of(client, sub.id, 0))

    item = client.v1.subscription_items.create(
        params={
            "subscription": sub.id,
            "price": support.id,
            "quantity": 2,
            "metadata": {"role": "support"},
            "proration_behavior": "none",
        }
    )
    assert item.object == "subscription_item"
    assert item.subscription == sub.id
    assert item.quantity == 2
    assert item.price.id == support.id
    assert item.plan.id == support.id
    assert item.metadata.to_dict() == {"role": "support"}

    updated = client.v1.subscription_items.update(
        item.id,
        params={"quantity": 5, "metadata": {"tier": "gold"}, "proration_behavior": "none"},
    )
    assert updated.quantity == 5
    assert updated.metadata.to_dict() == {"role": "support", "tier": "gold"}
    assert client.v1.subscription_items.retrieve(item.id).quantity == 5
    listed = client.v1.subscription_items.list(params={"subscription": sub.id}).data
    assert {i.id for i in listed} == {sub["items"].data[0].id, item.id}
    assert len(client.v1.subscriptions.retrieve(sub.id)["items"].data) == 2

    gone = client.v1.subscription_items.delete(item.id, params={"proration_behavior": "none"})
    assert gone.deleted is True
    assert gone.id == item.id
    remaining = client.v1.subscriptions.retrieve(sub.id)["items"].data
    assert [i.id for i in remaining] == [sub["items"].data[0].id]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.subscription_items.retrieve(item.id)
    assert missing.value.http_status == 404
    # Each of the three changes is a change of the subscription.
    assert len(_updates_of(client, sub.id, before + 3)) >= before + 3


def test_item_refusals(client: stripe.StripeClient, product: stripe.Product, uid: str) -> None:
    seat = licensed_price(client, product.id, 1000)
    sub = _subscription(client, seat.id)
    only = sub["items"].data[0].id

    with pytest.raises(stripe.InvalidRequestError) as last:
        client.v1.subscription_items.delete(only)
    assert last.value.http_status == 400

    with pytest.raises(stripe.InvalidRequestError) as twice:
        client.v1.subscription_items.create(params={"subscription": sub.id, "price": seat.id})
    assert twice.value.http_status == 400
    assert twice.value.param == "price"

    yearly = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 9000,
            "recurring": {"interval": "year"},
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as cycle:
        client.v1.subscription_items.create(params={"subscription": sub.id, "price": yearly.id})
    assert cycle.value.http_status == 400

    usage = meter_price(client, product.id, meter(client, f"item_{uid}").id, unit_amount=3)
    with pytest.raises(stripe.InvalidRequestError) as quantity:
        client.v1.subscription_items.create(
            params={"subscription": sub.id, "price": usage.id, "quantity": 2}
        )
    assert quantity.value.param == "quantity"

    with pytest.raises(stripe.InvalidRequestError) as no_sub:
        client.v1.subscription_items.create(
            params={"subscription": "sub_does_not_exist", "price": seat.id}
        )
    assert no_sub.value.code == "resource_missing"
    assert no_sub.value.param == "subscription"

    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.subscription_items.update(only, params={"currency": "eur"})  # type: ignore[typeddict-unknown-key]
    assert unknown.value.code == "parameter_unknown"


def test_a_metered_item_added_and_its_price_swapped(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    seat = licensed_price(client, product.id, 1000)
    sub = _subscription(client, seat.id)
    seconds = meter(client, f"swap_{uid}")
    first = meter_price(client, product.id, seconds.id, unit_amount=3)
    second = meter_price(client, product.id, seconds.id, unit_amount=2)
    item = client.v1.subscription_items.create(params={"subscription": sub.id, "price": first.id})
    assert item.to_dict().get("quantity") is None
    swapped = client.v1.subscription_items.update(
        item.id, params={"price": second.id, "proration_behavior": "none"}
    )
    assert swapped.price.id == second.id
    assert swapped.plan.usage_type == "metered"


def test_what_items_do_not_emulate_is_refused(emu: Emulator, client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "P"})
    seat = licensed_price(client, product.id, 1000)
    other = licensed_price(client, product.id, 700)
    sub = _subscription(client, seat.id)
    for params in (
        {"billing_thresholds": {"usage_gte": 10}},
        {"payment_behavior": "pending_if_incomplete"},
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.subscription_items.create(
                params={"subscription": sub.id, "price": other.id, **params}  # type: ignore[typeddict-item]
            )
        assert "not emulated" in str(caught.value.user_message)
        assert caught.value.param == next(iter(params))


def test_items_of_a_canceled_subscription_do_not_change(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 1000)
    other = licensed_price(client, product.id, 700)
    sub = _subscription(client, seat.id)
    client.v1.subscriptions.cancel(sub.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscription_items.create(params={"subscription": sub.id, "price": other.id})
    assert caught.value.http_status == 400


# --- tax rates and coupons ---------------------------------------------------------------------


def test_tax_rate_update(client: stripe.StripeClient) -> None:
    rate = client.v1.tax_rates.create(
        params={"display_name": "VAT", "percentage": 19, "inclusive": False, "country": "DE"}
    )
    updated = client.v1.tax_rates.update(
        rate.id,
        params={
            "display_name": "MwSt",
            "description": "Germany",
            "jurisdiction": "DE",
            "tax_type": "vat",
            "metadata": {"source": "test"},
            "active": False,
        },
    )
    assert updated.display_name == "MwSt"
    assert updated.description == "Germany"
    assert updated.jurisdiction == "DE"
    assert updated.tax_type == "vat"
    assert updated.active is False
    assert updated.metadata.to_dict() == {"source": "test"}
    assert updated.percentage == 19
    assert client.v1.tax_rates.retrieve(rate.id).display_name == "MwSt"
    with pytest.raises(stripe.InvalidRequestError) as fixed:
        client.v1.tax_rates.update(rate.id, params={"percentage": 20})  # type: ignore[typeddict-unknown-key]
    assert fixed.value.code == "parameter_unknown"
    assert fixed.value.param == "percentage"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.tax_rates.update("txr_does_not_exist", params={"description": "x"})
    assert missing.value.http_status == 404


def test_coupon_update(client: stripe.StripeClient, uid: str) -> None:
    coupon = client.v1.coupons.create(
        params={"amount_off": 500, "currency": "usd", "duration": "once", "name": "Five off"}
    )
    updated = client.v1.coupons.update(
        coupon.id,
        params={
            "name": "Five dollars off",
            "metadata": {"campaign": uid},
            "currency_options": {"eur": {"amount_off": 450}},
        },
    )
    assert updated.name == "Five dollars off"
    assert updated.metadata.to_dict() == {"campaign": uid}
    assert updated.amount_off == 500
    expanded = client.v1.coupons.retrieve(coupon.id, params={"expand": ["currency_options"]})
    assert expanded.currency_options["eur"].amount_off == 450  # type: ignore[index]
    with pytest.raises(stripe.InvalidRequestError) as fixed:
        client.v1.coupons.update(coupon.id, params={"amount_off": 600})  # type: ignore[typeddict-unknown-key]
    assert fixed.value.code == "parameter_unknown"
    assert fixed.value.param == "amount_off"
    client.v1.coupons.delete(coupon.id)


# --- currencies --------------------------------------------------------------------------------


def test_an_unsupported_currency_is_refused(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as price:
        client.v1.prices.create(params={"product": product.id, "currency": "xyz", "unit_amount": 5})
    assert price.value.http_status == 400
    assert price.value.param == "currency"
    assert str(price.value.user_message).startswith("Invalid currency: xyz.")
    with pytest.raises(stripe.InvalidRequestError) as coupon:
        client.v1.coupons.create(params={"amount_off": 5, "currency": "xyz", "duration": "once"})
    assert coupon.value.param == "currency"
    assert str(coupon.value.user_message).startswith("Invalid currency: xyz.")
    # Upper case is accepted and kept lower case, as Stripe does.
    eur = client.v1.prices.create(
        params={"product": product.id, "currency": "EUR", "unit_amount": 5}
    )
    assert eur.currency == "eur"
