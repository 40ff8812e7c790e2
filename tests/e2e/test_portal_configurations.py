"""Customer portal configurations: declared, validated, planned on what billing.yaml
states, applied in place (prices named by their ids when the write runs, a replaced
price by its replacement), archived, imported and drift-checked against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.emulator import Emulator
from reconciler.errors import ConfigErrors
from reconciler.gateway import Gateway
from reconciler.plan import Action, Plan, ResourceChange
from tests.e2e.conftest import API_KEY, converge, plan_of, stripe_reconcile

PATH = "/v1/billing_portal/configurations"
EXPAND = {"expand": ["features.subscription_update.products"]}
PRICES = [  # lookup key, product, amount, recurring
    ("app_monthly", "prod_app", 1000, "{interval: month}"),
    ("app_yearly", "prod_app", 10000, "{interval: year}"),
    ("app_setup", "prod_app", 500, None),
    ("other_monthly", "prod_other", 700, "{interval: month}"),
]
CATALOG = (
    "version: 1\n"
    "mode: test\n"
    "products:\n"
    "  - {id: prod_app, name: App}\n"
    "  - {id: prod_other, name: Other}\n"
    "prices:\n"
    + "".join(
        f"  - {{lookup_key: {key}, product: {product}, currency: usd, unit_amount: {amount}"
        + (f", recurring: {recurring}}}\n" if recurring else "}\n")
        for key, product, amount, recurring in PRICES
    )
)
PORTAL = """\
portal_configurations:
  - name: Self-serve
    business_profile: {headline: Manage your plan, privacy_policy_url: null}
    default_return_url: https://example.com/account
    features:
      invoice_history: {enabled: true}
      customer_update: {enabled: true, allowed_updates: [tax_id, email]}
      payment_method_update: {enabled: true}
      subscription_cancel:
        enabled: true
        mode: immediately
        proration_behavior: create_prorations
        cancellation_reason: {enabled: true, options: [too_expensive, other]}
      subscription_update:
        enabled: true
        default_allowed_updates: [price]
        proration_behavior: create_prorations
        products:
          - {product: prod_app, prices: [app_monthly, app_yearly]}
    metadata: {team: growth}
