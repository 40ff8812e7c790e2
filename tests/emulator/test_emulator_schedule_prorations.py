"""Schedule phases on test clocks: one entered inside a billing period prorates, as a
subscription update does ("Proration behavior on a phase controls prorations at the
phase transition"), and a phase's payment method and days until due reach the
subscription when the phase starts.

The tests taking ``client`` also run against Stripe test mode (contract run,
``STRIPE_TEST_API_KEY``); those taking ``emu`` check what the emulator refuses.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import stripe
from emulator_helpers import make_client
from lifecycle_helpers import DAY, FEB_15, JAN_15, advance, clocked_customer, licensed_price

from reconciler.emulator import Emulator

HOUR = 3600
SWITCH = JAN_15 + 10 * DAY  # inside the Jan 15 -> Feb 15 period (31 days)


def _prorated(amount: int, at: int) -> int:
    """The period amount times the share left at ``at``, to the second, half up."""
    share = Decimal(amount) * Decimal(FEB_15 - at) / Decimal(FEB_15 - JAN_15)
    return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _scheduled_switch(
    client: stripe.StripeClient, product: str, behavior: str | None
) -> tuple[Any, Any, Any]:
    """$30 a month until SWITCH, then $60: (clock, subscription, new price)."""
    seat = licensed_price(client, product, 3000)
    pro = licensed_price(client, product, 6000)
    clock, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    second: dict[str, Any] = {"items": [{"price": pro.id, "quantity": 1}]}
    if behavior is not None:
        second["proration_behavior"] = behavior
    client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {
                    "start_date": JAN_15,
                    "end_date": SWITCH,
                    "items": [{"price": seat.id, "quantity": 1}],
                },
                second,
            ]
        },
    )
    return clock, sub, pro


def _proration_amounts(invoice: Any) -> list[int]:
    return [
        line.amount
        for line in invoice.lines.data
        if line.parent.subscription_item_details is not None
        and line.parent.subscription_item_details.proration
    ]


def test_a_phase_entered_mid_period_prorates_on_the_next_invoice(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub, _ = _scheduled_switch(client, product.id, None)
    advance(client, clock.id, FEB_15 + HOUR)
    renewal = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    )
    # 21 of 31 days left at the switch: -3000 x 21/31 = -2032.26 -> -2032,
    # +6000 x 21/31 = 4064.52 -> 4065; then February at $60.00.
    credit, charge = sorted(_proration_amounts(renewal))
    assert (credit, charge) == (-_prorated(3000, SWITCH), _prorated(6000, SWITCH))
    assert (credit, charge) == (-2032, 4065)
    assert renewal.total == -2032 + 4065 + 6000


def test_a_phase_with_proration_behavior_none_switches_without_prorations(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    clock, sub, _ = _scheduled_switch(client, product.id, "none")
    advance(client, clock.id, FEB_15 + HOUR)
    renewal = client.v1.invoices.retrieve(
        str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    )
    assert _proration_amounts(renewal) == []
    assert renewal.total == 6000


def test_a_mid_period_phase_on_a_discounted_subscription_is_refused_as_not_emulated(
    emu: Emulator,
) -> None:
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Seats"})
    seat = licensed_price(client, product.id, 3000)
    pro = licensed_price(client, product.id, 6000)
    coupon = client.v1.coupons.create(params={"percent_off": 10, "duration": "forever"})
    _, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "discounts": [{"coupon": coupon.id}],
        }
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscription_schedules.update(
            schedule.id,
            params={
                "phases": [
                    {"start_date": JAN_15, "end_date": SWITCH, "items": [{"price": seat.id}]},
                    {"items": [{"price": pro.id}]},
                ]
            },
        )
    assert "not emulated" in str(refused.value)
    assert refused.value.param == "phases[1][proration_behavior]"


def test_a_phase_puts_its_payment_method_and_days_until_due_on_the_subscription(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    seat = licensed_price(client, product.id, 3000)
    clock, customer = clocked_customer(client)
    card = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": seat.id}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        }
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    updated = client.v1.subscription_schedules.update(
        schedule.id,
        params={
            "phases": [
                {"start_date": JAN_15, "end_date": FEB_15, "items": [{"price": seat.id}]},
                {
                    "items": [{"price": seat.id}],
                    "default_payment_method": card.id,
                    "invoice_settings": {"days_until_due": 14},
                },
            ]
        },
    )
    assert updated.phases[1].default_payment_method == card.id
    assert updated.phases[1].invoice_settings is not None
    assert updated.phases[1].invoice_settings.days_until_due == 14
    advance(client, clock.id, FEB_15 + HOUR)
    moved = client.v1.subscriptions.retrieve(sub.id)
    assert (moved.default_payment_method, moved.days_until_due) == (card.id, 14)


@pytest.mark.parametrize(
    ("setting", "param"),
    [
        ({"billing_thresholds": {"amount_gte": 10000}}, "phases[1][billing_thresholds]"),
        ({"automatic_tax": {"enabled": True}}, "phases[1][automatic_tax][enabled]"),
        ({"application_fee_percent": 5}, "phases[1][application_fee_percent]"),
    ],
)
def test_a_phase_setting_the_emulator_cannot_carry_out_is_refused(
    emu: Emulator, setting: dict[str, Any], param: str
) -> None:
    """Emulator only: real Stripe carries these out."""
    client = make_client(emu.url)
    product = client.v1.products.create(params={"name": "Seats"})
    seat = licensed_price(client, product.id, 3000)
    _, customer = clocked_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": seat.id}]}
    )
    schedule = client.v1.subscription_schedules.create(params={"from_subscription": sub.id})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.subscription_schedules.update(
            schedule.id,
            params={
                "phases": [
                    {"start_date": JAN_15, "end_date": FEB_15, "items": [{"price": seat.id}]},
                    {"items": [{"price": seat.id}], **setting},
                ]
            },
        )
    assert refused.value.param == param
    assert "not emulated" in str(refused.value)
