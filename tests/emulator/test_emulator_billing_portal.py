"""Customer portal configurations through the real stripe SDK (contract tests unless marked)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from reconciler.emulator import Emulator

PRODUCTS = "features.subscription_update.products"


@pytest.fixture
def plans(client: stripe.StripeClient, uid: str) -> tuple[stripe.Product, list[stripe.Price]]:
    product = client.v1.products.create(params={"name": f"Portal {uid}"})
    prices = [
        client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": "month"},
            }
        )
        for amount in (1000, 2000)
    ]
    return product, prices


def _switching(product: str, prices: list[str]) -> dict[str, Any]:
    return {
        "enabled": True,
        "default_allowed_updates": ["price", "quantity"],
        "products": [{"product": product, "prices": prices}],
        "proration_behavior": "create_prorations",
    }


def _create(client: stripe.StripeClient, **params: Any) -> stripe.billing_portal.Configuration:
    params.setdefault("features", {"invoice_history": {"enabled": True}})
    return client.v1.billing_portal.configurations.create(params=params)  # type: ignore[arg-type]


def test_create_with_defaults(client: stripe.StripeClient, uid: str) -> None:
    config = _create(
        client,
        name=f"Portal {uid}",
        metadata={"managed_by": "stripe-reconcile"},
        business_profile={"headline": "Manage your plan"},
        default_return_url="https://example.com/account",
    )
    assert config.object == "billing_portal.configuration"
    assert config.id.startswith("bpc_")
    assert (config.name, config.active, config.is_default) == (f"Portal {uid}", True, False)
    assert config.default_return_url == "https://example.com/account"
    assert config.business_profile.headline == "Manage your plan"
    assert config.business_profile.privacy_policy_url is None
    features = config.features
    assert features.invoice_history.enabled is True
    assert features.customer_update.enabled is False
    assert features.payment_method_update.enabled is False
    assert features.subscription_cancel.enabled is False
    assert features.subscription_cancel.mode == "at_period_end"
    assert features.subscription_update.enabled is False
    assert features.subscription_update.default_allowed_updates == []
    assert "products" not in features.subscription_update
    assert config.login_page.enabled is False
    assert config.metadata is not None
    assert config.metadata.to_dict() == {"managed_by": "stripe-reconcile"}


def test_subscription_update_products_are_includable(
    client: stripe.StripeClient, plans: tuple[stripe.Product, list[stripe.Price]]
) -> None:
    product, prices = plans
    config = _create(
        client, features={"subscription_update": _switching(product.id, [p.id for p in prices])}
    )
    assert "products" not in config.features.subscription_update
    assert config.features.subscription_update.default_allowed_updates == ["price", "quantity"]
    assert config.features.subscription_update.proration_behavior == "create_prorations"
    expanded = client.v1.billing_portal.configurations.retrieve(
        config.id, params={"expand": [PRODUCTS]}
    )
    listed = expanded.features.subscription_update.products
    assert listed is not None
    assert [(p.product, list(p.prices)) for p in listed] == [
        (product.id, [prices[0].id, prices[1].id])
    ]
    page = client.v1.billing_portal.configurations.list(
        params={"limit": 100, "expand": [f"data.{PRODUCTS}"]}
    )
    mine = next(c for c in page.data if c.id == config.id)
    assert mine.features.subscription_update.products is not None


def test_update_merges_features(
    client: stripe.StripeClient, plans: tuple[stripe.Product, list[stripe.Price]], uid: str
) -> None:
    product, prices = plans
    config = _create(
        client,
        features={
            "subscription_update": _switching(product.id, [prices[0].id]),
            "subscription_cancel": {"enabled": True, "mode": "immediately"},
        },
    )
    updated = client.v1.billing_portal.configurations.update(
        config.id,
        params={
            "features": {
                "subscription_update": {
                    "products": [{"product": product.id, "prices": [p.id for p in prices]}]
                },
                "customer_update": {"enabled": True, "allowed_updates": ["email", "tax_id"]},
            },
            "name": f"Renamed {uid}",
            "metadata": {"tier": "gold"},
            "expand": [PRODUCTS],
        },
    )
    update = updated.features.subscription_update
    assert update.enabled is True
    assert update.default_allowed_updates == ["price", "quantity"]
    assert update.products is not None
    assert list(update.products[0].prices) == [prices[0].id, prices[1].id]
    assert updated.features.subscription_cancel.mode == "immediately"
    assert updated.features.customer_update.allowed_updates == ["email", "tax_id"]
    assert updated.name == f"Renamed {uid}"
    off = client.v1.billing_portal.configurations.update(config.id, params={"active": False})
    assert off.active is False


def test_list_filters_and_pages(client: stripe.StripeClient, uid: str) -> None:
    made = [_create(client, name=f"List {uid} {i}") for i in range(3)]
    client.v1.billing_portal.configurations.update(made[0].id, params={"active": False})
    active = client.v1.billing_portal.configurations.list(params={"active": True, "limit": 100})
    ids = [c.id for c in active.data]
    assert made[0].id not in ids
    assert ids.index(made[2].id) < ids.index(made[1].id)
    inactive = client.v1.billing_portal.configurations.list(params={"active": False, "limit": 100})
    assert made[0].id in [c.id for c in inactive.data]
    mine = {c.id for c in made}
    defaults = client.v1.billing_portal.configurations.list(
        params={"is_default": True, "limit": 100}
    )
    assert not mine & {c.id for c in defaults.data}
    first = client.v1.billing_portal.configurations.list(params={"limit": 1})
    assert first.has_more is True
    second = client.v1.billing_portal.configurations.list(
        params={"limit": 1, "starting_after": first.data[0].id}
    )
    assert second.data[0].id != first.data[0].id


def test_enabled_subscription_update_needs_products_and_updates(
    client: stripe.StripeClient, plans: tuple[stripe.Product, list[stripe.Price]]
) -> None:
    product, prices = plans
    for left_out in ("products", "default_allowed_updates"):
        features = _switching(product.id, [prices[0].id])
        del features[left_out]
        with pytest.raises(stripe.InvalidRequestError) as caught:
            _create(client, features={"subscription_update": features})
        assert caught.value.http_status == 400
        assert caught.value.code == "parameter_missing"
        assert caught.value.param == f"features[subscription_update][{left_out}]"
    disabled = _create(client, features={"subscription_update": {"enabled": False}})
    assert disabled.features.subscription_update.enabled is False


def test_product_and_price_validation(
    client: stripe.StripeClient, plans: tuple[stripe.Product, list[stripe.Price]], uid: str
) -> None:
    product, prices = plans
    other = client.v1.products.create(params={"name": f"Other {uid}"})
    foreign = client.v1.prices.create(
        params={
            "product": other.id,
            "currency": "usd",
            "unit_amount": 5,
            "recurring": {"interval": "month"},
        }
    )
    one_time = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 5}
    )
    at = "features[subscription_update][products][0]"

    def refused(product_id: str, price_ids: list[str]) -> stripe.InvalidRequestError:
        with pytest.raises(stripe.InvalidRequestError) as caught:
            _create(client, features={"subscription_update": _switching(product_id, price_ids)})
        assert caught.value.http_status == 400
        return caught.value

    missing_product = refused(f"prod_missing_{uid}", [prices[0].id])
    assert (missing_product.code, missing_product.param) == ("resource_missing", f"{at}[product]")
    missing_price = refused(product.id, ["price_missing"])
    assert (missing_price.code, missing_price.param) == ("resource_missing", f"{at}[prices][0]")
    assert refused(product.id, [prices[0].id, foreign.id]).param == f"{at}[prices][1]"
    assert refused(product.id, [one_time.id]).param == f"{at}[prices][0]"


def test_too_many_products(client: stripe.StripeClient, uid: str) -> None:
    entries = []
    for i in range(11):
        price = client.v1.prices.create(
            params={
                "product_data": {"name": f"Many {uid} {i}"},
                "currency": "usd",
                "unit_amount": 100,
                "recurring": {"interval": "month"},
            }
        )
        entries.append({"product": str(price.product), "prices": [price.id]})
    features = {
        "subscription_update": {
            "enabled": True,
            "default_allowed_updates": ["price"],
            "products": entries,
        }
    }
    with pytest.raises(stripe.InvalidRequestError) as caught:
        _create(client, features=features)
    assert caught.value.param == "features[subscription_update][products]"


def test_headline_and_url_checks(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as headline:
        _create(client, business_profile={"headline": "x" * 61})
    assert headline.value.param == "business_profile[headline]"
    with pytest.raises(stripe.InvalidRequestError) as url:
        _create(client, default_return_url="not a url")
    assert url.value.param == "default_return_url"


def test_unknown_parameters_and_missing_features(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing_portal.configurations.create(params={})  # type: ignore[typeddict-item]
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "features")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        _create(client, features={"invoice_history": {"enabled": True}, "colour": "red"})
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "features[colour]")


def test_login_page_url(client: stripe.StripeClient) -> None:
    config = _create(client, login_page={"enabled": True})
    assert config.login_page.enabled is True
    assert config.login_page.url is not None
    assert config.login_page.url.startswith("https://")


def test_not_emulated_parts_are_refused(emu: Emulator) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    with pytest.raises(stripe.InvalidRequestError) as pmc:
        _create(
            client,
            features={
                "payment_method_update": {"enabled": True, "payment_method_configuration": "pmc_1"}
            },
        )
    assert pmc.value.param == "features[payment_method_update][payment_method_configuration]"
    with pytest.raises(stripe.InvalidRequestError) as feedback:
        _create(
            client,
            features={
                "subscription_cancel": {
                    "enabled": True,
                    "cancellation_reason": {
                        "enabled": True,
                        "options": ["other"],
                        "feedback_options": ["x"],
                    },
                }
            },
        )
    assert "feedback_options" in str(feedback.value.param)
    customer = client.v1.customers.create(params={"name": "Portal"})
    with pytest.raises(stripe.InvalidRequestError) as session:
        client.v1.billing_portal.sessions.create(params={"customer": customer.id})
    assert "not emulated" in str(session.value.user_message)


def test_configuration_events(emu: Emulator) -> None:
    from emulator_helpers import make_client

    client = make_client(emu.url)
    config = _create(client, name="Evented")
    client.v1.billing_portal.configurations.update(config.id, params={"name": "Renamed"})
    events = client.v1.events.list(params={"type": "billing_portal.configuration.*"}).data
    assert [e.type for e in events] == [
        "billing_portal.configuration.updated",
        "billing_portal.configuration.created",
    ]
    previous = events[0].data.previous_attributes
    assert previous is not None
    assert previous.to_dict()["name"] == "Evented"


def test_cancel_prorations_only_when_cancelling_at_once(client: stripe.StripeClient) -> None:
    param = "features[subscription_cancel][proration_behavior]"
    for cancel in (
        {"enabled": True, "mode": "immediately", "proration_behavior": "always_invoice"},
        {"enabled": True, "mode": "at_period_end", "proration_behavior": "create_prorations"},
        {"enabled": True, "proration_behavior": "create_prorations"},  # at period end by default
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            _create(client, features={"subscription_cancel": cancel})
        assert (caught.value.http_status, caught.value.param) == (400, param)
    config = _create(
        client,
        features={
            "subscription_cancel": {
                "enabled": True,
                "mode": "immediately",
                "proration_behavior": "create_prorations",
            }
        },
    )
    assert config.features.subscription_cancel.proration_behavior == "create_prorations"
    # The stored proration behaviour holds against a later change of mode alone.
    with pytest.raises(stripe.InvalidRequestError) as later:
        client.v1.billing_portal.configurations.update(
            config.id, params={"features": {"subscription_cancel": {"mode": "at_period_end"}}}
        )
    assert later.value.param == param
    moved = client.v1.billing_portal.configurations.update(
        config.id,
        params={
            "features": {
                "subscription_cancel": {"mode": "at_period_end", "proration_behavior": "none"}
            }
        },
    )
    assert moved.features.subscription_cancel.mode == "at_period_end"
