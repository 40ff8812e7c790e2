"""Promotion codes, for declared coupons: created, changed in place, made anew when a
fixed field or their coupon changes, deactivated, imported and drift-checked; resumed
after a crash between a replace's writes, and applied twice at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.emulator import Emulator
from reconciler.errors import ApplyError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.model import Moment
from reconciler.plan import INVALID_COUPON_REASON, Action, ActionReason, Plan
from reconciler.planfile import load_plan, resolve_saved_plan
from tests.e2e.conftest import API_KEY, stripe_reconcile
from tests.e2e.test_concurrent_applies import SLOW, applies_at, assert_all_succeeded
from tests.e2e.test_coupons import converge, plan_of

BASE = """\
version: 1
mode: test
coupons:
  - {id: SPRING25, percent_off: 25, duration: forever, max_redemptions: 50}
  - {id: FIVE, amount_off: 500, currency: usd}
promotion_codes:
"""
SPRING = (
    "  - {code: SPRING, coupon: SPRING25, max_redemptions: 20, "
    "expires_at: '2030-01-01T00:00:00Z', metadata: {channel: blog}, "
    "restrictions: {first_time_transaction: true, minimum_amount: 1000, "
    "minimum_amount_currency: usd}}\n"
)
FIVE = "  - {code: five-off, coupon: FIVE}\n"
CODES = BASE + SPRING + FIVE


def actions(plan: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.changes if c.address.startswith("promotion_code.")}


def codes(gateway: Gateway, code: str) -> list[dict[str, Any]]:
    """Every code object with this code, newest first."""
    found = gateway.list_all("/v1/promotion_codes", {"code": code})
    return sorted(found, key=lambda c: c["created"], reverse=True)


def active_code(gateway: Gateway, code: str) -> dict[str, Any]:
    (found,) = [c for c in codes(gateway, code) if c["active"]]
    return found


def test_codes_are_created_as_declared_and_then_match(gateway: Gateway) -> None:
    _, first = plan_of(CODES, gateway)
    assert actions(first) == {
        "promotion_code.SPRING": Action.CREATE,
        "promotion_code.five-off": Action.CREATE,
    }
    assert not converge(CODES, gateway).has_changes
    spring = active_code(gateway, "SPRING")
    assert spring["promotion"] == {"type": "coupon", "coupon": "SPRING25"}
    assert (spring["max_redemptions"], spring["expires_at"]) == (20, 1893456000)
    assert spring["restrictions"] == {
        "first_time_transaction": True,
        "minimum_amount": 1000,
        "minimum_amount_currency": "usd",
    }
    assert spring["metadata"] == {"channel": "blog", "managed_by": "stripe-reconcile"}
    assert active_code(gateway, "five-off")["promotion"]["coupon"] == "FIVE"


def test_metadata_changes_in_place_and_a_fixed_field_makes_a_new_code(gateway: Gateway) -> None:
    assert not converge(CODES, gateway).has_changes
    first = active_code(gateway, "SPRING")["id"]
    renamed = CODES.replace("channel: blog", "channel: news")
    assert actions(plan_of(renamed, gateway)[1])["promotion_code.SPRING"] is Action.UPDATE
    assert not converge(renamed, gateway).has_changes
    assert active_code(gateway, "SPRING")["id"] == first

    more = renamed.replace("max_redemptions: 20", "max_redemptions: 30")
    change = next(c for c in plan_of(more, gateway)[1].actionable if c.address.endswith("SPRING"))
    assert (change.action, change.reason.splitlines()[0]) == (
        Action.REPLACE,
        "fixed at creation: max_redemptions",
    )
    assert not converge(more, gateway).has_changes
    assert [(c["active"], c["max_redemptions"]) for c in codes(gateway, "SPRING")] == [
        (True, 30),
        (False, 20),
    ]


def test_active_false_deactivates_and_an_absent_code_stays_absent(gateway: Gateway) -> None:
    assert not converge(CODES, gateway).has_changes
    retired = CODES.replace("{code: five-off,", "{code: five-off, active: false,")
    assert actions(plan_of(retired, gateway)[1])["promotion_code.five-off"] is Action.DEACTIVATE
    assert not converge(retired, gateway).has_changes
    assert [c["active"] for c in codes(gateway, "five-off")] == [False]
    never = BASE + "  - {code: NEVER, coupon: FIVE, active: false}\n"
    noop = next(c for c in plan_of(never, gateway)[1].changes if c.address.endswith("NEVER"))
    assert (noop.action, noop.reason) == (Action.NOOP, "declared inactive and absent")


def test_a_coupon_made_anew_brings_new_codes_in_the_same_plan(gateway: Gateway) -> None:
    assert not converge(CODES, gateway).has_changes
    old = active_code(gateway, "SPRING")["id"]
    changed = CODES.replace("percent_off: 25", "percent_off: 30")
    _, plan = plan_of(changed, gateway)
    assert actions(plan)["promotion_code.SPRING"] is Action.REPLACE
    assert actions(plan)["promotion_code.five-off"] is Action.NOOP  # its coupon is kept
    reason = next(c.reason for c in plan.actionable if c.address.endswith("SPRING"))
    assert reason.startswith("its coupon SPRING25 is created anew by this plan")
    assert not converge(changed, gateway).has_changes
    new = active_code(gateway, "SPRING")
    assert new["id"] != old and new["promotion"]["coupon"] == "SPRING25"
    # The old code belongs to the deleted coupon: inactive, and it stays so.
    assert gateway.get(f"/v1/promotion_codes/{old}")["active"] is False


def test_drift_behind_the_tools_back_shows_in_the_plan(gateway: Gateway) -> None:
    assert not converge(CODES, gateway).has_changes
    spring = active_code(gateway, "SPRING")
    gateway.post(f"/v1/promotion_codes/{spring['id']}", {"metadata": {"channel": "ads"}})
    five = active_code(gateway, "five-off")
    gateway.post(f"/v1/promotion_codes/{five['id']}", {"active": False})
    _, plan = plan_of(CODES, gateway)
    changed = {c.address: c for c in plan.actionable}
    assert changed["promotion_code.SPRING"].action is Action.UPDATE
    remade = changed["promotion_code.five-off"]
    assert remade.action is Action.REPLACE
    assert remade.reason.startswith("inactive in the account")
    assert not converge(CODES, gateway).has_changes
    # A coupon deleted behind the tool's back: created again, and its codes with it.
    gateway.delete("/v1/coupons/FIVE")
    _, plan = plan_of(CODES, gateway)
    assert {c.address: c.action for c in plan.actionable} == {
        "coupon.FIVE": Action.CREATE,
        "promotion_code.five-off": Action.REPLACE,
    }
    assert not converge(CODES, gateway).has_changes


def test_a_code_of_a_coupon_no_longer_valid_is_left_alone(
    emulator: Emulator, gateway: Gateway
) -> None:
    now = emulator.clock.now()
    emulator.clock.freeze(now)
    soon = f"{BASE}  - {{code: SOON, coupon: SOON}}\n".replace(
        "coupons:\n",
        f"coupons:\n  - {{id: SOON, percent_off: 5, redeem_by: '{_text(now + 60)}'}}\n",
    )
    assert not converge(soon, gateway).has_changes
    emulator.clock.advance(120)
    _, plan = plan_of(soon, gateway)
    left = next(c for c in plan.changes if c.address == "promotion_code.SOON")
    assert (left.action, left.why) == (Action.NOOP, ActionReason.COUPON_NOT_VALID)
    assert left.reason.splitlines()[0] == INVALID_COUPON_REASON
    emulator.clock.unfreeze()


def _text(at: int) -> str:
    return Moment.of(at).text


def test_an_undeclared_code_is_unmanaged(gateway: Gateway) -> None:
    assert not converge(CODES, gateway).has_changes
    gateway.post(
        "/v1/promotion_codes", {"promotion": {"type": "coupon", "coupon": "FIVE"}, "code": "Hand"}
    )
    assert "promotion_code.Hand" in plan_of(CODES, gateway)[1].unmanaged


def test_a_refused_create_names_the_billing_yaml_field(emulator: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(BASE + "  - {code: VIP, coupon: FIVE, customer: cus_Nobody}\n")
    result = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert result.returncode == 1
    assert "apply stopped at promotion_code.VIP: create" in result.stderr
    assert f"{config}:7:41: promotion_codes[0].customer: the field Stripe refused" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            "  - {code: NOPE, coupon: MISSING}\n",
            "7:26: promotion_codes[0].coupon: coupon 'MISSING' is not declared in coupons",
        ),
        (
            "  - {code: SAME, coupon: FIVE}\n  - {code: same, coupon: FIVE}\n",
            "8:12: promotion_codes[1].code: duplicate promotion code 'same' (codes are unique "
            "regardless of case; also promotion_codes[0])",
        ),
        (
            "  - {code: MANY, coupon: SPRING25, max_redemptions: 60}\n",
            "7:53: promotion_codes[0].max_redemptions: cannot be more than coupon 'SPRING25' "
            "allows (50)",
        ),
        (
            "  - {code: MIN, coupon: FIVE, restrictions: {minimum_amount: 100}}\n",
            "7:62: promotion_codes[0].restrictions.minimum_amount: goes with "
            "minimum_amount_currency: give both or neither",
        ),
        (
            "  - {code: BAD_CODE, coupon: FIVE}\n",
            "7:12: promotion_codes[0].code: promotion codes are letters, digits and '-', at "
            "most 500 characters, not 'BAD_CODE'",
        ),
        (
            "  - {code: BADTIME, coupon: FIVE, expires_at: '2030-02-30T00:00:00Z'}\n",
            "7:47: promotion_codes[0].expires_at: '2030-02-30T00:00:00Z' is not a real time",
        ),
    ],
)
def test_validate_refuses_what_stripe_would(tmp_path: Path, entry: str, error: str) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(BASE + entry, encoding="utf-8")
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    assert f"{config}:{error}" in result.stderr + result.stdout


def test_validate_refuses_an_active_code_of_a_deleted_coupon_and_a_late_expiry(
    tmp_path: Path,
) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(
        "version: 1\nmode: test\ncoupons:\n"
        "  - {id: GONE, percent_off: 5, active: false}\n"
        "  - {id: SOON, percent_off: 5, redeem_by: '2030-01-01T00:00:00Z'}\n"
        "promotion_codes:\n"
        "  - {code: DEAD, coupon: GONE}\n"
        "  - {code: LATE, coupon: SOON, expires_at: '2031-01-01T00:00:00Z'}\n",
        encoding="utf-8",
    )
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    assert (
        f"{config}:7:26: promotion_codes[0].coupon: an active promotion code cannot redeem "
        "coupon 'GONE', which is declared inactive (deleted)"
    ) in result.stderr
    assert (
        f"{config}:8:44: promotion_codes[1].expires_at: cannot be after the redeem_by of "
        "coupon 'SOON' (2030-01-01T00:00:00Z)"
    ) in result.stderr


def test_import_writes_active_codes_and_the_plan_is_empty(
    emulator: Emulator, tmp_path: Path
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(CODES, gateway).has_changes
    made = gateway.post(
        "/v1/promotion_codes", {"promotion": {"type": "coupon", "coupon": "FIVE"}, "code": "HAND"}
    )
    gateway.post(f"/v1/promotion_codes/{made['id']}", {"active": False})
    gateway.post(
        "/v1/promotion_codes", {"promotion": {"type": "coupon", "coupon": "FIVE"}, "code": "Kept"}
    )
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = out.read_text(encoding="utf-8")
    assert "code: SPRING" in imported and "code: Kept" in imported
    assert "code: HAND" not in imported  # inactive: retired for good
    assert "expires_at: '2030-01-01T00:00:00Z'" in imported
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr


class CrashAfter:
    """A gateway whose writes (deletes included) fail after ``n``, as if the process died."""

    def __init__(self, gateway: Gateway, n: int) -> None:
        self.gateway = gateway
        self.left = n

    def _one(self, path: str) -> None:
        if self.left <= 0:
            raise StripeCallError("connection lost", method="post", path=path)
        self.left -= 1

    def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
        self._one(path)
        return self.gateway.write(path, params, **options)

    def delete(self, path: str, **options: Any) -> tuple[Any, bool]:
        self._one(path)
        return self.gateway.delete(path, **options)


@pytest.mark.parametrize(
    ("change", "crashed"),
    [
        # The code's deactivation, then the coupon's delete: the coupon is absent.
        (("percent_off: 25", "percent_off: 30"), 2),
        # The code's deactivation only: the old code is inactive, no new one yet.
        (("max_redemptions: 20", "max_redemptions: 30"), 1),
    ],
)
def test_a_crash_inside_a_replace_converges_and_the_saved_plan_still_applies(
    emulator: Emulator, gateway: Gateway, tmp_path: Path, change: tuple[str, str], crashed: int
) -> None:
    assert not converge(CODES, gateway).has_changes
    changed = CODES.replace(*change)
    config = tmp_path / "billing.yaml"
    config.write_text(changed, encoding="utf-8")
    saved_file = tmp_path / "plan.json"
    made = stripe_reconcile("plan", "-f", str(config), "--out", str(saved_file), url=emulator.url)
    assert made.returncode == 0, made.stderr
    saved = load_plan(saved_file)
    snapshot = read_snapshot(gateway, load_text(changed))
    with pytest.raises(ApplyError):
        apply_plan(saved, snapshot, CrashAfter(gateway, crashed), concurrency=1)  # type: ignore[arg-type]
    assert [c["active"] for c in codes(gateway, "SPRING")] == [False]
    now, fresh = plan_of(changed, gateway)
    assert actions(fresh)["promotion_code.SPRING"] is Action.REPLACE
    resolve_saved_plan(saved, load_text(changed), now)  # accepted: what is left of it
    result = stripe_reconcile("apply", str(saved_file), "-f", str(config), url=emulator.url)
    assert result.returncode == 0, result.stderr
    assert [c["active"] for c in codes(gateway, "SPRING")] == [True, False]
    assert not plan_of(changed, gateway)[1].has_changes


def test_a_crash_between_the_coupons_delete_and_create_keeps_the_saved_plan(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    """The code's deactivation and the coupon's delete land, nothing after them: the
    coupon's create and the code's new object are what is left of the saved plan."""
    assert not converge(CODES, gateway).has_changes
    changed = CODES.replace("percent_off: 25", "percent_off: 30")
    snapshot, saved = plan_of(changed, gateway)
    with pytest.raises(ApplyError):
        apply_plan(saved, snapshot, CrashAfter(gateway, 2), concurrency=1)  # type: ignore[arg-type]
    assert "SPRING25" not in [c["id"] for c in gateway.list_all("/v1/coupons")]
    now, _ = plan_of(changed, gateway)
    rest = resolve_saved_plan(saved, load_text(changed), now)
    assert {c.address: c.action for c in rest.actionable} == {
        "coupon.SPRING25": Action.CREATE,
        "promotion_code.SPRING": Action.REPLACE,
    }
    apply_plan(rest, now, gateway)
    assert not plan_of(changed, gateway)[1].has_changes


@pytest.mark.parametrize("offsets", [(0.0, 0.3), (0.0, 0.05)])
def test_two_applies_at_once_leave_one_active_code_on_the_new_coupon(
    emulator: Emulator, tmp_path: Path, offsets: tuple[float, ...]
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(CODES, gateway).has_changes
    config = tmp_path / "billing.yaml"
    config.write_text(CODES.replace("percent_off: 25", "percent_off: 30"), encoding="utf-8")
    emulator.set_faults(SLOW)
    assert_all_succeeded(applies_at(emulator, config, offsets))
    emulator.set_faults(None)
    assert gateway.get("/v1/coupons/SPRING25")["percent_off"] == 30
    assert active_code(gateway, "SPRING")["promotion"]["coupon"] == "SPRING25"
    assert len([c for c in codes(gateway, "five-off") if c["active"]]) == 1
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(config), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_coupon_deleted_within_a_day_of_its_creation_is_made_again_with_its_codes(
    gateway: Gateway,
) -> None:
    """Its new create is the very request that made it first, so Stripe replays that
    answer and makes nothing; the code's create after it is refused (no such coupon).
    The next round, after a fresh read, asks both anew and converges."""
    text = BASE + FIVE
    assert not converge(text, gateway).has_changes
    gateway.delete("/v1/coupons/FIVE")
    snapshot, plan = plan_of(text, gateway)
    done = apply_until_done(plan, snapshot, gateway, replan=lambda: plan_of(text, gateway))
    assert "coupon.FIVE: create" in done.result.replayed
    assert done.rounds == 2
    assert active_code(gateway, "five-off")["promotion"]["coupon"] == "FIVE"
    assert not plan_of(text, gateway)[1].has_changes
