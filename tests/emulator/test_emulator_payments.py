"""Payments: Stripe's test cards, payment methods, invoice payment attempts and the
subscription statuses that follow (incomplete, past_due, Smart Retries, unpaid, canceled).

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``): there a renewal invoice stays a draft for about an
hour, so the clock goes two hours past a period end. Tests taking ``emu``
use the emulator's own controls (its retry settings, its refusals).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from typing import Any

import pytest
import stripe
from emulator_helpers import control_request, make_client
from lifecycle_helpers import DAY, FEB_15, JAN_15, MAR_15, clocked_customer, licensed_price

from reconciler.emulator import Emulator

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY")
HOUR = 3600


def _advance(client: stripe.StripeClient, clock: str, to: int) -> None:
    client.v1.test_helpers.test_clocks.advance(clock, params={"frozen_time": to})
    deadline = time.monotonic() + 120
    while client.v1.test_helpers.test_clocks.retrieve(clock).status != "ready":
        assert time.monotonic() < deadline, "the test clock did not get ready"
        time.sleep(2)


def _events(client: stripe.StripeClient, type_: str, object_id: str) -> list[Any]:
    """This object's events of one type, newest first (polled against Stripe)."""
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


def _subscribe(client: stripe.StripeClient, customer: str, price: str, **extra: Any) -> Any:
    return client.v1.subscriptions.create(
        params={"customer": customer, "items": [{"price": price}], **extra}
    )


def _settings(emu: Emulator, **settings: Any) -> dict[str, Any]:
    request = control_request(
        f"{emu.url}/_emulator/billing_settings", "POST", json.dumps(settings).encode()
    )
    with urllib.request.urlopen(request) as response:
        found: dict[str, Any] = json.loads(response.read())
    return found


# --- payment methods -----------------------------------------------------------------------
def test_a_test_card_attaches_as_a_new_payment_method(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"name": "Cards"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    assert pm.id.startswith("pm_") and pm.id != "pm_card_visa"
    assert pm.customer == customer.id
    assert pm.type == "card"
    assert pm.card is not None
    assert (pm.card.brand, pm.card.last4) == ("visa", "4242")
    second = client.v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": customer.id}
    )
    assert second.card is not None and second.card.brand == "mastercard"
    listed = client.v1.customers.payment_methods.list(customer.id).data
    assert {p.id for p in listed} == {pm.id, second.id}
    assert client.v1.payment_methods.retrieve(pm.id).customer == customer.id
    attached = _events(client, "payment_method.attached", pm.id)
    assert attached and attached[0].data.object["customer"] == customer.id


@pytest.mark.parametrize(
    ("card", "code", "decline_code"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
    ],
)
def test_a_decline_card_cannot_be_attached(
    client: stripe.StripeClient, card: str, code: str, decline_code: str
) -> None:
    customer = client.v1.customers.create(params={"name": "Declined"})
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_methods.attach(card, params={"customer": customer.id})
    assert caught.value.http_status == 402
    assert caught.value.code == code
    error = caught.value.error
    assert error is not None and error.decline_code == decline_code
    assert client.v1.customers.payment_methods.list(customer.id).data == []


