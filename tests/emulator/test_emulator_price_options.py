"""A price's pay-what-you-want bounds, currency options and tax behavior through the real
stripe SDK. Rules Stripe documents run as contract tests (``client`` alone); the
emulator's own reading of what Stripe leaves unsaid also takes ``emu``."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from reconciler.emulator import Emulator


def _create(client: stripe.StripeClient, product: stripe.Product, **params: Any) -> stripe.Price:
    return client.v1.prices.create(params={"product": product.id, "currency": "usd", **params})


def _expanded(client: stripe.StripeClient, price: stripe.Price) -> dict[str, Any]:
    fetched = client.v1.prices.retrieve(price.id, params={"expand": ["currency_options"]})
    return fetched.to_dict()


def test_pay_what_you_want_on_a_one_time_price(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = _create(
        client,
        product,
        custom_unit_amount={"enabled": True, "minimum": 500, "maximum": 100000, "preset": 2000},
    )
    assert price.type == "one_time"
    assert price.unit_amount is None
    custom = price.custom_unit_amount
    assert custom is not None
    assert (custom.minimum, custom.maximum, custom.preset) == (500, 100000, 2000)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"recurring": {"interval": "month"}}, "custom_unit_amount"),
        ({"unit_amount": 1000}, "unit_amount"),
    ],
    ids=["recurring", "with-an-amount"],
)
def test_pay_what_you_want_refusals(
    client: stripe.StripeClient, product: stripe.Product, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _create(client, product, custom_unit_amount={"enabled": True}, **extra)
    assert (caught.value.http_status, caught.value.param) == (400, param)


@pytest.mark.parametrize(
    ("custom", "param"),
    [
        ({"enabled": False}, "custom_unit_amount[enabled]"),
        ({"enabled": True, "minimum": 900, "maximum": 100}, "custom_unit_amount[maximum]"),
        ({"enabled": True, "minimum": 100, "preset": 50}, "custom_unit_amount[preset]"),
    ],
    ids=["not-enabled", "maximum-below-minimum", "preset-outside"],
)
def test_pay_what_you_want_bounds_are_checked(
    client: stripe.StripeClient,
    emu: Emulator,
    product: stripe.Product,
    custom: dict[str, Any],
    param: str,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _create(client, product, custom_unit_amount=custom)
    assert caught.value.param == param


def test_currency_options_only_when_expanded_and_with_the_own_currency(
    client: stripe.StripeClient, product: stripe.Product
) -> None:
    price = _create(
        client,
        product,
        unit_amount=4900,
        tax_behavior="exclusive",
        currency_options={"eur": {"unit_amount": 4500, "tax_behavior": "inclusive"}},
    )
    assert "currency_options" not in price
    options = _expanded(client, price)["currency_options"]
    assert options["usd"]["unit_amount"] == 4900
    assert (options["eur"]["unit_amount"], options["eur"]["tax_behavior"]) == (4500, "inclusive")


def test_a_currency_option_is_priced_like_its_price(
    client: stripe.StripeClient, emu: Emulator, product: stripe.Product
) -> None:
    for params, param in (
        ({"unit_amount": 100, "currency_options": {"usd": {"unit_amount": 1}}}, "usd"),
        (
            {"unit_amount": 100, "currency_options": {"eur": {"tax_behavior": "inclusive"}}},
            "eur][unit_amount",
        ),
        (
            {
                "unit_amount": 100,
                "currency_options": {"eur": {"custom_unit_amount": {"enabled": True}}},
            },
            "eur][custom_unit_amount",
        ),
        (
            {
                "custom_unit_amount": {"enabled": True},
                "currency_options": {"eur": {"unit_amount": 100}},
            },
            "eur][custom_unit_amount",
        ),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            _create(client, product, **params)
        assert caught.value.param == f"currency_options[{param}]"


def test_update_sets_each_named_currency_whole_and_clears_with_an_empty_value(
    client: stripe.StripeClient, emu: Emulator, product: stripe.Product
) -> None:
    price = _create(
        client,
        product,
        unit_amount=4900,
        currency_options={
            "eur": {"unit_amount": 4500, "tax_behavior": "inclusive"},
            "gbp": {"unit_amount": 3900},
        },
    )
    client.v1.prices.update(
        price.id,
        params={"currency_options": {"eur": {"unit_amount": 4700}, "jpy": {"unit_amount": 7000}}},
    )
    options = _expanded(client, price)["currency_options"]
    assert sorted(options) == ["eur", "gbp", "jpy", "usd"]
    assert (options["eur"]["unit_amount"], options["eur"]["tax_behavior"]) == (4700, "inclusive")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.update(
            price.id,
            params={
                "currency_options": {"eur": {"unit_amount": 4700, "tax_behavior": "exclusive"}}
            },
        )
    assert caught.value.param == "currency_options[eur][tax_behavior]"
    client.v1.prices.update(price.id, params={"currency_options": ""})
    assert sorted(_expanded(client, price)["currency_options"]) == ["usd"]


def test_update_of_a_tiered_price_takes_its_currencies_tiers(
    client: stripe.StripeClient, emu: Emulator, product: stripe.Product
) -> None:
    tiers = [{"up_to": 10, "unit_amount": 1000}, {"up_to": "inf", "unit_amount": 800}]
    price = _create(
        client,
        product,
        recurring={"interval": "month"},
        billing_scheme="tiered",
        tiers_mode="volume",
        tiers=tiers,
    )
    client.v1.prices.update(
        price.id,
        params={
            "currency_options": {
                "eur": {
                    "tiers": [
                        {"up_to": 10, "unit_amount": 900},
                        {"up_to": "inf", "unit_amount": 700},
                    ]
                }
            }
        },
    )
    eur = _expanded(client, price)["currency_options"]["eur"]
    assert [t["unit_amount"] for t in eur["tiers"]] == [900, 700]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.update(
            price.id, params={"currency_options": {"eur": {"unit_amount": 900}}}
        )
    assert caught.value.param == "currency_options[eur][unit_amount]"
