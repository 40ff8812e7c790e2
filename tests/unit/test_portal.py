"""Portal configurations read from the account and written back by import, without a
server: which configuration a name means, prices read back as lookup keys, and what
import leaves out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.config import load_text, locate_field
from reconciler.importer import import_account
from reconciler.kinds import Kind
from reconciler.kinds.registry import spec_for
from reconciler.live import snapshot_from_objects
from reconciler.plan import Action
from reconciler.planner import build_plan

MANAGED = {"managed_by": "stripe-reconcile"}


def price(price_id: str, lookup_key: str | None, *, active: bool = True) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "lookup_key": lookup_key,
        "product": "prod_app",
        "currency": "usd",
        "unit_amount": 1000,
        "billing_scheme": "per_unit",
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "active": active,
        "metadata": dict(MANAGED),
        "created": 1,
    }


def configuration(
    config_id: str,
    name: str | None,
    *,
    created: int = 1,
    active: bool = True,
    prices: list[str] | None = None,
) -> dict[str, Any]:
    switching: dict[str, Any] = {
        "default_allowed_updates": ["quantity", "price"],
        "enabled": prices is not None,
        "proration_behavior": "none",
    }
    if prices is not None:  # listed with the products expanded
        switching["products"] = [{"product": "prod_app", "prices": prices}]
    return {
        "id": config_id,
        "object": "billing_portal.configuration",
        "active": active,
        "business_profile": {"headline": None, "privacy_policy_url": None},
        "created": created,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": ["tax_id", "email"], "enabled": True},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": False},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": []},
                "enabled": False,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": switching,
        },
        "is_default": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": dict(MANAGED),
        "name": name,
    }


def test_a_name_means_its_active_then_newest_configuration() -> None:
    snapshot = snapshot_from_objects(
        prices=[price("price_m", "app_monthly"), price("price_bare", None)],
        portal_configurations=[
            configuration("bpc_unnamed", None, created=9),
            configuration("bpc_old", "Self-serve", created=1),
            configuration("bpc_retired", "Self-serve", created=5, active=False),
            configuration("bpc_new", "Self-serve", created=3, prices=["price_m", "price_bare"]),
        ],
    )
    assert list(snapshot.portal_configurations) == ["Self-serve"]  # the unnamed is not claimed
    chosen = snapshot.portal_configurations["Self-serve"]
    assert chosen.stripe_id == "bpc_new"
    features = chosen.essence["features"]
    assert features["subscription_update"]["products"] == [
        {"product": "prod_app", "prices": ["app_monthly", "price_bare"]}  # no key: its id
    ]
    assert features["subscription_update"]["default_allowed_updates"] == ["price", "quantity"]
    assert features["customer_update"]["allowed_updates"] == ["email", "tax_id"]
    assert (
        "products"
        not in (
            snapshot_from_objects(portal_configurations=[configuration("bpc_1", "Plain")])
            .portal_configurations["Plain"]
            .essence["features"]["subscription_update"]
        )
    )  # not expanded: not read


def test_an_undeclared_named_configuration_is_unmanaged_and_an_unnamed_one_unseen() -> None:
    snapshot = snapshot_from_objects(
        portal_configurations=[
            configuration("bpc_1", None),
            configuration("bpc_2", "Agency"),
            configuration("bpc_3", "Retired", active=False),
        ]
    )
    desired = load_text(
        "version: 1\nmode: test\nportal_configurations:\n"
        "  - {name: Other, features: {invoice_history: {enabled: true}}}\n"
    )
    plan = build_plan(desired, snapshot)
    assert plan.unmanaged == ("portal.Agency",)
    assert [(c.address, c.action) for c in plan.changes] == [("portal.Other", Action.CREATE)]


def test_import_writes_named_active_configurations_by_lookup_key() -> None:
    result = import_account(
        mode="test",
        products=[{"id": "prod_app", "object": "product", "name": "App", "active": True}],
        prices=[price("price_m", "app_monthly"), price("price_old", "app_old", active=False)],
        portal_configurations=[
            configuration("bpc_1", "Self-serve", prices=["price_m"]),
            configuration("bpc_2", None),
            configuration("bpc_3", "Retired", active=False),
            configuration("bpc_4", "Legacy", prices=["price_old"]),
        ],
    )
    document = load_text(result.text, "imported.yaml")
    (serve,) = document.portal_configurations
    assert serve.name == "Self-serve"
    assert serve.products == (("prod_app", ("app_monthly",)),)
    assert "cancellation_reason" not in serve.settings["features"]["subscription_cancel"]
    assert result.skipped == [
        "portal configuration Legacy (bpc_4): offers archived price_old: billing.yaml offers "
        "active prices only; take it out of the configuration, then import again"
    ]


def test_import_leaves_out_switching_enabled_with_nothing_to_switch_to() -> None:
    result = import_account(
        mode="test",
        portal_configurations=[{**configuration("bpc_1", "Empty", prices=[])}],
    )
    assert "portal_configurations" not in result.text
    assert result.skipped == [
        "portal configuration Empty (bpc_1): lets customers switch subscriptions without naming "
        "a product to switch to"
    ]


def test_a_refused_parameter_is_located_in_billing_yaml(tmp_path: Path) -> None:
    """What apply prints beside a write Stripe refused for good: the field's place."""
    config = tmp_path / "billing.yaml"
    config.write_text(
        "version: 1\nmode: test\nproducts:\n  - {id: prod_app, name: App}\nprices:\n"
        "  - {lookup_key: app_monthly, product: prod_app, currency: usd, unit_amount: 100,"
        " recurring: {interval: month}}\n"
        "portal_configurations:\n"
        "  - name: Self-serve\n"
        "    features:\n"
        "      subscription_update:\n"
        "        enabled: true\n"
        "        default_allowed_updates: [price]\n"
        "        products: [{product: prod_app, prices: [app_monthly]}]\n",
        encoding="utf-8",
    )
    spec = spec_for(Kind.PORTAL)
    assert spec is not None
    field = spec.param_field("features[subscription_update][products][0][prices][0]")
    assert field is not None
    assert locate_field(config, "portal.Self-serve", field) == (
        f"{config}:13:49: portal_configurations[0].features.subscription_update.products[0]"
        ".prices[0]"
    )