def test_a_customer_created_with_a_decline_card_is_not_created(emu: Emulator) -> None:
    client = make_client(emu.url)
    with pytest.raises(stripe.CardError) as caught:
        client.v1.customers.create(
            params={"email": "declined@example.com", "payment_method": "pm_card_chargeDeclined"}
        )
    assert caught.value.param == "payment_method"
    with pytest.raises(stripe.InvalidRequestError) as unattached:
        client.v1.customers.create(
            params={
                "email": "declined@example.com",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
    assert unattached.value.param == "invoice_settings[default_payment_method]"
    params: dict[str, Any] = {"email": "declined@example.com"}
    assert client.v1.customers.list(params=params).data == []  # type: ignore[arg-type]


def test_detaching_the_default_clears_it_and_the_method_cannot_come_back(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create(
        params={
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    default = customer.invoice_settings.default_payment_method  # type: ignore[union-attr]
    assert isinstance(default, str) and default.startswith("pm_") and default != "pm_card_visa"
    detached = client.v1.payment_methods.detach(default)
    assert detached.customer is None
    assert _events(client, "payment_method.detached", default)
    after = client.v1.customers.retrieve(customer.id)
    assert after.invoice_settings.default_payment_method is None  # type: ignore[union-attr]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.attach(default, params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError) as twice:
        client.v1.payment_methods.detach(default)
    assert twice.value.http_status == 400


def test_defaults_must_be_the_customers_own_payment_methods(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    customer = client.v1.customers.create(params={"name": "Other"})
    other = client.v1.customers.create(params={"name": "Owner"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": other.id})
    with pytest.raises(stripe.InvalidRequestError) as on_customer:
        client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    assert on_customer.value.param == "invoice_settings[default_payment_method]"
    price = licensed_price(client, product.id, 1000)
    with pytest.raises(stripe.InvalidRequestError) as on_subscription:
        _subscribe(client, customer.id, price.id, default_payment_method=pm.id)
    assert on_subscription.value.param == "default_payment_method"


def test_unknown_test_cards_and_payment_intents_are_refused(emu: Emulator) -> None:
    client = make_client(emu.url)
    customer = client.v1.customers.create(params={"name": "Nope"})
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.payment_methods.attach("pm_card_invented", params={"customer": customer.id})
    assert unknown.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as intents:
        client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    assert "not emulated" in str(intents.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as raw:
        client.v1.payment_methods.create(params={"type": "card"})
    assert "not emulated" in str(raw.value.user_message)


# --- first invoices: payment_behavior ----------------------------------------------------
def test_the_default_card_pays_the_first_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    sub = _subscribe(client, customer.id, price.id)
    assert sub.status == "active"
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert invoice.status == "paid"
    assert (invoice.amount_paid, invoice.amount_remaining) == (1000, 0)
    assert invoice.attempted is True
    assert invoice.status_transitions.paid_at == JAN_15
    assert _events(client, "invoice.paid", invoice.id)


def test_without_a_payment_method_the_subscription_is_incomplete_then_expires(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    clock, customer = clocked_customer(client, payment_method=None)
    sub = _subscribe(client, customer.id, price.id)
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert invoice.status == "open"
    assert invoice.amount_remaining == 1000
    _advance(client, clock.id, JAN_15 + 22 * HOUR)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    _advance(client, clock.id, JAN_15 + 24 * HOUR)
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert expired.status == "incomplete_expired"
    assert client.v1.invoices.retrieve(invoice.id).status == "void"
    assert expired.ended_at == JAN_15 + 23 * HOUR


def test_a_failing_card_leaves_the_subscription_incomplete_until_the_invoice_is_paid(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client, payment_method="pm_card_chargeCustomerFail")
    sub = _subscribe(client, customer.id, price.id, payment_behavior="allow_incomplete")
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (invoice.status, invoice.attempt_count, invoice.attempted) == ("open", 1, True)
    assert invoice.next_payment_attempt is None  # a first invoice waits to be paid, no retries
    assert _events(client, "invoice.payment_failed", invoice.id)
    with pytest.raises(stripe.InvalidRequestError) as frozen:
        client.v1.subscriptions.update(sub.id, params={"description": "not yet"})
    assert frozen.value.param == "description"
    client.v1.subscriptions.update(sub.id, params={"metadata": {"note": "allowed"}})
    with pytest.raises(stripe.CardError) as declined:
        client.v1.invoices.pay(invoice.id)
    assert declined.value.code == "card_declined"
    with pytest.raises(stripe.InvalidRequestError) as not_attached:
        client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    assert not_attached.value.param == "payment_method"
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert paid.status == "paid"
    assert paid.amount_paid == 1000
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_error_if_incomplete_refuses_with_a_402_and_creates_nothing(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client, payment_method="pm_card_chargeCustomerFail")
    with pytest.raises(stripe.CardError) as caught:
        _subscribe(client, customer.id, price.id, payment_behavior="error_if_incomplete")
    assert caught.value.http_status == 402
    assert caught.value.code == "card_declined"
    params: dict[str, Any] = {"customer": customer.id, "status": "all"}
    assert client.v1.subscriptions.list(params=params).data == []  # type: ignore[arg-type]


def test_default_incomplete_waits_for_the_payment(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    _, customer = clocked_customer(client)
    sub = _subscribe(client, customer.id, price.id, payment_behavior="default_incomplete")
    assert sub.status == "incomplete"
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (invoice.status, invoice.attempt_count) == ("open", 0)
    client.v1.invoices.pay(invoice.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_free_first_invoice_needs_no_payment_method(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 0)
    _, customer = clocked_customer(client, payment_method=None)
    sub = _subscribe(client, customer.id, price.id, payment_behavior="error_if_incomplete")
    assert sub.status == "active"
    assert client.v1.invoices.retrieve(str(sub.latest_invoice)).status == "paid"


# --- renewals: past_due, retries, recovery ------------------------------------------------
def _failing_renewal(client: stripe.StripeClient, product: str) -> tuple[Any, Any, Any]:
    """An active monthly subscription whose customer's card then starts failing,
    advanced past the first renewal: returns (clock, subscription, renewal invoice)."""
    price = licensed_price(client, product, 2500)
    clock, customer = clocked_customer(client)
    sub = _subscribe(client, customer.id, price.id)
    assert sub.status == "active"
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": customer.id}
    )
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    _advance(client, clock.id, FEB_15 + 2 * HOUR)
    after = client.v1.subscriptions.retrieve(sub.id)
    invoice = client.v1.invoices.retrieve(str(after.latest_invoice))
    return clock, after, invoice


def test_a_failed_renewal_makes_the_subscription_past_due(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, invoice = _failing_renewal(client, product.id)
    assert sub.status == "past_due"
    assert invoice.billing_reason == "subscription_cycle"
    assert invoice.status == "open"
    assert invoice.attempt_count >= 1
    assert invoice.next_payment_attempt is not None
    assert invoice.next_payment_attempt > FEB_15
    updated = [
        e
        for e in _events(client, "customer.subscription.updated", sub.id)
        if e.data.to_dict().get("previous_attributes", {}).get("status") == "active"
    ]
    assert updated and updated[0].data.object["status"] == "past_due"
    assert _events(client, "invoice.payment_failed", invoice.id)


def test_retries_follow_the_schedule_then_cancel_by_default(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Retries"})
    clock, sub, invoice = _failing_renewal(client, product.id)
    first = FEB_15 + HOUR  # the renewal's draft hour is over: finalised, first attempt
    assert invoice.status_transitions.finalized_at == first
    assert (invoice.attempt_count, invoice.next_payment_attempt) == (1, first + 2 * DAY)
    _advance(client, clock.id, first + 2 * DAY)
    retried = client.v1.invoices.retrieve(invoice.id)
    assert (retried.attempt_count, retried.next_payment_attempt) == (2, first + 4 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    _advance(client, clock.id, first + 14 * DAY)
    last = client.v1.invoices.retrieve(invoice.id)
    assert (last.attempt_count, last.next_payment_attempt, last.status) == (8, None, "open")
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert ended.status == "canceled"
    assert ended.canceled_at == first + 14 * DAY
    assert ended.cancellation_details is not None
    assert ended.cancellation_details.reason == "payment_failed"
    assert _events(client, "customer.subscription.deleted", sub.id)
    failures = _events(client, "invoice.payment_failed", invoice.id)
    assert len(failures) == 8


def test_after_retries_the_subscription_can_be_left_unpaid(emu: Emulator) -> None:
    assert _settings(emu, after_retries="unpaid", retry_days=[1, 3]) == {
        "after_retries": "unpaid",
        "retry_days": [1, 3],
    }
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Unpaid"})
    clock, sub, invoice = _failing_renewal(client, product.id)
    assert invoice.next_payment_attempt == FEB_15 + HOUR + DAY
    _advance(client, clock.id, FEB_15 + HOUR + 3 * DAY)
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 3
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"
    _advance(client, clock.id, MAR_15 + 2 * HOUR)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "unpaid"
    march = client.v1.invoices.retrieve(str(renewed.latest_invoice))
    assert march.id != invoice.id
    assert (march.status, march.attempted, march.attempt_count) == ("open", False, 0)
    emu.reset()
    assert _settings(emu) == {"after_retries": "canceled", "retry_days": [2, 4, 6, 8, 10, 12, 14]}


def test_billing_settings_are_checked(emu: Emulator) -> None:
    for wrong in ({"after_retries": "deleted"}, {"retry_days": [3, 1]}, {"invented": 1}):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _settings(emu, **wrong)
        assert caught.value.code == 400


def test_a_new_card_recovers_a_past_due_subscription_at_the_next_retry(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Recover"})
    clock, sub, invoice = _failing_renewal(client, product.id)
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": sub.customer})
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": good.id})
    _advance(client, clock.id, FEB_15 + HOUR + 2 * DAY)
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    recovered = client.v1.subscriptions.retrieve(sub.id)
    assert recovered.status == "active"
    assert recovered.default_payment_method == good.id


def test_paying_a_past_due_invoice_makes_the_subscription_active(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, invoice = _failing_renewal(client, product.id)
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": sub.customer})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": good.id})
    assert paid.status == "paid"
    assert paid.amount_paid == 2500
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert _events(client, "invoice.paid", invoice.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(invoice.id)


def test_a_sent_invoice_past_its_due_date_makes_the_subscription_past_due(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = licensed_price(client, product.id, 1000)
    clock, customer = clocked_customer(client, payment_method=None)
    sub = _subscribe(
        client, customer.id, price.id, collection_method="send_invoice", days_until_due=7
    )
    assert client.v1.invoices.retrieve(str(sub.latest_invoice)).status == "draft"
    _advance(client, clock.id, JAN_15 + 2 * HOUR)  # finalised one hour after its creation
    invoice = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (invoice.status, invoice.due_date) == ("open", JAN_15 + HOUR + 7 * DAY)
    assert sub.status == "active"
    _advance(client, clock.id, JAN_15 + 8 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
