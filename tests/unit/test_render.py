"""The plan renders: golden text, JSON and markdown, the plan schema, colour rules.

Golden files live in tests/golden; ``UPDATE_GOLDEN=1 pytest tests/unit/test_render.py``
rewrites them from the current renders (review the diff before committing).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator

from reconciler.config import load_text
from reconciler.model import Desired
from reconciler.plan import Action, FieldChange, Plan, ResourceChange, fingerprint
from reconciler.planner import build_plan
from reconciler.render import render_json, render_markdown, render_text, should_color
from reconciler.render.markdown import MARKER
from reconciler.revenue import MigrationRevenue, RevenuePreview, SubscriptionRevenue
from reconciler.snapshot import Snapshot
from tests.strategies import desired_states
from tests.stripe_shapes import snapshot_matching

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
SCHEMA_PATH = REPO / "reconciler" / "schemas" / "plan.schema.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY_LINE = re.compile(
    r"Plan: (\d+) to create, (\d+) to update, (\d+) to replace, (\d+) to archive"
    r"(?:, (\d+) to delete)?(?:, (\d+) to migrate)?\."
)

MANAGED = {"managed_by": "stripe-reconcile"}


def _price(**overrides: Any) -> dict[str, Any]:
    essence: dict[str, Any] = {
        "product": "video_api",
        "currency": "usd",
        "nickname": None,
        "metadata": dict(MANAGED),
        "active": True,
        "recurring": {
            "interval": "month",
            "interval_count": 1,
            "usage": "metered",
            "meter": "video_seconds",
        },
        "unit_amount": "0.5",
        "tiers_mode": None,
        "tiers": None,
        "transform_quantity": None,
    }
    essence.update(overrides)
    return essence


def _meter(**overrides: Any) -> dict[str, Any]:
    essence: dict[str, Any] = {
        "display_name": "Video seconds",
        "aggregation": "sum",
        "customer_key": "stripe_customer_id",
        "value_key": "value",
        "active": True,
    }
    essence.update(overrides)
    return essence


def _alert(**overrides: Any) -> dict[str, Any]:
    essence: dict[str, Any] = {
        "threshold": 50000,
        "recurrence": "one_time",
        "customer": None,
        "active": True,
    }
    essence.update(overrides)
    return essence


def _product(**overrides: Any) -> dict[str, Any]:
    essence: dict[str, Any] = {
        "name": "Video API",
        "description": "Rendered video, billed by the second",
        "metadata": dict(MANAGED),
        "active": True,
    }
    essence.update(overrides)
    return essence


ALERT = 'alert.video_seconds["Over 50k"]'


def every_action_plan() -> Plan:
    """One plan holding every action kind, no-ops and unmanaged objects."""
    tiered = _price(
        nickname="Video seconds, tiered",
        unit_amount=None,
        tiers_mode="graduated",
        tiers=[
            {"up_to": 10000, "unit_amount": "0.5", "flat_amount": None},
            {"up_to": 100000, "unit_amount": "0.4", "flat_amount": "2500"},
            {"up_to": None, "unit_amount": "0.35", "flat_amount": None},
        ],
        transform_quantity={"divide_by": 60, "round": "up"},
    )
    old_metered = _price(
        unit_amount="0.5",
        nickname="Video seconds",
        recurring={
            "interval": "month",
            "interval_count": 1,
            "usage": "metered",
            "meter": "video_seconds_v0",
        },
    )
    new_metered = _price(unit_amount="0.45", nickname="Video seconds (metered)")
    changes = (
        ResourceChange(
            "product.video_api",
            "product",
            Action.CREATE,
            "not in the account",
            after=_product(default_price="video_seconds_metered"),
        ),
        ResourceChange(
            "product.image_api",
            "product",
            Action.NOOP,
            "matches",
            before=_product(name="Image API"),
            after=_product(name="Image API"),
            stripe_id="image_api",
        ),
        ResourceChange(
            "product.legacy_api",
            "product",
            Action.UPDATE,
            "changed: name, metadata.plan",
            before=_product(name="Legacy API", metadata={**MANAGED, "plan": "old"}),
            after=_product(name="Legacy API (v1)", metadata={**MANAGED, "plan": "pro"}),
            changes=(
                FieldChange("name", "Legacy API", "Legacy API (v1)"),
                FieldChange("metadata.plan", "old", "pro"),
            ),
            stripe_id="legacy_api",
        ),
        ResourceChange(
            "meter.video_seconds",
            "meter",
            Action.CREATE,
            "not in the account",
            after=_meter(),
        ),
        ResourceChange(
            "meter.api_calls",
            "meter",
            Action.DEACTIVATE,
            "declared active: false",
            before=_meter(display_name="API calls", aggregation="count"),
            after=_meter(display_name="API calls", aggregation="count", active=False),
            changes=(FieldChange("active", True, False),),
            stripe_id="mtr_api_calls",
        ),
        ResourceChange(
            "price.video_seconds_tiered",
            "price",
            Action.CREATE,
            "not in the account",
            after=tiered,
        ),
        ResourceChange(
            "price.video_seconds_metered",
            "price",
            Action.REPLACE,
            "fixed at creation: recurring, unit_amount",
            before=old_metered,
            after=new_metered,
            changes=(
                FieldChange("nickname", "Video seconds", "Video seconds (metered)"),
                FieldChange("recurring", old_metered["recurring"], new_metered["recurring"]),
                FieldChange("unit_amount", "0.5", "0.45"),
            ),
            stripe_id="price_1Metered",
            details={"default_of": "video_api"},
        ),
        ResourceChange(
            "price.video_minutes_legacy",
            "price",
            Action.ARCHIVE,
            "declared active: false",
            before=_price(unit_amount="30", recurring=None),
            after=_price(unit_amount="30", recurring=None, active=False),
            changes=(FieldChange("active", True, False),),
            stripe_id="price_1Minutes",
            details={"default_of": "video_api", "default_moves_to": "video_seconds_metered"},
        ),
        ResourceChange(
            "price.price_1Orphan",
            "price",
            Action.ARCHIVE,
            "left over from an interrupted replace (managed, lost its lookup key)",
            before={"active": True},
            after={"active": False},
            changes=(FieldChange("active", True, False),),
            stripe_id="price_1Orphan",
        ),
        ResourceChange(
            ALERT,
            "alert",
            Action.REACTIVATE,
            "declared active but inactive in the account",
            before=_alert(active=False),
            after=_alert(),
            changes=(FieldChange("active", False, True),),
            stripe_id="alrt_50k",
        ),
        ResourceChange(
            'alert.video_seconds["Over 1M"]',
            "alert",
            Action.NOOP,
            "matches",
            before=_alert(threshold=1000000),
            after=_alert(threshold=1000000),
            stripe_id="alrt_1m",
        ),
        ResourceChange(
            "migration.video-seconds-to-meter",
            "migration",
            Action.MIGRATE,
            "2 to schedule, 1 waiting for a later batch, 1 blocked, 7 done, 1 excluded",
            details={
                "from_price": "price_1Legacy",
                "to_price": "video_seconds_metered",
                "counts": {"pending": 2, "waiting": 1, "blocked": 1, "done": 7, "excluded": 1},
                "subscriptions": [
                    {
                        "subscription": "sub_A",
                        "customer": "cus_A",
                        "state": "pending",
                        "action": "create_schedule",
                        "switch_at": 1767225600,
                        "blocker": None,
                        "schedule": None,
                        "params": {"phases": []},
                    },
                    {
                        "subscription": "sub_B",
                        "customer": "cus_B",
                        "state": "pending",
                        "action": "update_schedule",
                        "switch_at": 1767225600,
                        "blocker": None,
                        "schedule": "sub_sched_B",
                        "params": {"phases": []},
                    },
                    {
                        "subscription": "sub_C",
                        "customer": "cus_C",
                        "state": "waiting",
                        "action": None,
                        "switch_at": 1767225600,
                        "blocker": None,
                        "schedule": None,
                    },
                    {
                        "subscription": "sub_D",
                        "customer": "cus_D",
                        "state": "blocked",
                        "action": None,
                        "switch_at": 1767225600,
                        "blocker": "usage parity: meter events 90 vs usage records 100 over the "
                        "last complete period differ by 10.00% (allowed 0.5%)",
                        "schedule": None,
                    },
                    {
                        "subscription": "sub_E",
                        "customer": "cus_E",
                        "state": "excluded",
                        "action": None,
                        "switch_at": None,
                        "blocker": None,
                        "schedule": None,
                    },
                ],
            },
        ),
    )
    return Plan(
        config_hash=fingerprint({"config": 1}),
        snapshot_fingerprint=fingerprint({"snapshot": 1}),
        changes=changes,
        unmanaged=(
            "meter.old_events",
            "price price_1Anon (no lookup key)",
            "product.prod_manual",
        ),
    )


def no_changes_plan() -> Plan:
    """Only no-ops, and one unmanaged object still worth showing."""
    return Plan(
        config_hash=fingerprint({"config": 2}),
        snapshot_fingerprint=fingerprint({"snapshot": 2}),
        changes=(
            ResourceChange(
                "meter.video_seconds",
                "meter",
                Action.NOOP,
                "matches",
                before=_meter(),
                after=_meter(),
                stripe_id="mtr_video",
            ),
        ),
        unmanaged=("product.prod_manual",),
    )


def money_plan() -> Plan:
    """Prices in currencies with two, zero and three decimal places, sub-cent and whole
    amounts, tiers, and a currency change: every amount shown as money too."""
    licensed = {"interval": "month", "interval_count": 1, "usage": "licensed", "meter": None}
    pro_usd = _price(unit_amount="9900", recurring=licensed, nickname="Pro")
    pro_cheaper = _price(unit_amount="4900", recurring=licensed, nickname="Pro")
    tiers = [
        {"up_to": 10000, "unit_amount": "0.5", "flat_amount": None},
        {"up_to": None, "unit_amount": "0.4", "flat_amount": "2500"},
    ]
    overage = _price(unit_amount=None, tiers_mode="graduated", tiers=tiers)
    cheaper_tiers = [tiers[0], {**tiers[1], "unit_amount": "0.35"}]
    intl_eur = _price(unit_amount="8900", currency="eur", recurring=licensed)
    return Plan(
        config_hash=fingerprint({"config": 3}),
        snapshot_fingerprint=fingerprint({"snapshot": 3}),
        changes=(
            ResourceChange(
                "price.pro_monthly",
                "price",
                Action.REPLACE,
                "fixed at creation: unit_amount",
                before=pro_usd,
                after=pro_cheaper,
                changes=(FieldChange("unit_amount", "9900", "4900"),),
                stripe_id="price_1Pro",
            ),
            ResourceChange(
                "price.pro_monthly_eur",
                "price",
                Action.CREATE,
                "not in the account",
                after=_price(unit_amount="2700", currency="eur", recurring=licensed),
            ),
            ResourceChange(
                "price.credits_jpy",
                "price",
                Action.CREATE,
                "not in the account",
                after=_price(unit_amount="500", currency="jpy", recurring=None),
            ),
            ResourceChange(
                "price.api_calls_kwd",
                "price",
                Action.CREATE,
                "not in the account",
                after=_price(
                    unit_amount=None,
                    currency="kwd",
                    tiers_mode="volume",
                    tiers=[
                        {"up_to": 1000, "unit_amount": "1.5", "flat_amount": "27000"},
                        {"up_to": None, "unit_amount": "0.5", "flat_amount": None},
                    ],
                ),
            ),
            ResourceChange(
                "price.video_seconds_overage",
                "price",
                Action.REPLACE,
                "fixed at creation: tiers[1].unit_amount",
                before=overage,
                after={**overage, "tiers": cheaper_tiers},
                changes=(FieldChange("tiers[1].unit_amount", "0.4", "0.35"),),
                stripe_id="price_1Overage",
            ),
            ResourceChange(
                "price.pro_international",
                "price",
                Action.REPLACE,
                "fixed at creation: currency, unit_amount",
                before=pro_usd,
                after=intl_eur,
                changes=(
                    FieldChange("currency", "usd", "eur"),
                    FieldChange("unit_amount", "9900", "8900"),
                ),
                stripe_id="price_1Intl",
            ),
        ),
    )


def revenue_plan() -> Plan:
    """Two migrations with a revenue preview: one whose new price is not in the account
    yet, one previewed in part (a sample of 10 of 12), with a refusal, ties, a decrease."""
    video = next(c for c in every_action_plan().changes if c.kind == "migration")
    customers = ["cus_01", "cus_02", "cus_03", "cus_04", "cus_02", "cus_06"]
    customers += ["cus_07", "cus_08", "cus_09", "cus_01", "cus_11", "cus_12"]
    seats_rows = [
        {
            "subscription": f"sub_S{n:02}",
            "customer": customers[n - 1],
            "state": "pending",
            "action": "create_schedule",
            "switch_at": 1769904000,
            "blocker": None,
            "schedule": None,
            "params": {"phases": []},
        }
        for n in range(1, 13)
    ]
    seats = ResourceChange(
        "migration.seats-2026",
        "migration",
        Action.MIGRATE,
        "12 to schedule",
        details={
            "from_price": "price_1Seat2025",
            "to_price": "seat_2026",
            "counts": {"pending": 12},
            "subscriptions": seats_rows,
        },
    )
    # The first 10 in batch order; sub_S05 ties sub_S02 (same customer), sub_S03 is a
    # yearly $100.00 (833 cents a month), sub_S07 refused, sub_S09 a decrease.
    figures = [(3000, 3600), (1000, 1200), (833, 1000), (5000, 6000), (1000, 1200)]
    figures += [(2000, 2400), (None, None), (1500, 1500), (4000, 3800), (600, 600)]
    previewed = [
        SubscriptionRevenue(f"sub_S{n:02}", customers[n - 1], before, after)
        if before is not None
        else SubscriptionRevenue(
            f"sub_S{n:02}",
            customers[n - 1],
            refused="as is: POST /v1/invoices/create_preview (400 invoice_upcoming_none): "
            f"No upcoming invoices for customer: {customers[n - 1]}",
        )
        for n, (before, after) in enumerate(figures, start=1)
    ]
    preview = RevenuePreview(
        10,
        (
            MigrationRevenue(
                video.address,
                "usd",
                2,
                2,
                unavailable="to_price 'video_seconds_metered' is not in the account yet: once "
                "apply has created it, plan --revenue previews the move",
            ),
            MigrationRevenue(seats.address, "usd", 12, len(set(customers)), tuple(previewed)),
        ),
    )
    return Plan(
        config_hash=fingerprint({"config": 4}),
        snapshot_fingerprint=fingerprint({"snapshot": 4}),
        changes=(video, seats),
        revenue=preview.to_json(),
    )


COUPONS_BEFORE = """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video}
coupons:
  - {id: SPRING25, name: Spring, percent_off: 25, duration: repeating, duration_in_months: 3}
  - {id: FIVE, amount_off: 500, currency: usd, applies_to: {products: [prod_video]}}
  - {id: SUMMER, percent_off: 10, redeem_by: "2030-08-31T23:59:59Z"}
