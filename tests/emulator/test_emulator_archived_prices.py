"""Archived prices (``active=false``) on subscriptions and schedule phases.

Stripe refuses an archived price wherever it would be newly attached, with
"The price specified is inactive. This field only accepts active prices." and
the field as ``param``; what is already attached stays. The tests take
``client``, so a contract run (``STRIPE_TEST_API_KEY``) checks the same
expectations against Stripe test mode, including the cases no Stripe document
states (an item or phase keeping a price archived since it was attached).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import stripe
from lifecycle_helpers import DAY, FEB_15, clocked_customer, licensed_price

from reconciler.emulator.resources.billing import INACTIVE_PRICE

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")


def _archived(client: stripe.StripeClient, product: str, amount: int) -> Any:
    price = licensed_price(client, product, amount)
    return client.v1.prices.update(price.id, params={"active": False})


def _subscription(client: stripe.StripeClient, price: str) -> tuple[Any, Any]:
    """A clock and an active monthly subscription on ``price`` (invoices sent, not charged)."""
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    return clock, sub


def _refused(caught: pytest.ExceptionInfo[stripe.InvalidRequestError], param: str) -> None:
    error = caught.value
    assert error.http_status == 400
    assert error.param == param
    if LIVE_KEY:
        assert "inactive" in str(error.user_message)
    else:
        assert error.user_message == INACTIVE_PRICE
        assert error.code is None


def test_a_new_subscription_cannot_use_an_archived_price(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    archived = _archived(client, product.id, 1900)
    assert archived.active is False
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": archived.id}]}
        )
    _refused(caught, "items[0][price]")


def test_an_update_cannot_add_or_switch_to_an_archived_price(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    active = licensed_price(client, product.id, 4900)
    archived = _archived(client, product.id, 1900)
    _, sub = _subscription(client, active.id)
    item = sub["items"].data[0].id
    with pytest.raises(stripe.InvalidRequestError) as switched:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": item, "price": archived.id}]}
        )
    _refused(switched, "items[0][price]")
    with pytest.raises(stripe.InvalidRequestError) as added:
        client.v1.subscriptions.update(sub.id, params={"items": [{"price": archived.id}]})
    _refused(added, "items[0][price]")
    unchanged = client.v1.subscriptions.retrieve(sub.id)
    assert [i.price.id for i in unchanged["items"].data] == [active.id]


def test_an_item_keeps_its_price_through_updates_after_the_price_is_archived(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 4900)
    _, sub = _subscription(client, price.id)
    client.v1.prices.update(price.id, params={"active": False})
    item = sub["items"].data[0].id
    updated = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item, "quantity": 3}], "metadata": {"seats": "3"}}
    )
    (kept,) = updated["items"].data
    assert (kept.id, kept.price.id, kept.price.active, kept.quantity) == (
        item,
        price.id,
        False,
        3,
    )
    same = client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item, "price": price.id, "quantity": 4}]}
    )
    assert same["items"].data[0].quantity == 4


def test_a_phase_may_keep_the_archived_price_but_not_add_one(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    legacy = licensed_price(client, product.id, 4900)
    successor = licensed_price(client, product.id, 5900)
    other = _archived(client, product.id, 1900)
    _, sub = _subscription(client, legacy.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    client.v1.prices.update(legacy.id, params={"active": False})
    phase = schedule.phases[0]
    first = {
        "items": [{"price": legacy.id, "quantity": 1}],
        "start_date": phase.start_date,
        "end_date": phase.end_date,
    }
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscription_schedules.update(
            schedule.id,
            params={"phases": [first, {"items": [{"price": other.id, "quantity": 1}]}]},
        )
    _refused(caught, "phases[1][items][0][price]")
    moved = client.v1.subscription_schedules.update(
        schedule.id,
        params={"phases": [first, {"items": [{"price": successor.id, "quantity": 1}]}]},
    )
    assert [p.items[0].price for p in moved.phases] == [legacy.id, successor.id]


def test_a_new_schedule_cannot_start_on_an_archived_price(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    archived = _archived(client, product.id, 1900)
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscription_schedules.create(
            params={
                "customer": customer.id,
                "start_date": "now",
                "phases": [{"items": [{"price": archived.id, "quantity": 1}]}],
            }
        )
    _refused(caught, "phases[0][items][0][price]")


def test_a_phase_accepted_before_its_price_was_archived_is_still_entered(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    current = licensed_price(client, product.id, 4900)
    successor = licensed_price(client, product.id, 5900)
    clock, sub = _subscription(client, current.id)
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    phase = schedule.phases[0]
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "items": [{"price": current.id, "quantity": 1}],
                    "start_date": phase.start_date,
                    "end_date": phase.end_date,
                },
                {"items": [{"price": successor.id, "quantity": 1}]},
            ]
        },
    )
    client.v1.prices.update(successor.id, params={"active": False})
    assert phase.end_date == FEB_15
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": FEB_15 + DAY})
    deadline = time.monotonic() + 120
    while client.v1.test_helpers.test_clocks.retrieve(clock.id).status != "ready":
        assert time.monotonic() < deadline, "the test clock did not get ready"
        time.sleep(2)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert [i.price.id for i in after["items"].data] == [successor.id]
