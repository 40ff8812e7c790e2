"""The revenue preview (``plan --revenue``, ``status --revenue``) against the emulator.

A price increase on test clocks (seats from $10.00 to $12.00, the invoices of
tests/e2e/test_any_price_migrations.py) previewed per customer and in total,
as text, markdown and JSON; the cap on how many subscriptions are previewed; a
preview Stripe refuses for one subscription; and a saved plan carrying the
preview that still applies after usage moved its figures.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG, SeededCustomer, seed_legacy_account
from reconciler.gateway import Gateway
from reconciler.live import read_revenue, read_snapshot
from reconciler.planner import build_plan
from reconciler.render import render_markdown, render_text
from reconciler.revenue import RevenuePreview
from reconciler.scenario import report_usage, send_meter_event
from tests.e2e.conftest import stripe_reconcile
from tests.e2e.test_any_price_migrations import CATALOG, RAISE, converge, subscribe

REPO = Path(__file__).resolve().parents[2]
HEADING = (
    "Revenue preview: monthly recurring revenue of each subscription's next invoice, as is "
    "and on the new price:"
)


def raise_account(gateway: Gateway) -> list[tuple[str, str, int]]:
    """The catalog applied and two subscribers on seat_2025 (3 seats and 1): their
    (customer, subscription, seats), in the plan's batch order (by subscription id)."""
    assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
    subscribers = []
    for seats in (3, 1):
        _, customer, subscription = subscribe(gateway, "seat_2025", seats)
        subscribers.append((customer, subscription, seats))
    return sorted(subscribers, key=lambda found: found[1])


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "billing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def revenue_of(stdout: str) -> dict[str, Any]:
    document = json.loads(stdout)
    schema = json.loads((REPO / "schemas" / "plan.schema.json").read_text(encoding="utf-8"))
    assert [e.message for e in Draft202012Validator(schema).iter_errors(document)] == []
    revenue: dict[str, Any] = document["revenue"]
    return revenue


def expected_row(customer: str, subscription: str, seats: int) -> dict[str, Any]:
    """Worked by hand: seats x $10.00 as is, seats x $12.00 on the new price, a month."""
    before, after = seats * 1000, seats * 1200
    return {
        "subscription": subscription,
        "customer": customer,
        "before": before,
        "after": after,
        "change": after - before,
        "refused": None,
    }


def test_a_price_increase_shows_each_customer_and_the_total(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    subscribers = raise_account(gateway)
    config = write_config(tmp_path, RAISE)
    plain = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert plain.returncode == 0, plain.stderr
    assert "Revenue preview" not in plain.stdout  # opt-in: no preview, no request for one
    assert emulator.stats()["by_route"].get("POST /v1/invoices/create_preview", 0) == 0

    shown = stripe_reconcile("plan", "--revenue", "-f", str(config), url=emulator.url)
    assert shown.returncode == 0, shown.stderr
    (a_customer, a_sub, _), (b_customer, b_sub, _) = sorted(subscribers, key=lambda s: -s[2])
    lines = shown.stdout.splitlines()
    start = lines.index(HEADING)
    # 3 seats: $30.00 -> $36.00; 1 seat: $10.00 -> $12.00; in all $40.00 -> $48.00.
    assert lines[start : start + 5] == [
        HEADING,
        "  migration.raise-2026: 2 customers (2 subscriptions to schedule): $40.00 -> $48.00 "
        "a month (+$8.00)",
        "    largest increases:",
        f"      {a_customer} {a_sub}: $30.00 -> $36.00 (+$6.00)",
        f"      {b_customer} {b_sub}: $10.00 -> $12.00 (+$2.00)",
    ]
    assert lines[-1] == "Plan: 0 to create, 0 to update, 0 to replace, 0 to archive, 1 to migrate."
    assert emulator.stats()["by_route"]["POST /v1/invoices/create_preview"] == 4

    markdown = stripe_reconcile(
        "plan", "--revenue", "--format", "markdown", "-f", str(config), url=emulator.url
    )
    assert "| `migration.raise-2026` | 2 | 2 | \\$40.00 | \\$48.00 | +\\$8.00 |" in (
        markdown.stdout
    )
    assert f"| `{a_customer}` | `{a_sub}` | \\$30.00 | \\$36.00 | +\\$6.00 |" in markdown.stdout

    status = stripe_reconcile("status", "--revenue", "-f", str(config), url=emulator.url)
    assert status.returncode == 0, status.stderr
    assert (
        "  revenue: 2 customers (2 subscriptions to schedule): $40.00 -> $48.00 a month (+$8.00)"
    ) in status.stdout.splitlines()
    status_json = stripe_reconcile(
        "status", "--revenue", "--format", "json", "-f", str(config), url=emulator.url
    )
    assert json.loads(status_json.stdout)["revenue"]["migrations"][0]["change"] == 800


def test_the_json_preview_is_stable_and_in_batch_order(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    subscribers = raise_account(gateway)
    config = write_config(tmp_path, RAISE)
    args = ("plan", "--revenue", "--format", "json", "-f", str(config))
    first = stripe_reconcile(*args, url=emulator.url)
    second = stripe_reconcile(*args, url=emulator.url)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout  # byte for byte: no order from the previews' timing
    rows = [expected_row(*found) for found in subscribers]
    assert revenue_of(first.stdout) == {
        "limit": 200,
        "migrations": [
            {
                "address": "migration.raise-2026",
                "currency": "usd",
                "to_schedule": 2,
                "customers": 2,
                "previewed": 2,
                "refused": 0,
                "before": 4000,
                "after": 4800,
                "change": 800,
                "largest_increases": sorted(rows, key=lambda row: -row["change"]),
                "subscriptions": rows,
                "unavailable": None,
            }
        ],
    }


def test_the_cap_previews_the_first_in_batch_order_and_says_it_is_a_sample(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    first, _ = raise_account(gateway)
    config = write_config(tmp_path, RAISE)
    capped = stripe_reconcile(
        "plan", "--revenue-limit", "1", "--format", "json", "-f", str(config), url=emulator.url
    )
    assert capped.returncode == 0, capped.stderr
    (migration,) = revenue_of(capped.stdout)["migrations"]
    assert migration["subscriptions"] == [expected_row(*first)]
    assert (migration["to_schedule"], migration["previewed"]) == (2, 1)
    assert emulator.stats()["by_route"]["POST /v1/invoices/create_preview"] == 2
    text = stripe_reconcile("plan", "--revenue-limit", "1", "-f", str(config), url=emulator.url)
    assert (
        "    previewed 1 of 2 subscriptions to schedule (the first in batch order): the figures "
        "cover a sample"
    ) in text.stdout.splitlines()
    refused = stripe_reconcile("plan", "--revenue-limit", "0", "-f", str(config), url=emulator.url)
    assert refused.returncode == 1
    assert "Invalid value for '--revenue-limit'" in refused.stderr


def test_a_refused_preview_is_reported_for_its_subscription_and_the_plan_stands(
    emulator: Emulator, gateway: Gateway
) -> None:
    subscribers = raise_account(gateway)
    config = load_text(RAISE, "billing.yaml")
    snapshot = read_snapshot(gateway, config)
    plan = build_plan(config, snapshot)
    # Canceled after the account was read: Stripe has no invoice to preview for it.
    (kept_customer, kept, seats), (gone_customer, gone, _) = subscribers
    gateway.delete(f"/v1/subscriptions/{gone}")
    preview = read_revenue(gateway, plan, snapshot)
    (migration,) = preview.migrations
    refused = {row.subscription: row.refused for row in migration.subscriptions}
    assert refused[kept] is None
    assert refused[gone] is not None
    assert "invoice_upcoming_none" in refused[gone]
    assert f"No upcoming invoices for customer: {gone_customer}" in refused[gone]
    assert (migration.before, migration.after) == (seats * 1000, seats * 1200)
    shown = dataclasses.replace(plan, revenue=preview.to_json())
    assert shown.without_revenue() == plan
    text = render_text(shown, color=False)
    assert "1 preview refused, left out of the totals: " + f"{gone} ({gone_customer}): as is: " in (
        text
    )
    assert text.splitlines()[-1].endswith("1 to migrate.")
    assert f"{kept_customer} {kept}" in text
    assert "1 preview refused, left out of the totals" in render_markdown(shown)


def test_a_plan_saved_with_its_preview_applies_after_usage_moved_it(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    seeded = seed_legacy_account(emulator, customers=3)
    config = load_text(MIGRATION_CONFIG, "billing.yaml")
    catalog = dataclasses.replace(config, migrations=())
    assert not converge(catalog, gateway).has_changes
    path = write_config(tmp_path, MIGRATION_CONFIG)
    saved = tmp_path / "plan.json"
    made = stripe_reconcile(
        "plan", "--revenue", "--out", str(saved), "-f", str(path), url=emulator.url
    )
    assert made.returncode == 0, made.stderr
    before = RevenuePreview.from_json(json.loads(saved.read_text())["revenue"])
    # Usage flows on: one more day of usage records and, for the meter, as many events.
    customer: SeededCustomer = seeded.customers[2]
    at = customer.period_start + 10 * 86400
    report_usage(gateway, customer.legacy_item, 100, at)
    send_meter_event(
        gateway, "video_seconds", customer.customer, 100, at=at, identifier="moved-usage"
    )
    again = stripe_reconcile(
        "plan", "--revenue", "--format", "json", "-f", str(path), url=emulator.url
    )
    moved = RevenuePreview.from_json(json.loads(again.stdout)["revenue"])
    row_then = next(
        r for r in before.migrations[0].subscriptions if r.subscription == customer.subscription
    )
    row_now = next(
        r for r in moved.migrations[0].subscriptions if r.subscription == customer.subscription
    )
    # 2,115 seconds of usage records at 0.35 cents (740.25 -> 740), then 2,215 (775.25 -> 775);
    # the meter had none, then 100 seconds (35 cents).
    assert (row_then.before, row_then.after) == (740, 0)
    assert (row_now.before, row_now.after) == (775, 35)
    assert json.loads(again.stdout)["changes"] == json.loads(saved.read_text())["changes"]

    applied = stripe_reconcile("apply", str(saved), "-f", str(path), url=emulator.url)
    assert applied.returncode == 0, applied.stderr
    after = build_plan(config, read_snapshot(gateway, config))
    migration = next(c for c in after.changes if c.kind == "migration")
    assert migration.details["counts"] == {"scheduled": 3}
