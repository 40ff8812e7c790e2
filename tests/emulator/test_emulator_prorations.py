"""Prorations on subscription changes, on test clocks: Stripe's time-based credit and
charge lines, to the second, for licensed prices (metered ones never prorate).

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``); those taking ``emu`` check what the emulator refuses.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import (
    DAY,
    FEB_15,
    JAN_15,
    advance,
    clocked_customer,
    licensed_price,
    meter,
    meter_price,
)

from reconciler.emulator import Emulator

HOUR = 3600
#: 10 days and an hour into the January period (Jan 15 -> Feb 15: 31 days).
CHANGE = JAN_15 + 10 * DAY + HOUR


def _prorated(amount: int, at: int, start: int = JAN_15, end: int = FEB_15) -> int:
    """Stripe's proration: the period amount times the remaining share, to the second."""
    share = Decimal(amount) * Decimal(end - at) / Decimal(end - start)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _is_proration(line: Any) -> bool:
    details = line.parent.subscription_item_details
    return bool(details is not None and details.proration)


def _setup(client: stripe.StripeClient, product: str, **customer: Any) -> tuple[Any, Any, Any]:
    """A clock 10 days into a $30 monthly subscription; returns (clock, subscription, item)."""
    seat = licensed_price(client, product, 3000)
    clock, cus = clocked_customer(client, **customer)
    sub = client.v1.subscriptions.create(params={"customer": cus.id, "items": [{"price": seat.id}]})
    advance(client, clock.id, CHANGE)
    return clock, sub, sub["items"].data[0]


def test_create_prorations_credits_and_charges_on_the_next_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub, item = _setup(client, product.id)
    pro = licensed_price(client, product.id, 6000)
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": pro.id}],
            "proration_behavior": "create_prorations",
        },
    )
    assert client.v1.invoices.list(params={"subscription": sub.id}).data[0].id == (
        sub.latest_invoice
    ), "create_prorations invoices nothing at once"
    advance(client, clock.id, FEB_15 + HOUR)
    renewal = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    )
    lines = renewal.lines.data
    prorations = [line for line in lines if _is_proration(line)]
    assert [line.amount for line in prorations] == [
        -_prorated(3000, CHANGE),
        _prorated(6000, CHANGE),
    ]
    assert str(prorations[0].description).startswith("Unused time on 1 \N{MULTIPLICATION SIGN}")
    assert str(prorations[1].description).startswith("Remaining time on 1 \N{MULTIPLICATION SIGN}")
    assert (prorations[0].period.start, prorations[0].period.end) == (CHANGE, FEB_15)
    regular = [line for line in lines if not _is_proration(line)]
    assert [line.amount for line in regular] == [6000]
    assert renewal.total == 6000 - _prorated(3000, CHANGE) + _prorated(6000, CHANGE)
    assert renewal.status == "paid"


def test_always_invoice_bills_the_change_at_once(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, item = _setup(client, product.id)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "quantity": 3}], "proration_behavior": "always_invoice"},
    )
    assert updated.latest_invoice != sub.latest_invoice
    invoice = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert invoice.billing_reason == "subscription_update"
    assert [line.amount for line in invoice.lines.data] == [
        -_prorated(3000, CHANGE),
        _prorated(9000, CHANGE),
    ]
    assert invoice.total == _prorated(9000, CHANGE) - _prorated(3000, CHANGE)
    assert invoice.status == "paid"
    assert updated.status == "active"


def test_proration_date_sets_the_moment_to_the_second(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, item = _setup(client, product.id)
    moment = JAN_15 + 3 * DAY + 17
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 2}],
            "proration_behavior": "always_invoice",
            "proration_date": moment,
        },
    )
    invoice = client.v1.invoices.retrieve(str(updated.latest_invoice))
    assert [line.amount for line in invoice.lines.data] == [
        -_prorated(3000, moment),
        _prorated(6000, moment),
    ]
    with pytest.raises(stripe.InvalidRequestError) as outside:
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": item.id, "quantity": 4}],
                "proration_behavior": "always_invoice",
                "proration_date": JAN_15 - DAY,
            },
        )
    assert outside.value.param == "proration_date"