promotion_codes:
  - {code: SPRING, coupon: SPRING25}
  - {code: FIVE-OFF, coupon: FIVE, max_redemptions: 10}
  - {code: SUMMER, coupon: SUMMER}
"""


def coupons_plan() -> Plan:
    """Coupons created, updated, deleted and created again, and deleted: the renders say
    which changes delete for good; promotion codes made anew with their coupon, changed,
    deactivated and created."""
    after = (
        COUPONS_BEFORE.replace("percent_off: 25", "percent_off: 30")
        .replace("{id: FIVE,", "{id: FIVE, name: Five off,")
        .replace("{id: SUMMER,", "{id: SUMMER, active: false,")
        .replace("max_redemptions: 10}", "max_redemptions: 20}")
        .replace("{code: SUMMER,", "{code: SUMMER, active: false,")
        .replace(
            "promotion_codes:\n",
            "  - {id: WELCOME, percent_off: 12.5, duration: forever, max_redemptions: 100}\n"
            "promotion_codes:\n",
        )
        + "  - {code: WELCOME, coupon: WELCOME, metadata: {channel: blog}}\n"
    )
    return build_plan(load_text(after), snapshot_matching(load_text(COUPONS_BEFORE)))


PLANS = {
    "plan": every_action_plan,
    "plan_no_changes": no_changes_plan,
    "plan_money": money_plan,
    "plan_revenue": revenue_plan,
    "plan_coupons": coupons_plan,
}
RENDERS = {
    "txt": lambda plan: render_text(plan, color=False),
    "json": render_json,
    "md": render_markdown,
}


def _golden(name: str, actual: str) -> str:
    """The golden file's text; rewritten first when UPDATE_GOLDEN is set."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8", newline="")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# --- golden renders -------------------------------------------------------------------------


