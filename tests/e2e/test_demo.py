"""The demo, run as a newcomer runs it: a subprocess with no key and no network."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler import demo
from reconciler.cli import main
from reconciler.config import load_text
from reconciler.live import read_snapshot
from tests.e2e.conftest import stripe_reconcile
from tests.e2e.test_any_price_migrations import converge

SECTIONS = [
    "Validate billing.yaml",
    "A legacy account on the emulator",
    "Plan: meters and prices first; the migration waits for parity",
    "Apply",
    "Dual-write: meter events beside the usage records for a full period",
    "Plan again: parity holds, every subscription gets a schedule",
    "Apply the migration",
    "Status",
    "Across the switch on the test clocks",
    "The last legacy invoice and the first metered one",
    "Status and plan once more",
    "A price increase at the next renewal",
    "Across the renewal on the test clocks",
    "The last invoice before the increase and the first after",
    "Plan: the old price retired, nothing left on it",
    "Two legacy plans become one",
    "Across the consolidation on the test clocks",
    "The last invoice on the two plans and the first on one",
    "Status and plan: both plans moved, nothing left to change",
    "Verdict",
]

# The third act, worked by hand: the seed gives 1 platform_fee seat ($49.00) to customers
# 0, 3, 6 and 9, 2 priority_rendering seats ($15.00 each) to 0, 4, 6 and 10; both move to
# studio_seat ($40.00 a seat), and a subscription holding both becomes one item.
CONSOLIDATED = [
    "Studio 00: 1 platform_fee + 2 priority_rendering -> one item: 3 studio_seat = $120.00: ok",
    "Studio 03: 1 platform_fee -> 1 studio_seat = $40.00: ok",
    "Studio 04: 2 priority_rendering -> 2 studio_seat = $80.00: ok",
    "Studio 06: 1 platform_fee + 2 priority_rendering -> one item: 3 studio_seat = $120.00: ok",
    "Studio 09: 1 platform_fee -> 1 studio_seat = $40.00: ok",
    "Studio 10: 2 priority_rendering -> 2 studio_seat = $80.00: ok",
]


def consolidated(out: str) -> list[str]:
    """The third act's line per subscription."""
    return re.findall(r"^  (Studio \d\d: .+)$", out, flags=re.MULTILINE)


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    result = stripe_reconcile("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    headings = re.findall(r"^\d+\. (.+)$", out, flags=re.MULTILINE)
    assert headings == SECTIONS
    assert "12 blocked" in out  # parity holds the migration back at first
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to archive, 1 to migrate." in out
    assert "12 scheduled" in out
    assert "12 done" in out
    assert "MISMATCH" not in out
    # The price increase: 0.35 c a second 20% up is 0.42 c; customer 0 sends 250 + 251 +
    # 252 + 253 + 254 = 1,260 s in its first raised period: 529.2 c, rounded to $5.29.
    assert '~ unit_amount: "0.35" -> "0.42" ($0.0035 -> $0.0042)' in out
    assert "12 subscriptions move to the new price at their period end" in out
    assert "expected line $5.29" in out
    assert "replaced earlier by video_seconds_metered; none of its subscriptions is left" in out
    # Two plans become one: 6 subscriptions scheduled, one invoice each side checked.
    assert "6 subscriptions hold the legacy seat plans: 2 both platform_fee" in out
    assert "      platform_fee: studio_seat\n        priority_rendering: studio_seat\n" in out
    assert "# 6 to schedule" in out and "6 done" in out
    assert consolidated(out) == CONSOLIDATED
    # Customer 0 side by side: 1 x $49.00 + 2 x $15.00 before, one item of 3 x $40.00 after.
    assert re.search(r"1 x platform_fee +49\.00 +3 x studio_seat +120\.00", out)
    assert "1 x $49.00 + 2 x $15.00 = $79.00" in out
    assert "1 + 2 = 3 seats x $40.00 = $120.00, one" in out
    assert out.count("seat lines: ok") == 2
    assert out.rstrip().endswith(
        "usage records to the meter: 2 invoices checked, ok\n"
        "the price increase: 2 invoices checked, ok\n"
        "two plans become one: 6 subscriptions checked, ok\n"
        "Every check holds."
    )
    assert list(tmp_path.iterdir()) == []  # leaves nothing behind


def test_a_broken_expectation_of_the_third_act_fails_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rule worked by hand says $41.00 a studio seat; billing.yaml declares $40.00.
    monkeypatch.setattr(demo, "STUDIO_SEAT", 4100)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(
        "Error: the demo's checks failed: two plans become one (6 of 6) (see MISMATCH above)"
    )
    out = result.stdout
    assert "Studio 03: 1 platform_fee -> 1 studio_seat = $41.00: MISMATCH" in out
    # Customer 0 side by side: the invoice's line beside the rule's, wrapped in its column.
    assert "1 + 2 = 3 seats x $41.00 = $123.00, one" in out
    assert "billed: studio_seat 3 x $40.00 =" in out
    assert out.count("seat lines: MISMATCH") == 1 and out.count("seat lines: ok") == 1
    assert "two plans become one: 6 subscriptions checked, 6 MISMATCH" in out
    assert "the price increase: 2 invoices checked, ok" in out  # the other acts still hold
    assert "1 of 3 acts failed their checks." in out
    assert list(tmp_path.iterdir()) == []


OTHER = """
version: 1
mode: test
products: [{id: prod_api, name: API}]
meters:
  - {event_name: api_seconds, display_name: API seconds, aggregation: sum,
     customer_key: account, value_key: seconds, event_time_window: day}
prices:
  - lookup_key: api_graduated
    product: prod_api
    currency: usd
    recurring: {interval: month, usage: metered, meter: api_seconds}
    tiers_mode: graduated
    tiers:
      - {up_to: 500, unit_amount: 0, flat_amount: 300}
      - {up_to: inf, unit_amount_decimal: "0.5"}
migrations:
  api-to-meter:
    from_price: api_legacy
    to_price: api_graduated
    switch_at: now
    batch: 4
    require_usage_parity: 1%
"""


def test_demo_tells_the_story_with_another_billing_yaml(tmp_path: Path) -> None:
    config = tmp_path / "other.yaml"
    config.write_text(OTHER)
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.findall(r"^\d+\. (.+)$", out, flags=re.MULTILINE) == SECTIONS
    assert "demo: the switch is at the period end (the file says now)" in out
    assert "demo: 4 customers are seeded: one batch of 4" in out
    assert "subscribed to the usage-record price api_legacy" in out
    assert "4 done" in out
    # Customers 0 to 3: 0 holds both seat plans, 3 the platform fee; studio_seat goes on
    # the to_price's product.
    assert "product: prod_api" in out
    assert consolidated(out) == CONSOLIDATED[:2]
    # Customer 0's first metered period: 150 + 151 + 152 + 153 + 154 = 760 s on the meter.
    # graduated: 500 x 0 + 300 flat, then 260 x 0.5 c = 130 -> 430 c = $4.30
    # (the why is wrapped in its column: look for its pieces)
    assert "api_graduated: graduated tier 1: 500" in out and "+ flat $3.00; tier 2:" in out
    assert "expected line $4.30" in out
    # Raised 20%: flat $3.60 and 0.6 c a second past 500; customer 0's 1,260 s after the
    # increase: 360 + 760 x 0.6 = 816 c.
    assert "expected line $8.16" in out
    assert "MISMATCH" not in out
    assert "two plans become one: 2 subscriptions checked, ok" in out
    assert out.rstrip().endswith("Every check holds.")


def test_demo_refuses_what_its_account_cannot_show_up_front(tmp_path: Path) -> None:
    config = tmp_path / "eur.yaml"
    config.write_text(OTHER.replace("currency: usd", "currency: eur"))
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "to_price api_graduated is in eur; the demo's legacy account bills in usd" in (
        result.stderr
    )
    assert "2. A legacy account" not in result.stdout  # refused before anything starts

    config.write_text(OTHER.replace("aggregation: sum", "aggregation: count"))
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "meter api_seconds aggregates with count" in result.stderr

    config.write_text("version: 1\nmode: test\n")
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "declares no migration" in result.stderr

    pairs = "    prices: {api_legacy: api_graduated, api_older: api_graduated}\n"
    config.write_text(
        OTHER.replace("    from_price: api_legacy\n    to_price: api_graduated\n", pairs).replace(
            "    require_usage_parity: 1%\n", ""
        )
    )
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "moves 2 prices at once; the demo's story moves one" in result.stderr

    studio = "  - {lookup_key: studio_seat, product: prod_api, currency: usd, unit_amount: 100}\n"
    config.write_text(OTHER.replace("migrations:\n", studio + "migrations:\n"))
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "uses price studio_seat; the demo's third act seeds the legacy plans" in result.stderr
    assert "2. A legacy account" not in result.stdout

    config.write_text(OTHER.replace("api-to-meter:", "one-studio-plan:"))
    result = stripe_reconcile("demo", "-f", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "uses migration one-studio-plan; the demo's third act seeds" in result.stderr


def test_the_third_act_holds_each_subscription_to_its_seeded_seats_after_the_switch() -> None:
    """The act on its own: nothing checks before the switch, and a subscription whose seats
    changed behind the seed's back fails its check while the others pass."""
    rehearsal = demo.prepare(load_text(OTHER, "other.yaml"), "other.yaml")
    with demo.running_demo(rehearsal) as story:
        story.seed()
        customer_0 = story.customers[0]
        assert customer_0.priority_item is not None
        story.gateway.post(
            f"/v1/subscription_items/{customer_0.priority_item}",
            {"quantity": 3, "proration_behavior": "none"},
        )
        desired, _ = demo.consolidated(
            dataclasses.replace(rehearsal.desired, migrations=()), rehearsal
        )
        assert not converge(desired, story.gateway).has_changes
        studio = read_snapshot(story.gateway, desired).prices["studio_seat"].stripe_id
        assert [c.summary() for c in story.consolidations(studio)] == [
            "Studio 00: 1 platform_fee + 2 priority_rendering -> one item: 3 studio_seat "
            "= $120.00: MISMATCH (no invoice after)",
            "Studio 03: 1 platform_fee -> 1 studio_seat = $40.00: MISMATCH (no invoice after)",
        ]
        assert story.cross_the_consolidation() == 2
        tampered, untouched = story.consolidations(studio)
    # Customer 0 was seeded with 2 priority seats and holds 3: its last invoice before
    # the switch (at signup) still bills 2, its first after 1 + 3 = 4 seats, not 3.
    assert tampered.before is not None and tampered.before.checks
    assert tampered.after is not None and not tampered.after.checks
    assert tampered.after.seats == (demo.SeatLine("studio_seat", 4, 16000),)
    assert tampered.summary().endswith(": MISMATCH")
    assert untouched.checks
    assert untouched.summary() == "Studio 03: 1 platform_fee -> 1 studio_seat = $40.00: ok"
