"""A price's tax behavior, its amounts in other currencies and pay what you want:
declared, planned (in place where Stripe's update takes the change, else replaced),
applied, refused at validate, imported and drift-checked against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.plan import Action
from reconciler.render import render_text
from reconciler.writes import plan_steps
from tests.e2e.conftest import change_at, converge, plan_of, stripe_reconcile

CATALOG = """\
version: 1
mode: test
products:
  - {id: prod_pro, name: Pro}
  - {id: prod_credits, name: Credits}
prices:
  - lookup_key: pro_monthly
    product: prod_pro
    currency: usd
    unit_amount: 4900
    recurring: {interval: month}
    tax_behavior: exclusive
    currency_options:
      eur: {unit_amount: 4500}
      gbp: {unit_amount: 3900, tax_behavior: inclusive}
  - lookup_key: pro_seats
    product: prod_pro
    currency: usd
    recurring: {interval: month}
    tiers_mode: volume
    tiers:
      - {up_to: 10, unit_amount: 1000}
      - {up_to: inf, unit_amount: 800}
    currency_options:
      eur:
        tiers:
          - {up_to: 10, unit_amount: 900}
          - {up_to: inf, unit_amount: 700}
  # A credit top-up: the customer chooses how much, $5 to $1,000, $20 to start.
  - lookup_key: credits_top_up
    product: prod_credits
    currency: usd
    nickname: Credit top-up
    custom_unit_amount: {minimum: 500, maximum: 100000, preset: 2000}
    currency_options:
      eur: {custom_unit_amount: {minimum: 500, preset: 2000}}