@pytest.mark.parametrize("plan_name", sorted(PLANS))
@pytest.mark.parametrize("suffix", sorted(RENDERS))
def test_render_matches_golden(plan_name: str, suffix: str) -> None:
    actual = RENDERS[suffix](PLANS[plan_name]())
    assert actual == _golden(f"{plan_name}.{suffix}", actual)


@pytest.mark.parametrize("plan_name", sorted(PLANS))
@pytest.mark.parametrize("suffix", sorted(RENDERS))
def test_render_is_deterministic_across_a_save_and_load(plan_name: str, suffix: str) -> None:
    plan = PLANS[plan_name]()
    reloaded = Plan.from_json(json.loads(render_json(plan)))
    golden = (GOLDEN / f"{plan_name}.{suffix}").read_text(encoding="utf-8")
    assert RENDERS[suffix](reloaded) == golden


# --- text -----------------------------------------------------------------------------------


def test_text_skips_noops_and_keeps_plan_order() -> None:
    plan = every_action_plan()
    text = render_text(plan, color=False)
    assert "product.image_api" not in text
    assert 'alert.video_seconds["Over 1M"]' not in text
    positions = [text.index(f" {c.address} will be ") for c in plan.actionable]
    assert positions == sorted(positions)


def test_text_shows_each_action_symbol_and_phrase() -> None:
    text = render_text(every_action_plan(), color=False)
    for line in (
        "  + product.video_api will be created",
        "  ~ product.legacy_api will be updated in place",
        "  -/+ price.video_seconds_metered will be replaced",
        "  - price.video_minutes_legacy will be archived",
        "  - meter.api_calls will be deactivated",
        f"  ~ {ALERT} will be reactivated",
        "  > migration.video-seconds-to-meter will be migrated",
    ):
        assert line in text.splitlines()


