"""Coupons, a kind Stripe retires only by deleting: declared, planned, applied, changed in
place, deleted and created again under the same id, deleted, imported, drift-checked,
resumed after a crash between the delete and the create, and applied twice at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.errors import ApplyError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.plan import Action, Plan
from reconciler.planfile import load_plan, resolve_saved_plan
from reconciler.render import render_text
from tests.e2e.conftest import API_KEY, converge, plan_of, stripe_reconcile
from tests.e2e.test_concurrent_applies import SLOW, applies_at, assert_all_succeeded

BASE = """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video}
coupons:
"""
SPRING = (
    "  - {id: SPRING25, name: Spring, percent_off: 25, duration: repeating, "
    "duration_in_months: 3, redeem_by: '2030-06-30T23:59:59Z', "
    "applies_to: {products: [prod_video]}, metadata: {campaign: spring}}\n"
)
FIVE = (
    "  - {id: FIVE, amount_off: 500, currency: usd, currency_options: {eur: {amount_off: 450}}, "
    "duration: forever, max_redemptions: 100}\n"
)
COUPONS = BASE + SPRING + FIVE
EXPANDED = {"expand": ["applies_to", "currency_options"]}


def actions(plan: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.changes if c.address.startswith("coupon.")}


def coupon(gateway: Gateway, coupon_id: str) -> dict[str, Any]:
    found: dict[str, Any] = gateway.get(f"/v1/coupons/{coupon_id}", EXPANDED)
    return found


def test_coupons_are_created_as_declared_and_then_match(gateway: Gateway) -> None:
    _, first = plan_of(COUPONS, gateway)
    assert actions(first) == {"coupon.SPRING25": Action.CREATE, "coupon.FIVE": Action.CREATE}
    assert not converge(COUPONS, gateway).has_changes
    spring = coupon(gateway, "SPRING25")
    assert (spring["percent_off"], spring["duration"], spring["duration_in_months"]) == (
        25,
        "repeating",
        3,
    )
    assert spring["redeem_by"] == 1909094399  # 2030-06-30T23:59:59Z
    assert spring["applies_to"] == {"products": ["prod_video"]}
    assert spring["metadata"] == {"campaign": "spring", "managed_by": "stripe-reconcile"}
    five = coupon(gateway, "FIVE")
    assert (five["amount_off"], five["currency"], five["max_redemptions"]) == (500, "usd", 100)
    assert five["currency_options"] == {"usd": {"amount_off": 500}, "eur": {"amount_off": 450}}


def test_name_metadata_and_currencies_change_in_place(gateway: Gateway) -> None:
    assert not converge(COUPONS, gateway).has_changes
    changed = COUPONS.replace("name: Spring,", "name: Spring sale,").replace(
        "{eur: {amount_off: 450}}", "{eur: {amount_off: 450}, gbp: {amount_off: 400}}"
    )
    _, plan = plan_of(changed, gateway)
    assert actions(plan) == {"coupon.SPRING25": Action.UPDATE, "coupon.FIVE": Action.UPDATE}
    assert not converge(changed, gateway).has_changes
    assert coupon(gateway, "SPRING25")["name"] == "Spring sale"
    assert coupon(gateway, "FIVE")["currency_options"]["gbp"] == {"amount_off": 400}


def test_a_fixed_field_deletes_the_coupon_and_creates_it_again(gateway: Gateway) -> None:
    assert not converge(COUPONS, gateway).has_changes
    changed = COUPONS.replace("percent_off: 25", "percent_off: 30")
    _, plan = plan_of(changed, gateway)
    change = next(c for c in plan.actionable if c.address == "coupon.SPRING25")
    assert change.action is Action.REPLACE and change.irreversible
    assert change.reason.splitlines()[0] == "fixed at creation: percent_off"
    assert "redemption count restarts" in change.reason
    shown = stripe_plan_text(changed, gateway)
    assert "! destructive: deletes the coupon, then creates it again under the same id" in shown
    assert not converge(changed, gateway).has_changes
    again = coupon(gateway, "SPRING25")
    assert (again["percent_off"], again["times_redeemed"]) == (30, 0)
    assert again["applies_to"] == {"products": ["prod_video"]}
    # Taking a currency option away is no update either.
    fewer = changed.replace(", currency_options: {eur: {amount_off: 450}}", "")
    assert actions(plan_of(fewer, gateway)[1])["coupon.FIVE"] is Action.REPLACE
    assert not converge(fewer, gateway).has_changes
    assert coupon(gateway, "FIVE")["currency_options"] == {"usd": {"amount_off": 500}}


def stripe_plan_text(text: str, gateway: Gateway) -> str:
    """What ``plan`` prints for this billing.yaml."""
    return render_text(plan_of(text, gateway)[1], color=False)


def test_active_false_deletes_a_coupon_and_an_absent_one_stays_absent(gateway: Gateway) -> None:
    assert not converge(COUPONS, gateway).has_changes
    retired = COUPONS.replace("{id: FIVE,", "{id: FIVE, active: false,")
    _, plan = plan_of(retired, gateway)
    change = next(c for c in plan.actionable if c.address == "coupon.FIVE")
    assert (change.action, change.irreversible) == (Action.DELETE, True)
    assert plan.summary().endswith("1 to delete")
    assert plan.to_json()["summary"]["delete"] == 1
    assert not converge(retired, gateway).has_changes
    assert [c["id"] for c in gateway.list_all("/v1/coupons")] == ["SPRING25"]
    _, after = plan_of(retired, gateway)
    noop = next(c for c in after.changes if c.address == "coupon.FIVE")
    assert (noop.action, noop.reason) == (Action.NOOP, "declared inactive and absent")
    # Declared active again: created anew under the freed id.
    assert actions(plan_of(COUPONS, gateway)[1])["coupon.FIVE"] is Action.CREATE
    assert not converge(COUPONS, gateway).has_changes


def test_an_undeclared_coupon_is_unmanaged_and_a_declared_one_adopted(gateway: Gateway) -> None:
    gateway.post("/v1/coupons", {"id": "HANDMADE", "percent_off": 15, "duration": "once"})
    _, plan = plan_of(COUPONS, gateway)
    assert "coupon.HANDMADE" in plan.unmanaged
    assert not converge(COUPONS, gateway).has_changes
    assert coupon(gateway, "HANDMADE")["percent_off"] == 15  # never touched
    adopted = COUPONS + "  - {id: HANDMADE, name: Hand made, percent_off: 15}\n"
    change = next(c for c in plan_of(adopted, gateway)[1].changes if c.address.endswith("MADE"))
    assert change.action is Action.UPDATE
    assert "adopted" in change.reason


def test_drift_behind_the_tools_back_shows_in_the_plan(gateway: Gateway) -> None:
    assert not converge(COUPONS, gateway).has_changes
    gateway.post("/v1/coupons/SPRING25", {"name": "Renamed in the dashboard"})
    gateway.delete("/v1/coupons/FIVE")
    _, plan = plan_of(COUPONS, gateway)
    renamed = next(c for c in plan.actionable if c.address == "coupon.SPRING25")
    assert (renamed.action, [c.field for c in renamed.changes]) == (Action.UPDATE, ["name"])
    assert actions(plan)["coupon.FIVE"] is Action.CREATE
    assert not converge(COUPONS, gateway).has_changes


def test_a_refused_create_names_the_billing_yaml_field(emulator: Emulator, tmp_path: Path) -> None:
    """A currency Stripe does not support is refused at apply: the error says which field
    to change, and the coupon is not there."""
    config = tmp_path / "billing.yaml"
    config.write_text(COUPONS.replace("currency: usd", "currency: xyz"))
    result = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert result.returncode == 1
    assert "apply stopped at coupon.FIVE: create" in result.stderr
    assert f"{config}:7:43: coupons[1].currency: the field Stripe refused (currency)" in (
        result.stderr
    )
    listed = Gateway(API_KEY, api_base=emulator.url).list_all("/v1/coupons")
    assert "FIVE" not in [c["id"] for c in listed]


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            "  - {id: BOTH, percent_off: 25, amount_off: 5, currency: usd}\n",
            "6:45: coupons[0].amount_off: give percent_off or amount_off, not both",
        ),
        (
            "  - {id: NOCUR, amount_off: 500}\n",
            "6:29: coupons[0].amount_off: needs currency: the currency the amount is taken off in",
        ),
        (
            "  - {id: NOAMOUNT, percent_off: 5, currency: usd}\n",
            "6:46: coupons[0].currency: only goes with amount_off",
        ),
        (
            "  - {id: MONTHS, percent_off: 5, duration_in_months: 3}\n",
            "6:54: coupons[0].duration_in_months: only goes with duration: repeating "
            "(this coupon is 'once')",
        ),
        (
            "  - {id: REP, percent_off: 5, duration: repeating}\n",
            "6:41: coupons[0].duration: repeating needs duration_in_months",
        ),
        (
            "  - {id: NOPROD, percent_off: 5, applies_to: {products: [prod_nope]}}\n",
            "6:58: coupons[0].applies_to.products[0]: product 'prod_nope' is not declared in "
            "products",
        ),
        (
            "  - {id: BADTIME, percent_off: 5, redeem_by: '2030-02-30T00:00:00Z'}\n",
            "6:46: coupons[0].redeem_by: '2030-02-30T00:00:00Z' is not a real time",
        ),
        (
            "  - {id: NOZONE, percent_off: 5, redeem_by: '2030-02-28T00:00:00'}\n",
            "6:45: coupons[0].redeem_by: must be an RFC 3339 time with a time zone, such as "
            "2026-06-30T23:59:59Z, not '2030-02-28T00:00:00'",
        ),
        (
            "  - {id: OWN, amount_off: 5, currency: usd, "
            "currency_options: {usd: {amount_off: 4}}}\n",
            "6:64: coupons[0].currency_options.usd: 'usd' is the coupon's own currency (its "
            "amount is amount_off)",
        ),
        (
            "  - {id: MARKED, percent_off: 5, metadata: {managed_by: me}}\n",
            "6:45: coupons[0].metadata.managed_by: 'managed_by' is reserved: stripe-reconcile "
            "sets it on what it manages",
        ),
        (
            "  - {id: TWICE, percent_off: 5}\n  - {id: TWICE, percent_off: 6}\n",
            "7:10: coupons[1].id: duplicate coupon id 'TWICE' (also coupons[0])",
        ),
        (
            "  - {id: RETIRED, percent_off: 5, applies_to: {products: [prod_old]}}\n",
            "7:59: coupons[0].applies_to.products[0]: an active coupon cannot apply to product "
            "'prod_old', which is declared inactive",
        ),
        (
            "  - {id: NOTHING, duration: once}\n",
            "6:5: coupons[0]: needs percent_off or amount_off (with currency)",
        ),
    ],
)
def test_validate_refuses_what_stripe_would(tmp_path: Path, entry: str, error: str) -> None:
    config = tmp_path / "billing.yaml"
    retired = "  - {id: prod_old, name: Old, active: false}\n" if "prod_old" in entry else ""
    config.write_text(BASE.replace("coupons:\n", f"{retired}coupons:\n") + entry, encoding="utf-8")
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    assert f"{config}:{error}" in result.stderr + result.stdout


def test_import_writes_every_coupon_and_the_plan_is_empty(
    emulator: Emulator, tmp_path: Path
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(COUPONS, gateway).has_changes
    now = emulator.clock.now()
    emulator.clock.freeze(now)
    gateway.post("/v1/coupons", {"id": "EXPIRES", "percent_off": 5, "redeem_by": now + 60})
    gateway.post("/v1/coupons", {"id": "HANDMADE", "amount_off": 250, "currency": "eur"})
    emulator.clock.advance(120)  # EXPIRES is past its redeem_by: no longer valid
    assert coupon(gateway, "EXPIRES")["valid"] is False
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = out.read_text(encoding="utf-8")
    for coupon_id in ("SPRING25", "FIVE", "EXPIRES", "HANDMADE"):
        assert f"id: {coupon_id}" in imported
    assert "redeem_by: '2030-06-30T23:59:59Z'" in imported
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr
    emulator.clock.unfreeze()


class DeleteThenCrash:
    """A gateway that deletes, then dies before any other write (the process killed
    between a replace's delete and its create)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def delete(self, path: str, **options: Any) -> tuple[Any, bool]:
        return self.gateway.delete(path, **options)

    def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
        raise StripeCallError("connection lost", method="post", path=path)


def test_a_crash_between_delete_and_create_converges_and_the_saved_plan_still_applies(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    assert not converge(COUPONS, gateway).has_changes
    changed = COUPONS.replace("percent_off: 25", "percent_off: 30")
    config = tmp_path / "billing.yaml"
    config.write_text(changed, encoding="utf-8")
    saved_file = tmp_path / "plan.json"
    made = stripe_reconcile("plan", "-f", str(config), "--out", str(saved_file), url=emulator.url)
    assert made.returncode == 0, made.stderr
    saved = load_plan(saved_file)
    snapshot = read_snapshot(gateway, load_text(changed))
    with pytest.raises(ApplyError):
        apply_plan(saved, snapshot, DeleteThenCrash(gateway), concurrency=1)  # type: ignore[arg-type]
    assert [c["id"] for c in gateway.list_all("/v1/coupons")] == ["FIVE"]
    # The next plan creates it (converges) ...
    now, fresh = plan_of(changed, gateway)
    assert actions(fresh)["coupon.SPRING25"] is Action.CREATE
    # ... and the saved plan is still accepted: its create is the replace's tail.
    rest = resolve_saved_plan(saved, load_text(changed), now)
    assert actions(rest)["coupon.SPRING25"] is Action.CREATE
    result = stripe_reconcile("apply", str(saved_file), "-f", str(config), url=emulator.url)
    assert result.returncode == 0, result.stderr
    assert coupon(gateway, "SPRING25")["percent_off"] == 30
    assert not plan_of(changed, gateway)[1].has_changes


@pytest.mark.parametrize("offsets", [(0.0, 0.3), (0.0, 0.05)])
def test_two_applies_at_once_replace_a_coupon_once(
    emulator: Emulator, tmp_path: Path, offsets: tuple[float, ...]
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(COUPONS, gateway).has_changes
    config = tmp_path / "billing.yaml"
    config.write_text(COUPONS.replace("percent_off: 25", "percent_off: 30"), encoding="utf-8")
    emulator.set_faults(SLOW)
    assert_all_succeeded(applies_at(emulator, config, offsets))
    emulator.set_faults(None)
    listed = [(c["id"], c["percent_off"]) for c in gateway.list_all("/v1/coupons")]
    assert sorted(listed) == [("FIVE", None), ("SPRING25", 30)]
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(config), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_plan_file_with_a_delete_round_trips(gateway: Gateway, tmp_path: Path) -> None:
    assert not converge(COUPONS, gateway).has_changes
    retired = COUPONS.replace("{id: FIVE,", "{id: FIVE, active: false,")
    _, plan = plan_of(retired, gateway)
    path = tmp_path / "plan.json"
    path.write_text(plan.dumps(), encoding="utf-8")
    assert load_plan(path) == plan
    assert json.loads(path.read_text())["summary"]["delete"] == 1