"""


def prices(gateway: Gateway) -> list[dict[str, Any]]:
    """Every price, as Stripe returns it with its includable fields."""
    query = {"expand": ["data.tiers", "data.currency_options"]}
    return list(gateway.list_all("/v1/prices", query))


def price_by_key(gateway: Gateway, lookup_key: str) -> dict[str, Any]:
    return next(p for p in prices(gateway) if p.get("lookup_key") == lookup_key)


def test_each_field_converges_from_an_empty_account(emulator: Emulator, gateway: Gateway) -> None:
    _, first = plan_of(CATALOG, gateway)
    assert {c.address: c.action for c in first.changes if c.kind == "price"} == {
        "price.pro_monthly": Action.CREATE,
        "price.pro_seats": Action.CREATE,
        "price.credits_top_up": Action.CREATE,
    }
    assert not converge(CATALOG, gateway).has_changes

    monthly = price_by_key(gateway, "pro_monthly")
    assert monthly["tax_behavior"] == "exclusive"
    options = monthly["currency_options"]
    assert (options["eur"]["unit_amount"], options["eur"]["tax_behavior"]) == (4500, "unspecified")
    assert (options["gbp"]["unit_amount"], options["gbp"]["tax_behavior"]) == (3900, "inclusive")
    seats = price_by_key(gateway, "pro_seats")
    assert [t["unit_amount"] for t in seats["currency_options"]["eur"]["tiers"]] == [900, 700]
    top_up = price_by_key(gateway, "credits_top_up")
    assert top_up["type"] == "one_time" and top_up["unit_amount"] is None
    assert top_up["custom_unit_amount"] == {"minimum": 500, "maximum": 100000, "preset": 2000}
    assert top_up["currency_options"]["eur"]["custom_unit_amount"] == {
        "minimum": 500,
        "maximum": None,
        "preset": 2000,
    }


@pytest.mark.parametrize(
    ("old", "new", "address", "fields"),
    [
        (
            "eur: {unit_amount: 4500}",
            "eur: {unit_amount: 4700}",
            "price.pro_monthly",
            ["currency_options.eur.unit_amount"],
        ),
        (
            "      gbp: {unit_amount: 3900, tax_behavior: inclusive}\n",
            "      gbp: {unit_amount: 3900, tax_behavior: inclusive}\n"
            "      jpy: {unit_amount: 7000}\n",
            "price.pro_monthly",
            ["currency_options.jpy"],
        ),
        (
            "    currency_options:\n"
            "      eur: {unit_amount: 4500}\n"
            "      gbp: {unit_amount: 3900, tax_behavior: inclusive}\n",
            "",
            "price.pro_monthly",
            ["currency_options"],
        ),
        (
            "{up_to: inf, unit_amount: 700}",
            "{up_to: inf, unit_amount: 650}",
            "price.pro_seats",
            ["currency_options.eur.tiers[1].unit_amount"],
        ),
        (
            "nickname: Credit top-up\n",
            "nickname: Credit top-up\n    tax_behavior: inclusive\n",
            "price.credits_top_up",
            ["tax_behavior"],
        ),
        (
            "eur: {custom_unit_amount: {minimum: 500, preset: 2000}}",
            "eur: {custom_unit_amount: {minimum: 500, preset: 2500}}",
            "price.credits_top_up",
            ["currency_options.eur.custom_unit_amount.preset"],
        ),
    ],
    ids=[
        "currency-amount",
        "currency-added",
        "currencies-cleared",
        "currency-tier",
        "tax-behavior-from-unspecified",
        "currency-bounds",
    ],
)
def test_what_stripe_updates_changes_in_place(
    emulator: Emulator, gateway: Gateway, *, old: str, new: str, address: str, fields: list[str]
) -> None:
    assert not converge(CATALOG, gateway).has_changes
    key = address.removeprefix("price.")
    before = price_by_key(gateway, key)["id"]
    edited = CATALOG.replace(old, new)
    assert edited != CATALOG
    _, plan = plan_of(edited, gateway)
    change = change_at(plan, address)
    assert (change.action, [c.field for c in change.changes]) == (Action.UPDATE, fields)
    assert not converge(edited, gateway).has_changes
    assert price_by_key(gateway, key)["id"] == before
    assert len(prices(gateway)) == 3


def test_removing_every_currency_clears_them_with_one_update(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(CATALOG, gateway).has_changes
    edited = CATALOG.replace(
        "    currency_options:\n"
        "      eur: {unit_amount: 4500}\n"
        "      gbp: {unit_amount: 3900, tax_behavior: inclusive}\n",
        "",
    )
    _, plan = plan_of(edited, gateway)
    [step] = [s for s in plan_steps(plan) if s.address == "price.pro_monthly"]
    assert step.name == "update"
    assert not converge(edited, gateway).has_changes
    assert set(price_by_key(gateway, "pro_monthly")["currency_options"]) == {"usd"}


@pytest.mark.parametrize(
    ("old", "new", "address", "reason"),
    [
        (
            "    tax_behavior: exclusive\n",
            "    tax_behavior: inclusive\n",
            "price.pro_monthly",
            "tax behavior is set once (Stripe changes it only from unspecified): tax_behavior",
        ),
        (
            "gbp: {unit_amount: 3900, tax_behavior: inclusive}",
            "gbp: {unit_amount: 3900, tax_behavior: exclusive}",
            "price.pro_monthly",
            "tax behavior is set once (Stripe changes it only from unspecified): "
            "currency_options.gbp.tax_behavior",
        ),
        (
            "      gbp: {unit_amount: 3900, tax_behavior: inclusive}\n",
            "",
            "price.pro_monthly",
            "a currency removed while others stay: currency_options.gbp",
        ),
        (
            "custom_unit_amount: {minimum: 500, maximum: 100000, preset: 2000}",
            "custom_unit_amount: {minimum: 1000, maximum: 100000, preset: 2000}",
            "price.credits_top_up",
            "fixed at creation: custom_unit_amount.minimum",
        ),
    ],
    ids=["tax-behavior-set", "currency-tax-behavior-set", "one-currency-removed", "bounds"],
)
def test_what_stripe_cannot_update_replaces_the_price(
    emulator: Emulator, gateway: Gateway, *, old: str, new: str, address: str, reason: str
) -> None:
    assert not converge(CATALOG, gateway).has_changes
    key = address.removeprefix("price.")
    before = price_by_key(gateway, key)["id"]
    edited = CATALOG.replace(old, new)
    assert edited != CATALOG
    _, plan = plan_of(edited, gateway)
    change = change_at(plan, address)
    assert (change.action, change.reason) == (Action.REPLACE, reason)
    assert "# forces replacement" in render_text(plan, color=False)
    assert not converge(edited, gateway).has_changes
    now = price_by_key(gateway, key)
    assert now["id"] != before
    old_price = next(p for p in prices(gateway) if p["id"] == before)
    assert (old_price["active"], old_price["lookup_key"]) == (False, None)


def test_a_tax_behavior_left_out_is_not_managed(emulator: Emulator, gateway: Gateway) -> None:
    """Set in the Dashboard, it is neither undone nor lost when the price is replaced."""
    assert not converge(CATALOG, gateway).has_changes
    top_up = price_by_key(gateway, "credits_top_up")
    gateway.post(f"/v1/prices/{top_up['id']}", {"tax_behavior": "inclusive"})
    whole = {"custom_unit_amount": {"enabled": True, "minimum": 500, "preset": 2000}}
    gateway.post(
        f"/v1/prices/{top_up['id']}",
        {"currency_options": {"eur": {**whole, "tax_behavior": "inclusive"}}},
    )
    assert not plan_of(CATALOG, gateway)[1].has_changes

    raised = CATALOG.replace("maximum: 100000", "maximum: 200000")
    _, plan = plan_of(raised, gateway)
    change = change_at(plan, "price.credits_top_up")
    assert change.action is Action.REPLACE
    assert not converge(raised, gateway).has_changes
    replaced = price_by_key(gateway, "credits_top_up")
    assert replaced["id"] != top_up["id"]
    assert replaced["tax_behavior"] == "inclusive"
    assert replaced["currency_options"]["eur"]["tax_behavior"] == "inclusive"


def test_changes_made_behind_its_back_show_in_the_plan(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(CATALOG, gateway).has_changes
    monthly = price_by_key(gateway, "pro_monthly")
    gateway.post(
        f"/v1/prices/{monthly['id']}", {"currency_options": {"eur": {"unit_amount": 9900}}}
    )
    _, plan = plan_of(CATALOG, gateway)
    change = change_at(plan, "price.pro_monthly")
    assert change.action is Action.UPDATE
    assert [(c.field, c.before, c.after) for c in change.changes] == [
        ("currency_options.eur.unit_amount", "9900", "4500")
    ]
    assert "(€99.00 -> €45.00)" in render_text(plan, color=False)
    assert not converge(CATALOG, gateway).has_changes

    top_up = price_by_key(gateway, "credits_top_up")
    gateway.post(
        f"/v1/prices/{top_up['id']}",
        {"currency_options": {"jpy": {"custom_unit_amount": {"enabled": True, "minimum": 100}}}},
    )
    _, plan = plan_of(CATALOG, gateway)
    change = change_at(plan, "price.credits_top_up")
    assert (change.action, change.reason) == (
        Action.REPLACE,
        "a currency removed while others stay: currency_options.jpy",
    )
    assert "¥100" in render_text(plan, color=False)
    assert not converge(CATALOG, gateway).has_changes


def test_bad_combinations_are_refused_at_validate(tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(
        """\