def test_text_marks_only_fixed_fields_as_forcing_replacement() -> None:
    lines = render_text(every_action_plan(), color=False).splitlines()
    forced = {line.split(":")[0].strip("~ ") for line in lines if "# forces replacement" in line}
    assert forced == {"recurring.meter", "unit_amount"}


def test_text_summary_line_and_unmanaged_section() -> None:
    lines = render_text(every_action_plan(), color=False).splitlines()
    assert lines[-1] == (
        "Plan: 3 to create, 2 to update, 1 to replace, 3 to archive, 1 to migrate."
    )
    start = lines.index("Not managed by billing.yaml (left alone):")
    assert lines[start + 1 : start + 4] == [
        "  meter.old_events",
        "  price price_1Anon (no lookup key)",
        "  product.prod_manual",
    ]


def test_text_of_an_empty_plan_is_one_line() -> None:
    plan = Plan(config_hash=fingerprint(1), snapshot_fingerprint=fingerprint(2))
    assert render_text(plan, color=False) == "No changes. The account matches billing.yaml.\n"


def _held_plan() -> Plan:
    """Nothing to write, but two subscriptions blocked and one deferred."""
    held = ResourceChange(
        "migration.raise-2026",
        "migration",
        Action.NOOP,
        "1 deferred, 2 blocked, 5 scheduled",
        details={"counts": {"deferred": 1, "blocked": 2, "scheduled": 5}, "subscriptions": []},
    )
    moved = ResourceChange(
        "migration.done-2025",
        "migration",
        Action.NOOP,
        "4 done",
        details={"counts": {"done": 4}, "subscriptions": []},
    )
    return Plan(
        config_hash=fingerprint(1), snapshot_fingerprint=fingerprint(2), changes=(held, moved)
    )