"""
DOC = CATALOG + PORTAL


def portal_change(plan: Plan, name: str = "Self-serve") -> ResourceChange:
    return next(c for c in plan.changes if c.address == f"portal.{name}")


def configuration(gateway: Gateway, name: str = "Self-serve") -> dict[str, Any]:
    listed = gateway.get(PATH, {"limit": 100, "expand": [f"data.{EXPAND['expand'][0]}"]})
    return next(c for c in listed["data"] if c.get("name") == name)


def price_id(gateway: Gateway, lookup_key: str) -> str:
    found = gateway.get("/v1/prices", {"lookup_keys": [lookup_key]})["data"]
    return str(found[0]["id"])


def offered(gateway: Gateway, name: str = "Self-serve") -> list[tuple[str, list[str]]]:
    products = configuration(gateway, name)["features"]["subscription_update"]["products"]
    return [(p["product"], list(p["prices"])) for p in products]


def test_created_from_empty_with_the_prices_made_in_the_same_apply(
    emulator: Emulator, gateway: Gateway
) -> None:
    _, first = plan_of(DOC, gateway)
    created = portal_change(first)
    assert created.action is Action.CREATE
    assert created.after is not None
    assert created.after["features"]["customer_update"]["allowed_updates"] == ["email", "tax_id"]
    assert not converge(DOC, gateway).has_changes
    made = configuration(gateway)
    assert made["metadata"] == {"team": "growth", "managed_by": "stripe-reconcile"}
    assert made["business_profile"]["headline"] == "Manage your plan"
    assert made["default_return_url"] == "https://example.com/account"
    # Reasons are a set: written in one order, whatever order billing.yaml lists them in.
    assert made["features"]["subscription_cancel"]["cancellation_reason"]["options"] == [
        "other",
        "too_expensive",
    ]
    assert offered(gateway) == [
        ("prod_app", [price_id(gateway, "app_monthly"), price_id(gateway, "app_yearly")])
    ]


def test_what_billing_yaml_leaves_out_keeps_stripes_value(
    emulator: Emulator, gateway: Gateway
) -> None:
    minimal = CATALOG + (
        "portal_configurations:\n"
        "  - name: Invoices only\n"
        "    features: {invoice_history: {enabled: true}}\n"
    )
    assert not converge(minimal, gateway).has_changes
    made = configuration(gateway, "Invoices only")
    assert made["features"]["subscription_cancel"]["mode"] == "at_period_end"  # Stripe's default
    # Settings billing.yaml does not state are not managed: a change to one is no drift.
    gateway.post(
        f"{PATH}/{made['id']}",
        {
            "features": {"customer_update": {"enabled": True, "allowed_updates": ["email"]}},
            "business_profile": {"headline": "Set in the Dashboard"},
        },
    )
    assert not plan_of(minimal, gateway)[1].has_changes


EDITS = [
    pytest.param(
        "headline: Manage your plan,",
        "headline: Your subscription,",
        ["business_profile.headline"],
        id="headline",
    ),
    pytest.param(
        "privacy_policy_url: null",
        "privacy_policy_url: https://example.com/privacy",
        ["business_profile.privacy_policy_url"],
        id="privacy-url",
    ),
    pytest.param(
        "default_return_url: https://example.com/account",
        "default_return_url: null",
        ["default_return_url"],
        id="return-url-cleared",
    ),
    pytest.param(
        "    metadata: {team: growth}\n",
        "    metadata: {team: retention}\n    login_page: {enabled: true}\n",
        ["login_page.enabled", "metadata.team"],
        id="login-page-and-metadata",
    ),
    pytest.param(
        "invoice_history: {enabled: true}",
        "invoice_history: {enabled: false}",
        ["features.invoice_history.enabled"],
        id="invoice-history",
    ),
    pytest.param(
        "allowed_updates: [tax_id, email]",
        "allowed_updates: [email, address, tax_id]",
        ["features.customer_update.allowed_updates[0]"],
        id="customer-update",
    ),
    pytest.param(
        "payment_method_update: {enabled: true}",
        "payment_method_update: {enabled: false}",
        ["features.payment_method_update.enabled"],
        id="payment-method-update",
    ),
    pytest.param(
        "        mode: immediately\n        proration_behavior: create_prorations\n",
        "        mode: at_period_end\n",
        ["features.subscription_cancel.mode"],
        id="cancel-mode",
    ),
    pytest.param(
        "options: [too_expensive, other]",
        "options: [unused]",
        [
            "features.subscription_cancel.cancellation_reason.options[0]",
            "features.subscription_cancel.cancellation_reason.options[1]",
        ],
        id="cancellation-reasons",
    ),
    pytest.param(
        "default_allowed_updates: [price]",
        "default_allowed_updates: [price, quantity]",
        ["features.subscription_update.default_allowed_updates[1]"],
        id="allowed-subscription-updates",
    ),
    pytest.param(
        "        proration_behavior: create_prorations\n        products:",
        "        proration_behavior: always_invoice\n        products:",
        ["features.subscription_update.proration_behavior"],
        id="switch-prorations",
    ),
    pytest.param(
        "prices: [app_monthly, app_yearly]}\n",
        "prices: [app_yearly]}\n          - {product: prod_other, prices: [other_monthly]}\n",
        [
            "features.subscription_update.products[0].prices[0]",
            "features.subscription_update.products[1]",
        ],
        id="products",
    ),
]


@pytest.mark.parametrize(("old", "new", "fields"), EDITS)
def test_each_setting_updates_in_place(
    emulator: Emulator, gateway: Gateway, old: str, new: str, fields: list[str]
) -> None:
    assert not converge(DOC, gateway).has_changes
    made = configuration(gateway)
    assert old in DOC
    edited = DOC.replace(old, new)
    _, plan = plan_of(edited, gateway)
    change = portal_change(plan)
    assert change.action is Action.UPDATE
    assert change.stripe_id == made["id"]
    assert [c.field for c in change.changes] == fields
    assert [c.address for c in plan.actionable] == ["portal.Self-serve"]
    assert not converge(edited, gateway).has_changes
    assert configuration(gateway)["id"] == made["id"]  # in place: never a new one


def test_a_switch_offers_a_price_made_in_the_same_apply_by_its_new_id(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(DOC, gateway).has_changes
    weekly = (
        "  - {lookup_key: app_weekly, product: prod_app, currency: usd, unit_amount: 300, "
        "recurring: {interval: week}}\n"
    )
    edited = DOC.replace("portal_configurations:\n", weekly + "portal_configurations:\n").replace(
        "prices: [app_monthly, app_yearly]", "prices: [app_monthly, app_yearly, app_weekly]"
    )
    _, plan = plan_of(edited, gateway)
    assert {c.address: c.action for c in plan.actionable} == {
        "price.app_weekly": Action.CREATE,
        "portal.Self-serve": Action.UPDATE,
    }
    assert not converge(edited, gateway).has_changes
    assert offered(gateway)[0][1][-1] == price_id(gateway, "app_weekly")


def test_a_replaced_price_is_offered_by_its_replacement_in_the_same_apply(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(DOC, gateway).has_changes
    old_yearly = price_id(gateway, "app_yearly")
    raised = DOC.replace("unit_amount: 10000", "unit_amount: 12000")
    snapshot, plan = plan_of(raised, gateway)
    assert {c.address: c.action for c in plan.actionable} == {"price.app_yearly": Action.REPLACE}
    assert portal_change(plan).action is Action.NOOP
    result = apply_until_done(plan, snapshot, gateway, replan=lambda: plan_of(raised, gateway))
    assert result.rounds == 1
    assert "portal.Self-serve: switch-prices" in result.result.done
    new_yearly = price_id(gateway, "app_yearly")
    assert new_yearly != old_yearly
    assert offered(gateway) == [("prod_app", [price_id(gateway, "app_monthly"), new_yearly])]
    assert gateway.get(f"/v1/prices/{old_yearly}")["active"] is False
    assert not plan_of(raised, gateway)[1].has_changes


def test_archived_with_active_false_and_reactivated(emulator: Emulator, gateway: Gateway) -> None:
    assert not converge(DOC, gateway).has_changes
    retired = DOC.replace(
        "    metadata: {team: growth}\n", "    metadata: {team: growth}\n    active: false\n"
    )
    _, plan = plan_of(retired, gateway)
    assert portal_change(plan).action is Action.ARCHIVE
    assert [c.field for c in portal_change(plan).changes] == ["active"]
    assert not converge(retired, gateway).has_changes
    assert configuration(gateway)["active"] is False
    assert "portal.Self-serve" not in plan_of(CATALOG, gateway)[1].unmanaged  # retired
    _, back = plan_of(DOC, gateway)
    assert portal_change(back).action is Action.UPDATE
    assert not converge(DOC, gateway).has_changes
    assert configuration(gateway)["active"] is True


def test_declared_inactive_and_absent_is_left_absent(emulator: Emulator, gateway: Gateway) -> None:
    retired = DOC.replace("    metadata: {team: growth}\n", "    active: false\n")
    _, plan = plan_of(retired, gateway)
    assert portal_change(plan).action is Action.NOOP
    assert not converge(retired, gateway).has_changes
    assert gateway.get(PATH)["data"] == []


def test_converges_from_a_changed_account(emulator: Emulator, gateway: Gateway) -> None:
    assert not converge(CATALOG, gateway).has_changes
    monthly = price_id(gateway, "app_monthly")
    theirs = gateway.post(
        PATH,
        {
            "name": "Self-serve",
            "features": {
                "invoice_history": {"enabled": False},
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["quantity"],
                    "products": [{"product": "prod_app", "prices": [monthly]}],
                },
            },
            "metadata": {"owner": "dashboard"},
        },
    )
    unnamed = gateway.post(PATH, {"features": {"invoice_history": {"enabled": True}}})
    other = gateway.post(
        PATH, {"name": "Agency", "features": {"invoice_history": {"enabled": True}}}
    )
    _, plan = plan_of(DOC, gateway)
    change = portal_change(plan)
    assert (change.action, change.stripe_id) == (Action.UPDATE, theirs["id"])
    assert "adopted" in change.reason
    assert plan.unmanaged == ("portal.Agency",)  # a configuration without a name is never claimed
    assert not converge(DOC, gateway).has_changes
    adopted = configuration(gateway)
    assert adopted["id"] == theirs["id"]
    assert adopted["metadata"] == {"owner": "dashboard", "team": "growth"}
    updated = gateway.get("/v1/events", {"type": "billing_portal.configuration.updated"})
    assert {e["data"]["object"]["id"] for e in updated["data"]} == {theirs["id"]}
    assert other["id"] != unnamed["id"]


def test_drift_behind_the_tools_back_shows_in_the_plan(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(DOC, gateway).has_changes
    made = configuration(gateway)
    gateway.post(
        f"{PATH}/{made['id']}",
        {
            "business_profile": {"headline": "Edited in the Dashboard"},
            "features": {
                "subscription_update": {
                    "products": [
                        {"product": "prod_app", "prices": [price_id(gateway, "app_monthly")]}
                    ]
                }
            },
        },
    )
    _, plan = plan_of(DOC, gateway)
    change = portal_change(plan)
    assert change.action is Action.UPDATE
    assert [(c.field, c.before, c.after) for c in change.changes] == [
        ("business_profile.headline", "Edited in the Dashboard", "Manage your plan"),
        ("features.subscription_update.products[0].prices[1]", None, "app_yearly"),
    ]
    assert not converge(DOC, gateway).has_changes


def test_plan_reads_configurations_only_when_billing_yaml_declares_one(
    emulator: Emulator, gateway: Gateway
) -> None:
    plan_of(CATALOG, gateway)
    assert f"GET {PATH}" not in emulator.stats()["by_route"]
    plan_of(DOC, gateway)
    assert emulator.stats()["by_route"][f"GET {PATH}"] == 1


def refused(*edits: str, id: str) -> Any:
    """A validate case: pairs of text in DOC and its replacement, then the error expected."""
    return pytest.param(edits, id=id)


REFUSED = [
    refused(
        "{product: prod_app, prices: [app_monthly, app_yearly]}",
        "{product: prod_gone, prices: [app_monthly]}",
        "billing.yaml:29:23: portal_configurations[0].features.subscription_update.products[0]"
        ".product: product 'prod_gone' is not declared in products",
        id="unknown-product",
    ),
    refused(
        "prices: [app_monthly, app_yearly]",
        "prices: [app_monthly, app_daily]",
        "billing.yaml:29:55: portal_configurations[0].features.subscription_update.products[0]"
        ".prices[1]: 'app_daily' is not the lookup_key of a price declared in prices",
        id="unknown-price",
    ),
    refused(
        "prices: [app_monthly, app_yearly]",
        "prices: [app_monthly, other_monthly]",
        "billing.yaml:29:55: portal_configurations[0].features.subscription_update.products[0]"
        ".prices[1]: 'other_monthly' is a price of product 'prod_other', not 'prod_app'",
        id="price-of-another-product",
    ),
    refused(
        "prices: [app_monthly, app_yearly]",
        "prices: [app_setup]",
        "billing.yaml:29:42: portal_configurations[0].features.subscription_update.products[0]"
        ".prices[0]: 'app_setup' is a one-time price; the portal switches subscriptions between "
        "recurring prices",
        id="one-time-price",
    ),
    refused(
        "recurring: {interval: year}}",
        "recurring: {interval: year}, active: false}",
        "billing.yaml:29:55: portal_configurations[0].features.subscription_update.products[0]"
        ".prices[1]: 'app_yearly' is declared archived; the portal offers active prices",
        id="archived-price",
    ),
    refused(
        "        products:\n          - {product: prod_app, prices: [app_monthly, app_yearly]}\n",
        "",
        "billing.yaml:25:9: portal_configurations[0].features.subscription_update: enabled "
        "subscription updates need products to switch between",
        id="switching-without-products",
    ),
    refused(
        "        default_allowed_updates: [price]\n",
        "",
        "billing.yaml:25:9: portal_configurations[0].features.subscription_update: enabled "
        "subscription updates need default_allowed_updates",
        id="switching-without-allowed-updates",
    ),
    refused(
        "{product: prod_app, prices: [app_monthly, app_yearly]}",
        "{product: prod_app, prices: [app_monthly]}\n"
        "          - {product: prod_app, prices: [app_yearly]}",
        "billing.yaml:30:23: portal_configurations[0].features.subscription_update.products[1]"
        ".product: product 'prod_app' is offered twice (also products[0])",
        id="product-twice",
    ),
    refused(
        "  - {id: prod_other, name: Other}\n",
        "  - {id: prod_other, name: Other, active: false}\n",
        "{product: prod_app, prices: [app_monthly, app_yearly]}",
        "{product: prod_other, prices: [other_monthly]}",
        "billing.yaml:29:23: portal_configurations[0].features.subscription_update.products[0]"
        ".product: product 'prod_other' is declared inactive",
        id="inactive-product",
    ),
    refused(
        "        mode: immediately\n",
        "",
        "billing.yaml:21:29: portal_configurations[0].features.subscription_cancel"
        ".proration_behavior: create_prorations needs mode: immediately (Stripe prorates only "
        "a cancellation made at once)",
        id="prorated-cancel-at-period-end",
    ),
    refused(
        "        proration_behavior: create_prorations\n        products:",
        "        proration_behavior: sometimes\n        products:",
        "billing.yaml:27:29: portal_configurations[0].features.subscription_update"
        ".proration_behavior: must be one of none, create_prorations, always_invoice, "
        "not 'sometimes'",
        id="schema",
    ),
    refused(
        "    metadata: {team: growth}\n",
        "    metadata: {managed_by: me}\n",
        "billing.yaml:30:16: portal_configurations[0].metadata.managed_by: 'managed_by' is "
        "reserved: stripe-reconcile sets it on what it manages",
        id="reserved-metadata",
    ),
]


@pytest.mark.parametrize("edits", REFUSED)
def test_validate_refuses_what_a_configuration_cannot_offer(edits: tuple[str, ...]) -> None:
    *pairs, expected = edits
    text = DOC
    for old, new in zip(pairs[::2], pairs[1::2], strict=True):
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(ConfigErrors) as caught:
        load_text(text, "billing.yaml")
    assert expected in [str(error) for error in caught.value.errors]


def test_duplicate_names_are_refused_by_validate(tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(
        DOC + "  - name: Self-serve\n    features: {invoice_history: {enabled: true}}\n",
        encoding="utf-8",
    )
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    assert (
        f"{config}:31:11: portal_configurations[1].name: duplicate portal configuration name "
        "'Self-serve' (also portal_configurations[0])"
    ) in result.stderr + result.stdout


def test_import_writes_named_active_configurations_and_the_plan_is_empty(
    emulator: Emulator, tmp_path: Path
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(DOC, gateway).has_changes
    gateway.post(PATH, {"features": {"invoice_history": {"enabled": True}}})  # no name
    retired = gateway.post(
        PATH, {"name": "Retired", "features": {"invoice_history": {"enabled": True}}}
    )
    gateway.post(f"{PATH}/{retired['id']}", {"active": False})
    gateway.post(
        PATH,
        {
            "name": "Agency",
            "features": {"payment_method_update": {"enabled": True}},
            "login_page": {"enabled": True},
        },
    )
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = load_text(out.read_text(encoding="utf-8"), str(out))
    assert [c.name for c in imported.portal_configurations] == ["Agency", "Self-serve"]
    (_, serve) = imported.portal_configurations
    assert serve.products == (("prod_app", ("app_monthly", "app_yearly")),)
    again = stripe_reconcile("plan", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout


def test_import_leaves_out_a_configuration_offering_a_price_without_a_lookup_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(CATALOG, gateway).has_changes
    bare = gateway.post(
        "/v1/prices",
        {
            "product": "prod_app",
            "currency": "usd",
            "unit_amount": 1,
            "recurring": {"interval": "day"},
        },
    )
    made = gateway.post(
        PATH,
        {
            "name": "Daily",
            "features": {
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "products": [{"product": "prod_app", "prices": [bare["id"]]}],
                }
            },
        },
    )
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "portal_configurations" not in load_text(text, str(out)).to_dict()
    assert (
        f"portal configuration Daily ({made['id']}): offers {bare['id']} without a lookup key"
    ) in text
