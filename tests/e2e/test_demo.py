"""The demo, run as a newcomer runs it: a subprocess with no key and no network."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import stripe_reconcile

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
]


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
    assert out.count(": ok") == 4 and "MISMATCH" not in out
    # The price increase: 0.35 c a second 20% up is 0.42 c; customer 0 sends 250 + 251 +
    # 252 + 253 + 254 = 1,260 s in its first raised period: 529.2 c, rounded to $5.29.
    assert '~ unit_amount: "0.35" -> "0.42" ($0.0035 -> $0.0042)' in out
    assert "12 subscriptions move to the new price at their period end" in out
    assert "expected line $5.29" in out
    assert "replaced earlier by video_seconds_metered; none of its subscriptions is left" in out
    assert out.rstrip().endswith("No changes. The account matches billing.yaml.")
    assert list(tmp_path.iterdir()) == []  # leaves nothing behind


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
    # Customer 0's first metered period: 150 + 151 + 152 + 153 + 154 = 760 s on the meter.
    # graduated: 500 x 0 + 300 flat, then 260 x 0.5 c = 130 -> 430 c = $4.30
    # (the why is wrapped in its column: look for its pieces)
    assert "api_graduated: graduated tier 1: 500" in out and "+ flat $3.00; tier 2:" in out
    assert "expected line $4.30" in out
    # Raised 20%: flat $3.60 and 0.6 c a second past 500; customer 0's 1,260 s after the
    # increase: 360 + 760 x 0.6 = 816 c.
    assert "expected line $8.16" in out
    assert out.count(": ok") == 4 and "MISMATCH" not in out
    assert out.rstrip().endswith(f"No changes. The account matches {config}.")


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