def test_a_plan_with_nothing_to_write_names_the_migrations_it_holds_back() -> None:
    """ "The account matches" would hide subscriptions that cannot move yet."""
    assert render_text(_held_plan(), color=False).splitlines() == [
        "Held back (stripe-reconcile status says why for each):",
        "  migration.raise-2026: 1 deferred, 2 blocked, 5 scheduled",
        "",
        "No changes to make now: the subscriptions held back above wait on their reasons.",
    ]
    markdown = render_markdown(_held_plan())
    assert "**No changes to make now.** Some subscriptions are held back (below)." in markdown
    assert "- `migration.raise-2026: 1 deferred, 2 blocked, 5 scheduled`" in markdown
    assert "done-2025" not in markdown
    assert "The account matches" not in markdown


def test_color_adds_ansi_codes_and_nothing_else() -> None:
    plan = every_action_plan()
    colored = render_text(plan, color=True)
    plain = render_text(plan, color=False)
    assert ANSI.search(colored)
    assert not ANSI.search(plain)
    assert "\x1b" not in plain
    assert ANSI.sub("", colored) == plain


def test_text_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = every_action_plan()
    expected = (render_text(plan, color=False), render_text(plan, color=True))
    for name, value in {
        "NO_COLOR": "1",
        "FORCE_COLOR": "1",
        "TERM": "dumb",
        "COLUMNS": "20",
        "TTY_COMPATIBLE": "0",
    }.items():
        monkeypatch.setenv(name, value)
    assert (render_text(plan, color=False), render_text(plan, color=True)) == expected