version: 1
mode: test
products:
  - {id: prod_credits, name: Credits}
prices:
  - lookup_key: monthly_top_up
    product: prod_credits
    currency: usd
    recurring: {interval: month}
    custom_unit_amount: {minimum: 500}
  - lookup_key: top_up
    product: prod_credits
    currency: usd
    unit_amount: 1000
    custom_unit_amount: {minimum: 500}
  - lookup_key: pack
    product: prod_credits
    currency: usd
    unit_amount: 1000
    currency_options:
      usd: {unit_amount: 1000}
  - lookup_key: pack_eu
    product: prod_credits
    currency: usd
    unit_amount: 1000
    currency_options:
      Euro: {unit_amount: 900}
""",
        encoding="utf-8",
    )
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    output = result.stderr + result.stdout
    assert (
        f"{config}:10:25: prices[0].custom_unit_amount: pay what you want is only for one-time "
        "prices: Stripe refuses it on a recurring price (remove recurring, or give unit_amount "
        "instead)"
    ) in output
    assert (
        f"{config}:15:25: prices[1].custom_unit_amount: give only one of unit_amount and "
        "custom_unit_amount"
    ) in output
    assert (
        f"{config}:21:7: prices[2].currency_options.usd: repeats the price's own currency (usd); "
        "currency_options holds the amounts in other currencies"
    ) in output
    assert (
        f"{config}:27:7: prices[3].currency_options.Euro: currency options are keyed by a "
        "three-letter lower-case currency code such as eur"
    ) in output


def test_import_writes_them_and_the_plan_is_empty(emulator: Emulator, tmp_path: Path) -> None:
    gateway = Gateway("sk_test_e2e_0123456789", api_base=emulator.url, max_retries=0)
    assert not converge(CATALOG, gateway).has_changes
    # Made in the Dashboard.
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_pro",
            "currency": "usd",
            "unit_amount_decimal": "0.5",
            "lookup_key": "pro_yearly",
            "recurring": {"interval": "year"},
            "tax_behavior": "inclusive",
            "currency_options": {
                "eur": {"unit_amount_decimal": "0.45", "tax_behavior": "inclusive"},
                "jpy": {"unit_amount": 80},
            },
        },
    )
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_credits",
            "currency": "eur",
            "lookup_key": "credits_top_up_eu",
            "custom_unit_amount": {"enabled": True},
            "currency_options": {"usd": {"custom_unit_amount": {"enabled": True, "maximum": 9000}}},
        },
    )
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = out.read_text(encoding="utf-8")
    assert "uses custom_unit_amount" not in imported
    assert "tax_behavior: inclusive" in imported
    assert "unit_amount_decimal: '0.45'" in imported
    assert "custom_unit_amount: {}" in imported
    again = stripe_reconcile("plan", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout
