"""simulate: each migration end to end on a test clock, both invoices checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.conftest import stripe_reconcile

REPO = Path(__file__).resolve().parents[2]

TIERED = """
version: 1
mode: test
products: [{id: prod_api, name: API}]
meters: [{event_name: api_seconds, display_name: API seconds, aggregation: sum}]
prices:
  - lookup_key: api_graduated
    product: prod_api
    currency: eur
    recurring: {interval: month, usage: metered, meter: api_seconds}
    tiers_mode: graduated
    tiers:
      - {up_to: 1000, unit_amount: 0, flat_amount: 500}
      - {up_to: inf, unit_amount_decimal: "0.45"}
migrations:
  api-to-meter: {from_price: api_legacy, to_price: api_graduated}
"""


def simulate(config: Path) -> subprocess.CompletedProcess[str]:
    return stripe_reconcile("simulate", "-f", str(config))


def test_simulate_the_example(tmp_path: Path) -> None:
    result = simulate(REPO / "billing.yaml")
    assert result.returncode == 0, result.stderr
    # 4055 s x 0.35 = 14.1925, 5615 s x 0.35 = 19.6525 (rounded half up to the cent)
    assert "invoice from usage records: 4055 units -> 14.19 (ok)" in result.stdout
    assert "invoice from meter events: 5615 units -> 19.65 (ok)" in result.stdout
    assert result.stdout.rstrip().endswith("billed as expected on both sides of the switch.")


def test_simulate_a_tiered_price(tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(TIERED)
    result = simulate(config)
    assert result.returncode == 0, result.stderr
    # 500 flat + 3055 x 0.45 = 1874.75 cents -> 18.75; 500 + 4615 x 0.45 = 2576.75 -> 25.77
    assert "invoice from usage records: 4055 units -> 18.75 (ok)" in result.stdout
    assert "invoice from meter events: 5615 units -> 25.77 (ok)" in result.stdout


def test_simulate_without_migrations_says_so(tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text("version: 1\nmode: test\n")
    result = simulate(config)
    assert result.returncode == 0
    assert "declares no migrations: nothing to simulate" in result.stdout