def test_long_lines_are_not_wrapped() -> None:
    address = "price." + "k" * 150
    plan = Plan(
        config_hash=fingerprint(1),
        snapshot_fingerprint=fingerprint(2),
        changes=(ResourceChange(address, "price", Action.CREATE, "not in the account"),),
    )
    assert f"  + {address} will be created" in render_text(plan, color=False).splitlines()


# --- colour decision ------------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _ClosedTty(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


@pytest.fixture(autouse=True)
def _no_force_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """The colour tests decide FORCE_COLOR themselves (a CI runner may set it)."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def test_should_color_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert should_color(_Tty()) is True


@pytest.mark.parametrize("value", ["1", "0", "false", "yes"])
def test_should_color_honours_no_color(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NO_COLOR", value)
    assert should_color(_Tty()) is False


def test_should_color_treats_empty_no_color_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    assert should_color(_Tty()) is True


def test_should_color_not_for_pipes_or_closed_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert should_color(io.StringIO()) is False
    assert should_color(_ClosedTty()) is False


def test_no_color_option_wins_over_a_terminal_and_force_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert should_color(_Tty(), no_color=True) is False


@pytest.mark.parametrize("value", ["1", "true", "3"])
def test_force_color_colours_a_pipe(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", value)
    assert should_color(io.StringIO()) is True


@pytest.mark.parametrize("value", ["0", "false"])
def test_force_color_zero_means_no_colour(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", value)
    assert should_color(_Tty()) is False


def test_no_color_wins_over_force_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert should_color(io.StringIO()) is False


# --- JSON and its schema --------------------------------------------------------------------


@pytest.mark.parametrize("plan_name", sorted(PLANS))
def test_json_is_the_plan_file(plan_name: str, validator: Draft202012Validator) -> None:
    plan = PLANS[plan_name]()
    text = render_json(plan)
    assert text == plan.dumps()
    assert text.endswith("}\n")
    assert sorted(validator.iter_errors(json.loads(text)), key=str) == []
    assert Plan.from_json(json.loads(text)) == plan


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired_states())
def test_planner_output_fits_the_schema_and_renders(desired: Desired) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = Draft202012Validator(schema)
    leftover = Snapshot(orphan_prices=("price_1Leftover",))
    for snapshot in (Snapshot(), snapshot_matching(desired), leftover):
        plan = build_plan(desired, snapshot)
        document = json.loads(render_json(plan))
        assert [e.message for e in validator.iter_errors(document)] == []
        assert Plan.from_json(document) == plan
        last = render_text(plan, color=False).splitlines()[-1]
        if not plan.has_changes:
            assert last == "No changes. The account matches billing.yaml."
        else:
            counts = SUMMARY_LINE.fullmatch(last)
            assert counts is not None, last
            create, update, replace, archive, delete, migrate = (
                int(n or 0) for n in counts.groups()
            )
            actions = [c.action for c in plan.actionable]
            assert create + update + replace + archive + delete + migrate == len(actions)
            assert delete == actions.count(Action.DELETE)
            assert create == actions.count(Action.CREATE)
            assert replace == actions.count(Action.REPLACE)
        assert render_markdown(plan).startswith(MARKER + "\n")


def test_attached_features_fit_the_schema_and_read_as_attached_and_detached(
    validator: Draft202012Validator,
) -> None:
    attach = ResourceChange(
        "product_feature.prod_video/hd_export",
        "product_feature",
        Action.CREATE,
        "not in the account",
        after={"product": "prod_video", "feature": "hd_export", "attached": True},
    )
    held = {"product": "prod_video", "feature": "sso", "attached": True}
    detach = ResourceChange(
        "product_feature.prod_video/sso",
        "product_feature",
        Action.ARCHIVE,
        "not among product.prod_video's features: detach it",
        before=held,
        after={**held, "attached": False},
        changes=(FieldChange("attached", True, False),),
        stripe_id="prodft_1",
    )
    plan = Plan("sha256:" + "c" * 64, "sha256:" + "5" * 64, (attach, detach))
    document = json.loads(render_json(plan))
    assert [e.message for e in validator.iter_errors(document)] == []
    assert Plan.from_json(document) == plan
    odd = json.loads(render_json(plan))
    odd["changes"][1]["after"]["attached"] = "no"
    assert not validator.is_valid(odd)
    text = render_text(plan, color=False)
    assert "+ product_feature.prod_video/hd_export will be created" in text
    assert "~ attached: true -> false" in text
    assert "- product_feature.prod_video/sso will be archived" in text


def _saved(**top: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_json(every_action_plan()))
    data.update(top)
    return data


def _change_of(data: dict[str, Any], address: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in data["changes"] if c["address"] == address)
    return found


def _with_change(address: str, **fields: Any) -> dict[str, Any]:
    data = _saved()
    _change_of(data, address).update(fields)
    return data


def _with_essence(address: str, side: str, **fields: Any) -> dict[str, Any]:
    data = _saved()
    _change_of(data, address)[side].update(fields)
    return data


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(_saved(format_version="2"), id="format_version"),
        pytest.param(_saved(extra=True), id="unknown top-level key"),
        pytest.param(_saved(config_hash="md5:abc"), id="hash shape"),
        pytest.param(_saved(summary={"create": 1}), id="summary missing actions"),
        pytest.param(_with_change("product.video_api", action="destroy"), id="unknown action"),
        pytest.param(
            _with_change("product.video_api", irreversible=True), id="create marked irreversible"
        ),
        pytest.param(
            _with_change("price.video_seconds_metered", irreversible=False),
            id="replace marked reversible",
        ),
        pytest.param(
            _with_change("product.video_api", stripe_id="prod_1"), id="create with a stripe id"
        ),
        pytest.param(_with_change("product.video_api", colour="red"), id="unknown change key"),
        pytest.param(
            _with_essence("price.video_seconds_tiered", "after", currency_code="usd"),
            id="price essence key",
        ),
        pytest.param(
            _with_essence("meter.video_seconds", "after", aggregation="max"), id="meter aggregation"
        ),
        pytest.param(_with_essence(ALERT, "before", threshold="50k"), id="alert threshold type"),
        pytest.param(
            _with_change("price.video_seconds_metered", details={"default_for": "x"}),
            id="price details key",
        ),
        pytest.param(
            _with_change("product.legacy_api", details={"default_of": "x"}), id="product details"
        ),
        pytest.param(
            _with_change("product.legacy_api", changes=[{"field": "name", "before": 1}]),
            id="field change shape",
        ),
    ],
)
def test_schema_refuses_what_to_json_never_writes(
    document: dict[str, Any], validator: Draft202012Validator
) -> None:
    assert not validator.is_valid(document)


def _schema_nodes(node: Any, inside_if: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    if isinstance(node, dict):
        yield node, inside_if
        for key, value in node.items():
            yield from _schema_nodes(value, inside_if or key == "if")
    elif isinstance(node, list):
        for item in node:
            yield from _schema_nodes(item, inside_if)


def test_schema_describes_every_property_and_closes_every_record() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    records = 0
    for node, inside_if in _schema_nodes(schema):
        if inside_if or not isinstance(node.get("properties"), dict):
            continue
        missing = [name for name, sub in node["properties"].items() if "description" not in sub]
        assert missing == [], missing
        if "object" in node.get("type", ()):
            records += 1
            assert node.get("additionalProperties") is False
    assert records >= 10


def test_schema_action_enum_and_summary_follow_the_action_enum() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    change = schema["$defs"]["resource_change"]["properties"]
    assert change["action"]["enum"] == [a.value for a in Action]
    summary = schema["properties"]["summary"]
    assert set(summary["properties"]) == {a.value for a in Action if a is not Action.NOOP}
    # ``delete`` is counted only in a plan that deletes: a plan without one reads as before.
    assert set(summary["required"]) == set(summary["properties"]) - {Action.DELETE.value}
    assert schema["properties"]["format_version"]["const"] == "1"


def test_root_schemas_directory_publishes_the_same_file() -> None:
    assert (REPO / "schemas" / "plan.schema.json").read_bytes() == SCHEMA_PATH.read_bytes()


# --- markdown -------------------------------------------------------------------------------


def test_markdown_opens_with_the_marker_and_warns_of_irreversible_steps() -> None:
    lines = render_markdown(every_action_plan()).splitlines()
    assert lines[:2] == [MARKER, "### stripe-reconcile plan"]
    warning = lines.index("> [!WARNING]")
    assert lines[warning + 1].startswith("> **5 irreversible steps:**")
    assert lines[warning + 3 : warning + 8] == [
        "> - `meter.api_calls`: deactivate",
        "> - `price.video_seconds_metered`: replace",
        "> - `price.video_minutes_legacy`: archive",
        "> - `price.price_1Orphan`: archive",
        "> - `migration.video-seconds-to-meter`: migrate",
    ]


def test_markdown_without_irreversible_steps_has_no_warning() -> None:
    plan = Plan(
        config_hash=fingerprint(1),
        snapshot_fingerprint=fingerprint(2),
        changes=(ResourceChange("meter.m", "meter", Action.CREATE, "not in the account"),),
    )
    text = render_markdown(plan)
    assert "[!WARNING]" not in text
    assert "| `+` create | 1 |" in text.splitlines()


def test_markdown_of_no_changes_keeps_the_marker() -> None:
    plan = Plan(config_hash=fingerprint(1), snapshot_fingerprint=fingerprint(2))
    lines = render_markdown(plan).splitlines()
    assert lines[0] == MARKER
    assert "**No changes.** The account matches billing.yaml." in lines
    assert not any(line.startswith("|") for line in lines)


def _cells(row: str) -> list[str]:
    """A GFM table row's cells: split on pipes not escaped by a backslash."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_markdown_escapes_pipes_and_backticks_in_table_cells() -> None:
    address = 'alert.calls["a|b `x`"]'
    plan = Plan(
        config_hash=fingerprint(1),
        snapshot_fingerprint=fingerprint(2),
        changes=(
            ResourceChange(address, "alert", Action.CREATE, "reason | with `code`\nand a newline"),
        ),
    )
    rows = [line for line in render_markdown(plan).splitlines() if address[:11] in line]
    row = next(r for r in rows if r.startswith("| "))
    assert _cells(row) == [
        "`+`",
        '``alert.calls["a\\|b `x`"]``',
        "create",
        "reason \\| with \\`code\\`; and a newline",  # one line per reason line, joined
    ]


