"""Trials: ``trial_period_days`` / ``trial_end`` on create, the $0 invoice, the end on the clock.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``): subscriptions there are ``send_invoice`` (no payment
method needed) and the clock goes two hours past the trial's end, beyond the
hour a renewal invoice stays a draft. Tests taking ``emu`` check what the
emulator refuses as not emulated (Stripe accepts those requests).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import stripe
from lifecycle_helpers import DAY, JAN_15, clocked_customer, licensed_price, meter, meter_price

from reconciler.emulator import Emulator

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")
HOUR = 3600


def _advance(client: stripe.StripeClient, clock: str, to: int) -> None:
    client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    deadline = time.monotonic() + 120
    while client.v1.test_helpers.test_clocks.retrieve(clock).status != "ready":
        assert time.monotonic() < deadline, "the test clock did not get ready"
        time.sleep(2)


def _trial(client: stripe.StripeClient, price: str, customer: str, **trial: Any) -> Any:
    return client.v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"price": price}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
            **trial,
        }
    )


def test_a_trial_bills_nothing_then_the_first_period_at_its_end(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    clock, customer = clocked_customer(client)
    sub = _trial(client, price.id, customer.id, trial_period_days=7)
    trial_end = JAN_15 + 7 * DAY
    assert sub.status == "trialing"
    assert (sub.trial_start, sub.trial_end) == (JAN_15, trial_end)
    assert sub.billing_cycle_anchor == trial_end
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (JAN_15, trial_end)

    first = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert first.billing_reason == "subscription_create"
    assert first.amount_due == 0
    assert [line.amount for line in first.lines.data] == [0]
    assert str(first.lines.data[0].description).startswith("Trial period for")

    _advance(client, clock.id, trial_end + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert after.trial_end == trial_end
    item = after["items"].data[0]
    assert item.current_period_start == trial_end
    assert item.current_period_end == trial_end + 31 * DAY  # Jan 22 -> Feb 22
    paid = client.v1.invoices.retrieve(str(after.latest_invoice))
    assert paid.id != first.id
    assert paid.billing_reason == "subscription_cycle"
    assert paid.amount_due == 1000
    assert paid.lines.data[0].period.start == trial_end

    deadline = time.monotonic() + (30 if LIVE_KEY else 0)
    while True:
        events = client.v1.events.list(
            params={"type": "customer.subscription.updated", "limit": 100}
        ).data
        ended = [
            event
            for event in events
            if event.data.object["id"] == sub.id
            and event.data.to_dict().get("previous_attributes", {}).get("status") == "trialing"
        ]
        if ended or time.monotonic() >= deadline:
            break
        time.sleep(1)
    assert ended, "no customer.subscription.updated event shows the trial ending"
    assert ended[0].data.object["status"] == "active"


def test_trial_end_sets_the_trial(client: stripe.StripeClient, product: stripe.Product) -> None:
    price = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    sub = _trial(client, price.id, customer.id, trial_end=JAN_15 + 3 * DAY)
    assert sub.status == "trialing"
    assert sub.trial_end == JAN_15 + 3 * DAY
    now = _trial(client, licensed_price(client, product.id, 700).id, customer.id, trial_end="now")
    assert now.status == "active"
    assert now.trial_end is None


def test_a_trial_end_in_the_past_is_refused(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _trial(client, price.id, customer.id, trial_end=JAN_15 - DAY)
    assert caught.value.http_status == 400
    assert caught.value.param == "trial_end"


def test_what_trials_do_not_emulate_is_refused(
    emu: Emulator, client: stripe.StripeClient, uid: str
) -> None:
    product = client.v1.products.create(params={"name": "P"})
    seat = licensed_price(client, product.id, 1000)
    usage = meter_price(client, product.id, meter(client, f"trial_{uid}").id, unit_amount=3)
    _, customer = clocked_customer(client)
    with pytest.raises(stripe.InvalidRequestError) as metered:
        _trial(client, usage.id, customer.id, trial_period_days=7)
    assert "not emulated" in str(metered.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as anchored:
        _trial(client, seat.id, customer.id, trial_period_days=7, billing_cycle_anchor=JAN_15 + DAY)
    assert anchored.value.param == "billing_cycle_anchor"
    assert "not emulated" in str(anchored.value.user_message)
    sub = _trial(client, seat.id, customer.id, trial_period_days=7)
    with pytest.raises(stripe.InvalidRequestError) as changed:
        client.v1.subscriptions.update(sub.id, params={"trial_end": JAN_15 + 9 * DAY})
    assert changed.value.param == "trial_end"
    assert "not emulated" in str(changed.value.user_message)