def test_no_prorations_with_none_and_none_for_metered_items(
    client: stripe.StripeClient, product: stripe.Product, uid: str
) -> None:
    clock, sub, item = _setup(client, product.id)
    client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": item.id, "quantity": 5}], "proration_behavior": "none"}
    )
    usage = meter(client, f"prorate_{uid}")
    first = meter_price(client, product.id, usage.id, unit_amount=2)
    second = meter_price(client, product.id, usage.id, unit_amount=3)
    metered = client.v1.subscription_items.create(
        params={"subscription": sub.id, "price": first.id, "proration_behavior": "always_invoice"}
    )
    client.v1.subscription_items.update(
        metered.id, params={"price": second.id, "proration_behavior": "always_invoice"}
    )
    latest = client.v1.subscriptions.retrieve(sub.id).latest_invoice
    assert latest == sub.latest_invoice, "neither change made an invoice"
    advance(client, clock.id, FEB_15 + HOUR)
    renewal = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    )
    assert not [line for line in renewal.lines.data if _is_proration(line)]


def test_removing_an_item_credits_its_unused_time(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, _ = _setup(client, product.id)
    extra = licensed_price(client, product.id, 1500)
    added = client.v1.subscription_items.create(
        params={"subscription": sub.id, "price": extra.id, "proration_behavior": "none"}
    )
    client.v1.subscription_items.delete(added.id, params={"proration_behavior": "always_invoice"})
    invoice = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    )
    assert [line.amount for line in invoice.lines.data] == [-_prorated(1500, CHANGE)]
    assert invoice.total == -_prorated(1500, CHANGE)


def test_a_failed_proration_payment_makes_the_subscription_past_due(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, item = _setup(client, product.id, payment_method="pm_card_visa")
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeCustomerFail", params={"customer": str(sub.customer)}
    )
    client.v1.subscriptions.update(sub.id, params={"default_payment_method": failing.id})
    with pytest.raises(stripe.CardError) as refused:
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": item.id, "quantity": 2}],
                "proration_behavior": "always_invoice",
                "payment_behavior": "error_if_incomplete",
            },
        )
    assert refused.value.http_status == 402
    unchanged = client.v1.subscriptions.retrieve(sub.id)
    assert unchanged["items"].data[0].quantity == 1
    assert unchanged.latest_invoice == sub.latest_invoice
    moved = client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "quantity": 2}], "proration_behavior": "always_invoice"},
    )
    assert moved.status == "past_due"
    assert client.v1.invoices.retrieve(str(moved.latest_invoice)).status == "open"


def test_what_prorations_do_not_emulate_is_refused(emu: Emulator) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Refused"})
    _, sub, item = _setup(client, product.id)
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    client.v1.subscriptions.update(sub.id, params={"discounts": [{"coupon": coupon.id}]})
    with pytest.raises(stripe.InvalidRequestError) as discounted:
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": item.id, "quantity": 2}]})
    assert "not emulated" in str(discounted.value.user_message)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].quantity == 1


def test_default_incomplete_leaves_an_invoiced_change_past_due_until_paid(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    _, sub, item = _setup(client, product.id)
    moved = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 2}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "default_incomplete",
        },
    )
    assert moved.status == "past_due"
    invoice = client.v1.invoices.retrieve(str(moved.latest_invoice))
    assert (invoice.status, invoice.attempted) == ("open", False)
    client.v1.invoices.pay(invoice.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_a_later_billing_cycle_anchor_prorates_the_first_period(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 3100)
    _, customer = clocked_customer(client)
    anchor = JAN_15 + 10 * DAY
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "billing_cycle_anchor": anchor,
        }
    )
    first = client.v1.invoices.retrieve(str(sub.latest_invoice))
    # Dec 25 -> Jan 25 is the full monthly period ending at the anchor: 31 days.
    assert [line.amount for line in first.lines.data] == [
        _prorated(3100, JAN_15, anchor - 31 * DAY, anchor)
    ]
    assert first.total == 1000
    free = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": licensed_price(client, product.id, 500).id}],
            "billing_cycle_anchor": anchor,
            "proration_behavior": "none",
        }
    )
    nothing = client.v1.invoices.retrieve(str(free.latest_invoice))
    assert (nothing.total, nothing.status) == (0, "paid")