def test_markdown_cells_cannot_open_html() -> None:
    plan = Plan(
        config_hash=fingerprint(1),
        snapshot_fingerprint=fingerprint(2),
        changes=(ResourceChange("meter.m", "meter", Action.CREATE, "</details><b>x</b>"),),
    )
    row = next(r for r in render_markdown(plan).splitlines() if r.startswith("| `+` |"))
    assert _cells(row)[3] == "&lt;/details&gt;&lt;b&gt;x&lt;/b&gt;"


# --- hostile names from the account -------------------------------------------------------


@pytest.mark.parametrize("render", [RENDERS["txt"], render_markdown], ids=["text", "markdown"])
def test_control_characters_are_shown_not_sent(render: Any) -> None:
    plan = Plan(
        config_hash=fingerprint(1),
        snapshot_fingerprint=fingerprint(2),
        changes=(ResourceChange("price.a\x1b[2J", "price", Action.CREATE, "why\x9b31m", after={}),),
        unmanaged=("price.evil\x1b]8;;x\x07\r",),
    )
    out = render(plan)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", out)
    assert "price.a\\x1b[2J" in out
    assert "price.evil\\x1b]8;;x\\x07\\x0d" in out


def test_amounts_in_other_currencies_show_as_their_own_money() -> None:
    after = _price(
        recurring=None,
        unit_amount=None,
        custom_unit_amount={"minimum": 500, "maximum": None, "preset": 2000},
        currency_options={
            "jpy": {
                "unit_amount": None,
                "tiers": None,
                "custom_unit_amount": {"minimum": 100, "maximum": None, "preset": None},
            }
        },
    )
    created = ResourceChange(
        "price.top_up", "price", Action.CREATE, "not in the account", after=after
    )
    before = _price(currency_options={"eur": {"unit_amount": "4500", "tiers": None}})
    changed = ResourceChange(
        "price.pro",
        "price",
        Action.UPDATE,
        "changed: currency_options.eur.unit_amount",
        before=before,
        after=_price(currency_options={"eur": {"unit_amount": "4700", "tiers": None}}),
        changes=(FieldChange("currency_options.eur.unit_amount", "4500", "4700"),),
        stripe_id="price_1",
    )
    text = render_text(Plan("sha256:c", "sha256:s", (created, changed)), color=False)
    assert re.search(r"currency_options\.jpy\.custom_unit_amount\.minimum\s+= 100 \(¥100\)", text)
    assert re.search(r" custom_unit_amount\.preset\s+= 2000 \(\$20\.00\)", text)
    assert '~ currency_options.eur.unit_amount: "4500" -> "4700" (€45.00 -> €47.00)' in text
