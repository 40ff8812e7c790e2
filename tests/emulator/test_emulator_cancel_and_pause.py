"""Ending and pausing subscriptions on test clocks: ``cancel_at``, cancel now with
``invoice_now`` / ``prorate``, ``pause_collection``, and the trial's three-day warning.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``); those taking ``emu`` check what the emulator refuses.
"""

from __future__ import annotations

import os
import time
from decimal import ROUND_HALF_UP, Decimal
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

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")
HOUR = 3600


def _events(client: stripe.StripeClient, type_: str, object_id: str) -> list[Any]:
    deadline = time.monotonic() + (30 if LIVE_KEY else 0)
    while True:
        found = [
            event
            for event in client.v1.events.list(params={"type": type_, "limit": 100}).data
            if event.data.object["id"] == object_id
        ]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(1)


def _subscription(client: stripe.StripeClient, product: str, **extra: Any) -> tuple[Any, Any]:
    seat = licensed_price(client, product, 3000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}], **extra}
    )
    return clock, sub


# --- cancel_at ------------------------------------------------------------------------------
def test_cancel_at_a_later_period_end_renews_until_then(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _subscription(client, product.id)
    updated = client.v1.subscriptions.update(sub.id, params={"cancel_at": MAR_15})
    assert (updated.cancel_at, updated.cancel_at_period_end) == (MAR_15, False)
    advance(client, clock.id, FEB_15 + HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    advance(client, clock.id, MAR_15 + HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.canceled_at, ended.ended_at) == ("canceled", MAR_15, MAR_15)
    assert _events(client, "customer.subscription.deleted", sub.id)


def test_cancel_at_inside_a_period_without_prorations(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _subscription(client, product.id)
    moment = JAN_15 + 20 * DAY
    client.v1.subscriptions.update(
        sub.id, params={"cancel_at": moment, "proration_behavior": "none"}
    )
    advance(client, clock.id, moment - HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    advance(client, clock.id, moment + HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", moment)
    assert ended.cancel_at == moment


def test_cancel_at_can_be_cleared(client: stripe.StripeClient, product: stripe.Product) -> None:
    clock, sub = _subscription(client, product.id)
    client.v1.subscriptions.update(sub.id, params={"cancel_at": FEB_15})
    cleared = client.v1.subscriptions.update(sub.id, params={"cancel_at": ""})
    assert cleared.cancel_at is None
    advance(client, clock.id, FEB_15 + HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_prorated_cancel_at_inside_a_period_is_refused(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Refused"})
    _, sub = _subscription(client, product.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.subscriptions.update(sub.id, params={"cancel_at": JAN_15 + 20 * DAY})
    assert caught.value.param == "cancel_at"
    assert "not emulated" in str(caught.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as past:
        client.v1.subscriptions.update(sub.id, params={"cancel_at": JAN_15 - DAY})
    assert past.value.param == "cancel_at"


# --- cancel now ------------------------------------------------------------------------------
def test_cancel_with_invoice_now_and_prorate_bills_usage_and_credits_unused_time(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    usage = meter(client, f"cancel_{uid}")
    per_second = meter_price(client, product.id, usage.id, unit_amount=2)
    seat = licensed_price(client, product.id, 3000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}, {"price": per_second.id}]}
    )
    advance(client, clock.id, JAN_15 + DAY + HOUR)  # meter events may not be in the future
    client.v1.billing.meter_events.create(
        params={
            "event_name": usage.event_name,
            "payload": {"stripe_customer_id": customer.id, "value": "40"},
            "timestamp": JAN_15 + DAY,
        }
    )
    moment = JAN_15 + 10 * DAY
    advance(client, clock.id, moment)
    ended = client.v1.subscriptions.cancel(sub.id, params={"invoice_now": True, "prorate": True})
    assert ended.status == "canceled"
    final = client.v1.invoices.retrieve(str(ended.latest_invoice))
    assert final.id != sub.latest_invoice
    credit = int(
        (Decimal(3000) * (FEB_15 - moment) / (FEB_15 - JAN_15)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    )
    amounts = sorted(line.amount for line in final.lines.data)
    assert amounts == [-credit, 80]
    assert final.total == 80 - credit


def test_cancel_without_invoice_now_makes_no_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub = _subscription(client, product.id)
    ended = client.v1.subscriptions.cancel(sub.id)
    assert ended.status == "canceled"
    assert ended.latest_invoice == sub.latest_invoice
    assert ended.cancellation_details is not None
    assert ended.cancellation_details.reason == "cancellation_requested"


# --- pause_collection ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("behavior", "status"),
    [("keep_as_draft", "draft"), ("mark_uncollectible", "uncollectible"), ("void", "void")],
)
def test_paused_collection_holds_renewal_invoices(
    client: stripe.StripeClient, product: stripe.Product, behavior: str, status: str
) -> None:
    clock, sub = _subscription(client, product.id)
    paused = client.v1.subscriptions.update(
        sub.id, params={"pause_collection": {"behavior": behavior, "resumes_at": MAR_15 - DAY}}
    )
    assert paused.pause_collection is not None
    assert paused.pause_collection.behavior == behavior
    advance(client, clock.id, FEB_15 + 2 * HOUR)
    during = client.v1.subscriptions.retrieve(sub.id)
    assert during.status == "active"
    held = client.v1.invoices.retrieve(str(during.latest_invoice))
    assert held.billing_reason == "subscription_cycle"
    assert held.status == status
    advance(client, clock.id, MAR_15 + 2 * HOUR)
    resumed = client.v1.subscriptions.retrieve(sub.id)
    assert resumed.pause_collection is None
    assert client.v1.invoices.retrieve(str(resumed.latest_invoice)).status == "paid"


# --- trials ---------------------------------------------------------------------------------
def test_trial_will_end_three_days_before_the_trial_ends(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _subscription(client, product.id, trial_period_days=14)
    advance(client, clock.id, JAN_15 + 10 * DAY)
    if not LIVE_KEY:  # Stripe's events lag: only the emulator can show "not yet"
        assert not _events(client, "customer.subscription.trial_will_end", sub.id)
    advance(client, clock.id, JAN_15 + 11 * DAY + HOUR)
    warned = _events(client, "customer.subscription.trial_will_end", sub.id)
    assert len(warned) == 1
    assert warned[0].data.object["status"] == "trialing"
    if not LIVE_KEY:
        assert warned[0].created == JAN_15 + 11 * DAY


# --- trials without a payment method ---------------------------------------------------------
def _card_less_trial(client: stripe.StripeClient, product: str, missing: str) -> tuple[Any, Any]:
    seat = licensed_price(client, product, 3000)
    clock, customer = clocked_customer(client, payment_method=None)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": missing}},
        }
    )
    return clock, sub


def test_a_trial_without_a_payment_method_can_pause_then_resume(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _card_less_trial(client, product.id, "pause")
    assert sub.trial_settings.end_behavior.missing_payment_method == "pause"
    advance(client, clock.id, JAN_15 + 7 * DAY + 2 * HOUR)
    paused = client.v1.subscriptions.retrieve(sub.id)
    assert paused.status == "paused"
    assert paused.latest_invoice == sub.latest_invoice, "a paused subscription is not invoiced"
    assert _events(client, "customer.subscription.paused", sub.id)
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": paused.customer})
    client.v1.customers.update(
        str(paused.customer), params={"invoice_settings": {"default_payment_method": card.id}}
    )
    resumed = client.v1.subscriptions.resume(
        sub.id, params={"billing_cycle_anchor": {"type": "now"}}
    )
    assert resumed.status == "active"
    item = resumed["items"].data[0]
    assert item.current_period_start == JAN_15 + 7 * DAY + 2 * HOUR
    invoice = client.v1.invoices.retrieve(str(resumed.latest_invoice))
    assert (invoice.status, invoice.amount_paid) == ("paid", 3000)
    assert _events(client, "customer.subscription.resumed", sub.id)


def test_a_trial_without_a_payment_method_can_cancel(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub = _card_less_trial(client, product.id, "cancel")
    advance(client, clock.id, JAN_15 + 7 * DAY + 2 * HOUR)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", JAN_15 + 7 * DAY)


def test_a_trial_with_a_payment_method_ignores_missing_payment_method(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 3000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "trial_period_days": 7,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
        }
    )
    advance(client, clock.id, JAN_15 + 7 * DAY + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert client.v1.invoices.retrieve(str(after.latest_invoice)).status == "paid"


def test_only_a_paused_subscription_resumes(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub = _subscription(client, product.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.resume(sub.id)
