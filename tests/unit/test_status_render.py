"""The status view, golden-tested (UPDATE_GOLDEN=1 rewrites the files)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.plan import Action, ResourceChange
from reconciler.render.status import render_status_json, render_status_text

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _row(sub: str, state: str, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "subscription": sub,
        "customer": f"cus_{sub[4:]}",
        "state": state,
        "action": None,
        "switch_at": None,
        "blocker": None,
        "schedule": None,
    }
    row.update(fields)
    return row


MIGRATIONS = [
    ResourceChange(
        "migration.video-seconds-to-meter",
        "migration",
        Action.MIGRATE,
        "1 to schedule, 1 waiting for a later batch, 1 blocked, 1 scheduled, 3 done",
        details={
            "from_price": "price_1Legacy",
            "to_price": "video_seconds_metered",
            "counts": {"pending": 1, "waiting": 1, "blocked": 1, "scheduled": 1, "done": 3},
            "subscriptions": [
                _row(
                    "sub_A1",
                    "pending",
                    action="create_schedule",
                    switch_at=1767225600,
                    params={"phases": []},
                ),
                _row("sub_B22", "waiting", switch_at=1767312000),
                _row(
                    "sub_C333",
                    "blocked",
                    switch_at=1767225600,
                    blocker="usage parity: meter events 90 vs usage records 100",
                ),
                _row("sub_D4", "scheduled", switch_at=1767398400, schedule="sub_sched_D4"),
            ],
        },
    ),
    ResourceChange(
        "migration.api-calls",
        "migration",
        Action.NOOP,
        "from_price 'api_calls_legacy' is not in the account",
        details={"from_price": "api_calls_legacy", "to_price": "api_calls_metered"},
    ),
]


PRICES = {"price_1Legacy": "$0.0035 per unit", "video_seconds_metered": "$0.0035 per unit"}


@pytest.mark.parametrize(
    ("name", "render"),
    [("status.txt", render_status_text), ("status.json", render_status_json)],
)
def test_status_matches_golden(name: str, render: object) -> None:
    assert callable(render)
    actual = (
        render(MIGRATIONS, prices=PRICES) if render is render_status_text else render(MIGRATIONS)
    )
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def test_status_json_carries_no_request_parameters() -> None:
    data = json.loads(render_status_json(MIGRATIONS))
    first = data["migrations"][0]
    assert first["counts"]["done"] == 3
    assert all("params" not in row for row in first["subscriptions"])


def test_no_migrations_says_so() -> None:
    assert render_status_text([]) == "billing.yaml declares no migrations.\n"


def test_status_shows_what_each_price_charges() -> None:
    from reconciler.plan import Plan, fingerprint
    from reconciler.render.status import price_amounts
    from reconciler.snapshot import LiveObject, Snapshot

    legacy = {"currency": "usd", "unit_amount": "0.35", "tiers": None}
    snapshot = Snapshot(prices={"video_seconds_legacy": LiveObject("price_1Legacy", legacy)})
    metered = ResourceChange(
        "price.video_seconds_metered",
        "price",
        Action.CREATE,
        "not in the account",
        after={"currency": "eur", "unit_amount": "4900", "tiers": None},
    )
    plan = Plan(fingerprint({}), fingerprint({}), (metered, *MIGRATIONS))
    amounts = price_amounts(plan, snapshot)
    assert amounts == {
        "video_seconds_legacy": "$0.0035 per unit",
        "price_1Legacy": "$0.0035 per unit",
        "video_seconds_metered": "€49.00 per unit",
    }
    text = render_status_text(MIGRATIONS, prices=amounts)
    assert "  charges: $0.0035 per unit -> €49.00 per unit\n" in text
    assert "charges" not in render_status_text(MIGRATIONS[1:], prices=amounts)


def test_a_migration_of_several_prices_shows_each_move_and_its_charges() -> None:
    consolidation = ResourceChange(
        "migration.one-plan",
        "migration",
        Action.NOOP,
        "2 scheduled",
        details={
            "from_price": "price_basic",
            "to_price": "team",
            "also": [{"from_price": "price_addon", "to_price": "team"}],
            "counts": {"scheduled": 2},
            "subscriptions": [],
        },
    )
    prices = {"price_basic": "$10.00 per unit", "price_addon": "$3.00 per unit", "team": "$11.00"}
    text = render_status_text([consolidation], prices=prices)
    assert text.startswith(
        "migration one-plan: price_basic -> team, price_addon -> team\n"
        "  charges: $10.00 per unit -> $11.00\n"
        "  charges: $3.00 per unit -> $11.00\n"
    )
    shown = json.loads(render_status_json([consolidation]))["migrations"][0]
    assert shown["also"] == [{"from_price": "price_addon", "to_price": "team"}]


def test_status_shows_the_revenue_preview_under_each_migration() -> None:
    from reconciler.revenue import MigrationRevenue, RevenuePreview, SubscriptionRevenue

    rows = (
        SubscriptionRevenue("sub_A1", "cus_A1", 1000, 1300),
        SubscriptionRevenue("sub_E5", "cus_E5", refused="as is: gone"),
    )
    preview = RevenuePreview(1, (MigrationRevenue(MIGRATIONS[0].address, "usd", 2, 2, rows),))
    lines = render_status_text(MIGRATIONS, revenue=preview).splitlines()
    start = lines.index(
        "  revenue: 2 customers (2 subscriptions to schedule): $10.00 -> $13.00 a month (+$3.00)"
    )
    assert (
        lines[start - 1]
        == "  1 to schedule, 1 waiting for a later batch, 1 blocked, 1 scheduled, 3 done"
    )
    assert lines[start + 1 : start + 3] == [
        "    largest increases:",
        "      cus_A1 sub_A1: $10.00 -> $13.00 (+$3.00)",
    ]
    assert (
        lines[start + 3]
        == "    1 preview refused, left out of the totals: sub_E5 (cus_E5): as is: gone"
    )
    assert "revenue:" not in render_status_text(MIGRATIONS)  # not read: not shown
    data = json.loads(render_status_json(MIGRATIONS, revenue=preview))
    assert data["revenue"] == preview.to_json()
    assert "revenue" not in json.loads(render_status_json(MIGRATIONS))
