"""simulate: each migration end to end on a test clock, both invoices checked.

Every expected amount here is worked out by hand in the comment beside it
from Stripe's documented rules (see ``reconciler/expected_invoice.py``), not
by calling the project's pricing code: 0.35 cents a second is ``0.35`` in
``unit_amount_decimal``, a line is rounded half up to the cent once.
simulate reports 1,200 + 845 + 2,010 = 4,055 units as usage records before
the switch and sends 1,500 + 990 + 3,125 = 5,615 units as meter events after.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG
from reconciler.expected_invoice import Coupon, TaxRate, expected_invoice, expected_line
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.live import read_snapshot
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock, report_usage, send_meter_event
from tests.e2e.conftest import stripe_reconcile

REPO = Path(__file__).resolve().parents[2]
DAY = 86400
HOUR = 3600


def config(prices: str, *, meter: str = "", migration: str = "") -> str:
    return f"""
version: 1
mode: test
products: [{{id: prod_api, name: API}}]
meters:
  - {{event_name: api_seconds, display_name: API seconds, aggregation: sum{meter}}}
prices:
{prices}
migrations:
  api-to-meter: {{from_price: api_legacy, to_price: api_new{migration}}}
"""


def simulate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "billing.yaml"
    path.write_text(text)
    return stripe_reconcile("simulate", "-f", str(path))


def check_lines(out: str) -> list[tuple[str, str, str]]:
    """(price, why, verdict line) for each invoice simulate checked."""
    found = re.findall(
        r"price (\S+) \(price_\w+\): [\d,]+ units billed\n\s+why: (.+)\n\s+(line .+)", out
    )
    return [(p, why, verdict) for p, why, verdict in found]


def test_simulate_the_example() -> None:
    result = stripe_reconcile("simulate", "-f", str(REPO / "billing.yaml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # 4,055 x 0.35 c = 1,419.25 c -> $14.19; 5,615 x 0.35 c = 1,965.25 c -> $19.65
    assert check_lines(out) == [
        (
            "video_seconds_legacy",
            "per unit: 4,055 units at $0.0035 = $14.1925, rounded to $14.19",
            "line $14.19, invoice total $14.19: ok",
        ),
        (
            "video_seconds_metered",
            "per unit: 5,615 units at $0.0035 = $19.6525, rounded to $19.65",
            "line $19.65, invoice total $19.65: ok",
        ),
    ]
    # says what it made up, dates rather than epochs, the meter by name
    assert "the account has no price video_seconds_legacy: simulate made price_" in out
    assert re.search(r"switches to video_seconds_metered on \d{4}-\d{2}-\d{2}\n", out)
    assert "meter video_seconds (Video seconds generated, sum)" in out
    assert not re.search(r"\b1\d{9}\b", out)  # no raw epoch anywhere
    assert out.rstrip().endswith("billed as expected on both sides of the switch.")


def test_simulate_flat_plus_graduated_tiers(tmp_path: Path) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: eur
    recurring: {interval: month, usage: metered, meter: api_seconds}
    tiers_mode: graduated
    tiers:
      - {up_to: 1000, unit_amount: 0, flat_amount: 500}
      - {up_to: inf, unit_amount_decimal: "0.45"}
"""
    result = simulate(tmp_path, config(prices))
    assert result.returncode == 0, result.stderr
    # 500 flat + 3,055 x 0.45 = 1,374.75 -> 1,874.75 c -> €18.75
    # 500 flat + 4,615 x 0.45 = 2,076.75 -> 2,576.75 c -> €25.77
    assert [verdict for _, _, verdict in check_lines(result.stdout)] == [
        "line €18.75, invoice total €18.75: ok",
        "line €25.77, invoice total €25.77: ok",
    ]
    assert (
        "graduated tier 1: 1,000 units at €0.00 + flat €5.00; tier 2: 3,055 units at €0.0045"
        in result.stdout
    )


def test_simulate_volume_tiers(tmp_path: Path) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    recurring: {interval: month, usage: metered, meter: api_seconds}
    tiers_mode: volume
    tiers:
      - {up_to: 5000, unit_amount: 1}
      - {up_to: inf, unit_amount_decimal: "0.5", flat_amount: 100}
"""
    result = simulate(tmp_path, config(prices))
    assert result.returncode == 0, result.stderr
    # 4,055 <= 5,000: every unit at 1 c = $40.55
    # 5,615 > 5,000: every unit at 0.5 c = 2,807.5 + 100 flat = 2,907.5 -> $29.08
    assert [verdict for _, _, verdict in check_lines(result.stdout)] == [
        "line $40.55, invoice total $40.55: ok",
        "line $29.08, invoice total $29.08: ok",
    ]


def test_simulate_transform_quantity_rounding_up(tmp_path: Path) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount: 3
    transform_quantity: {divide_by: 60, round: up}
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    result = simulate(tmp_path, config(prices))
    assert result.returncode == 0, result.stderr
    # 4,055 / 60 = 67.58 -> 68 minutes x 3 c = $2.04; 5,615 / 60 = 93.58 -> 94 x 3 = $2.82
    lines = check_lines(result.stdout)
    assert lines[0][1] == "4,055 / 60 rounded up = 68 units; per unit: 68 units at $0.03 = $2.04"
    assert [verdict for _, _, verdict in lines] == [
        "line $2.04, invoice total $2.04: ok",
        "line $2.82, invoice total $2.82: ok",
    ]


def test_simulate_count_meter_with_its_own_payload_keys(tmp_path: Path) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount: 25
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    text = config(prices).replace(
        "aggregation: sum}", "aggregation: count, customer_key: account, value_key: seconds}"
    )
    result = simulate(tmp_path, text)
    assert result.returncode == 0, result.stderr
    # legacy side sums usage records: 4,055 x 25 c = $1,013.75
    # the count meter counts events: 3 x 25 c = $0.75
    assert [verdict for _, _, verdict in check_lines(result.stdout)] == [
        "line $1,013.75, invoice total $1,013.75: ok",
        "line $0.75, invoice total $0.75: ok",
    ]
    assert "3 meter events on meter api_seconds (API seconds, count)" in result.stdout


def test_simulate_an_hourly_pre_aggregated_meter_with_its_own_payload_keys(
    tmp_path: Path,
) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount: 2
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    text = config(prices).replace(
        "aggregation: sum}",
        "aggregation: sum, customer_key: account, value_key: seconds, event_time_window: hour}",
    )
    result = simulate(tmp_path, text)
    assert result.returncode == 0, result.stderr + result.stdout
    # one event an hour, so each is its own window and counts: 5,615 x 2 c = $112.30;
    # the legacy side sums usage records: 4,055 x 2 c = $81.10
    assert [verdict for _, _, verdict in check_lines(result.stdout)] == [
        "line $81.10, invoice total $81.10: ok",
        "line $112.30, invoice total $112.30: ok",
    ]
    assert (
        "3 meter events on meter api_seconds (API seconds, sum) with values 1,500, 990, 3,125, "
        "pre-aggregated per hour: the latest event sent in each hour counts "
        "(1,500, 990, 3,125)"
    ) in result.stdout


def test_simulate_a_daily_pre_aggregated_meter_bills_the_days_last_event(
    tmp_path: Path,
) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount: 2
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    text = config(prices).replace("aggregation: sum}", "aggregation: sum, event_time_window: day}")
    result = simulate(tmp_path, text)
    assert result.returncode == 0, result.stderr + result.stdout
    # the three events fall in one day: only the last sent, 3,125, counts: 3,125 x 2 c = $62.50
    assert [verdict for _, _, verdict in check_lines(result.stdout)] == [
        "line $81.10, invoice total $81.10: ok",
        "line $62.50, invoice total $62.50: ok",
    ]
    assert "the latest event sent in each day counts (3,125)" in result.stdout


def test_simulate_rehearses_a_dated_switch_at_the_period_end(tmp_path: Path) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount_decimal: "0.1"
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    text = config(prices, migration=", switch_at: now")
    result = simulate(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "billing.yaml switches at now; the rehearsal switches at the period end" in (
        result.stdout
    )
    # 4,055 x 0.1 = 405.5 -> 406 c; 5,615 x 0.1 = 561.5 -> 562 c
    assert [verdict for _, _, verdict in check_lines(result.stdout)] == [
        "line $4.06, invoice total $4.06: ok",
        "line $5.62, invoice total $5.62: ok",
    ]


def test_simulate_a_missing_legacy_price_id_is_refused_clearly(tmp_path: Path) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount: 1
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    text = config(prices).replace("from_price: api_legacy", "from_price: price_nowhere")
    result = simulate(tmp_path, text)
    assert result.returncode == 1
    assert "from_price price_nowhere not found in the account" in result.stderr


def test_simulate_a_consolidation_checks_each_old_line_and_the_merged_new_one(
    tmp_path: Path,
) -> None:
    prices = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount: 1
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""
    text = config(prices).replace(
        "from_price: api_legacy, to_price: api_new",
        "prices: {api_legacy: api_new, api_older: api_new}",
    )
    result = simulate(tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "migration api-to-meter: api_legacy -> api_new, api_older -> api_new" in result.stdout
    # Two legacy items, each with 4,055 units of usage records at 1 cent: $40.55 a line and
    # $81.10 on the one invoice; after the switch one meter item, 5,615 units = $56.15.
    assert check_lines(result.stdout) == [
        (
            "api_legacy",
            "per unit: 4,055 units at $0.01 = $40.55",
            "line $40.55, invoice total $81.10: ok",
        ),
        (
            "api_older",
            "per unit: 4,055 units at $0.01 = $40.55",
            "line $40.55, invoice total $81.10: ok",
        ),
        (
            "api_new",
            "per unit: 5,615 units at $0.01 = $56.15",
            "line $56.15, invoice total $56.15: ok",
        ),
    ]


def test_simulate_a_consolidation_of_seats_bills_their_sum_at_the_new_price(
    tmp_path: Path,
) -> None:
    text = (
        PRICE_INCREASE.replace(
            "  - {lookup_key: seat_2026,",
            "  - {lookup_key: addon_2025, product: prod_app, currency: usd, unit_amount: 200,\n"
            "     recurring: {interval: month}}\n  - {lookup_key: seat_2026,",
        )
        % ""
    )
    text = text.replace(
        "{from_price: seat_2025, to_price: seat_2026}",
        "{prices: {seat_2025: seat_2026, addon_2025: seat_2026}}",
    )
    result = simulate(tmp_path, text)
    assert result.returncode == 0, result.stderr
    # 3 seats x $10.00 + 3 add-ons x $2.00 = $36.00 at signup; the two items become one of
    # 3 + 3 = 6 seats at $12.50 = $75.00 at the renewal that is the switch.
    assert check_lines(result.stdout) == [
        (
            "seat_2025",
            "per unit: 3 units at $10.00 = $30.00",
            "line $30.00, invoice total $36.00: ok",
        ),
        (
            "addon_2025",
            "per unit: 3 units at $2.00 = $6.00",
            "line $6.00, invoice total $36.00: ok",
        ),
        (
            "seat_2026",
            "per unit: 6 units at $12.50 = $75.00",
            "line $75.00, invoice total $75.00: ok",
        ),
    ]


def test_simulate_without_migrations_says_so(tmp_path: Path) -> None:
    result = simulate(tmp_path, "version: 1\nmode: test\n")
    assert result.returncode == 0
    assert "declares no migrations: nothing to simulate" in result.stdout


def _invoices(gateway: Gateway, customer: str) -> list[dict[str, Any]]:
    found = gateway.get(
        "/v1/invoices", {"customer": customer, "limit": 100}, stripe_version=LEGACY_API_VERSION
    )["data"]
    return sorted(found, key=lambda invoice: invoice["created"])


def _amounts(invoice: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(line["quantity"]), int(line["amount"])) for line in invoice["lines"]["data"]]


def _legacy_account(gateway: Gateway, start: int) -> dict[str, Any]:
    """A legacy customer as the migration meets it: 0.35 c a second on usage records and a
    49.00 platform fee, a 10% forever coupon and 20% exclusive tax, invoices sent (no card)."""
    product = gateway.post("/v1/products", {"id": "prod_video_generation", "name": "Video"})
    legacy = gateway.post(
        "/v1/prices",
        {
            "product": product["id"],
            "currency": "usd",
            "unit_amount_decimal": "0.35",
            "lookup_key": "video_seconds_legacy",
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
        },
        stripe_version=LEGACY_API_VERSION,
    )
    fee = gateway.post(
        "/v1/prices",
        {
            "product": product["id"],
            "currency": "usd",
            "unit_amount": 4900,
            "recurring": {"interval": "month"},
        },
    )
    rate = gateway.post(
        "/v1/tax_rates", {"display_name": "VAT", "percentage": 20, "inclusive": False}
    )
    coupon = gateway.post("/v1/coupons", {"percent_off": 10, "duration": "forever"})
    clock = gateway.post("/v1/test_helpers/test_clocks", {"frozen_time": start})
    customer = gateway.post(
        "/v1/customers", {"email": "studio@example.com", "test_clock": clock["id"]}
    )
    sub = gateway.post(
        "/v1/subscriptions",
        {
            "customer": customer["id"],
            "items": [{"price": legacy["id"]}, {"price": fee["id"], "quantity": 1}],
            "default_tax_rates": [rate["id"]],
            "discounts": [{"coupon": coupon["id"]}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
        stripe_version=LEGACY_API_VERSION,
    )
    return {"legacy": legacy, "clock": clock, "customer": customer, "sub": sub}


def test_the_switch_invoices_with_a_coupon_and_tax(emulator: Emulator, gateway: Gateway) -> None:
    """The legacy item moves to the meter price at the period end; the invoice before and
    the one after, worked by hand."""
    start = 1_767_225_600  # 2026-01-01, a fixed frozen time: the emulator has no 35-day rule here
    account = _legacy_account(gateway, start)
    clock, customer, sub = account["clock"]["id"], account["customer"]["id"], account["sub"]
    item = sub["items"]["data"][0]["id"]
    period_end = int(sub["items"]["data"][0]["current_period_end"])
    advance_clock(gateway, clock, start + 3 * HOUR, wait_seconds=1)
    for n, seconds in enumerate((300, 315, 300)):  # 915 s
        report_usage(gateway, item, seconds, start + n * HOUR + 60)
    desired = load_text(MIGRATION_CONFIG, "migrations.yaml")
    desired = dataclasses.replace(
        desired,
        products=(),
        migrations=(dataclasses.replace(desired.migrations[0], require_usage_parity=None),),
    )
    snapshot = read_snapshot(gateway, desired)
    apply_plan(build_plan(desired, snapshot), snapshot, gateway)
    advance_clock(gateway, clock, period_end + HOUR, wait_seconds=1)
    send_meter_event(
        gateway, "video_seconds", customer, 1000, at=period_end + 60, identifier="after-1000"
    )
    renewed = gateway.get(f"/v1/subscriptions/{sub['id']}")
    next_end = int(renewed["items"]["data"][0]["current_period_end"])
    advance_clock(gateway, clock, next_end + HOUR, wait_seconds=1)
    before, after = _invoices(gateway, customer)[-2:]

    # Before the switch, on usage records: 300 + 315 + 300 = 915 s.
    # usage 915 x 0.35 = 320.25 -> 320; platform fee 4,900 (in advance): subtotal 5,220
    # coupon 10% of 5,220 = 522, spread: 522 x 320 / 5,220 = 32 on usage, 490 on the fee
    # tax 20%: (320 - 32) = 288 x 0.2 = 57.6 -> 58; (4,900 - 490) = 4,410 x 0.2 = 882 -> 940
    # total 5,220 - 522 + 940 = 5,638
    assert _amounts(before) == [(915, 320), (1, 4900)]
    assert before["lines"]["data"][0]["price"]["id"] == account["legacy"]["id"]
    assert (before["subtotal"], before["tax"], before["total"]) == (5220, 940, 5638)
    assert before["total_discount_amounts"][0]["amount"] == 522

    # After: 1,000 s of meter events x 0.35 = 350; fee 4,900: subtotal 5,250
    # coupon 10% = 525: 525 x 350 / 5,250 = 35 on usage, 490 on the fee
    # tax 20%: 315 x 0.2 = 63; 4,410 x 0.2 = 882 -> 945; total 5,250 - 525 + 945 = 5,670
    assert _amounts(after) == [(1000, 350), (1, 4900)]
    assert after["lines"]["data"][0]["price"]["id"] != account["legacy"]["id"]
    assert (after["subtotal"], after["tax"], after["total"]) == (5250, 945, 5670)

    # The independent model agrees with the hand-worked figures on both sides.
    per_second = {"currency": "usd", "unit_amount_decimal": "0.35"}
    for invoice, seconds in ((before, 915), (after, 1000)):
        usage = expected_line(per_second, seconds).amount
        model = expected_invoice(
            [usage, 4900],
            coupons=[Coupon(percent_off=Decimal(10))],
            tax_rates=[TaxRate(Decimal(20))],
        )
        assert model.total == invoice["total"]


EXAMPLE_PRICE = """
  - lookup_key: api_new
    product: prod_api
    currency: usd
    unit_amount_decimal: "0.35"
    recurring: {interval: month, usage: metered, meter: api_seconds}
"""


def test_simulate_in_an_account_refuses_a_catalog_not_applied(
    emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "billing.yaml"
    path.write_text(config(EXAMPLE_PRICE))
    result = stripe_reconcile("simulate", "-f", str(path), "--use-key", url=emulator.url)
    assert result.returncode == 1
    assert "does not hold" in result.stderr and "run apply first" in result.stderr
    assert emulator.stats()["by_route"].get("POST /v1/test_helpers/test_clocks", 0) == 0


def test_simulate_refuses_a_legacy_price_no_meter_can_match(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    path = tmp_path / "billing.yaml"
    path.write_text(config(EXAMPLE_PRICE).partition("migrations:")[0])  # the catalog first
    applied = stripe_reconcile("apply", "-f", str(path), "--auto-approve", url=emulator.url)
    assert applied.returncode == 0, applied.stderr
    path.write_text(config(EXAMPLE_PRICE))
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_api",
            "currency": "usd",
            "unit_amount": 1,
            "lookup_key": "api_legacy",
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "max"},
        },
        stripe_version=LEGACY_API_VERSION,
    )
    result = stripe_reconcile("simulate", "-f", str(path), "--use-key", url=emulator.url)
    assert result.returncode == 1
    assert "api_legacy aggregates usage records with max, which no meter formula matches" in (
        result.stderr
    )


PRICE_INCREASE = """
version: 1
mode: test
products: [{id: prod_app, name: App}]
prices:
  - {lookup_key: seat_2025, product: prod_app, currency: usd, unit_amount: 1000,
     recurring: {interval: month}}
  - {lookup_key: seat_2026, product: prod_app, currency: usd, unit_amount: 1250,
     recurring: {interval: month}}
migrations:
  raise-2026: {from_price: seat_2025, to_price: seat_2026%s}
"""


def test_simulate_a_price_increase_bills_each_seat_at_the_new_price(tmp_path: Path) -> None:
    result = simulate(tmp_path, PRICE_INCREASE % "")
    assert result.returncode == 0, result.stderr
    # Licensed prices bill each period in advance: 3 seats x $10.00 = $30.00 at signup,
    # then 3 seats x $12.50 = $37.50 at the renewal that is the switch.
    assert check_lines(result.stdout) == [
        (
            "seat_2025",
            "per unit: 3 units at $10.00 = $30.00",
            "line $30.00, invoice total $30.00: ok",
        ),
        (
            "seat_2026",
            "per unit: 3 units at $12.50 = $37.50",
            "line $37.50, invoice total $37.50: ok",
        ),
    ]
    assert "period 1: seat_2025: licensed: no usage, billed by quantity" in result.stdout


def test_simulate_a_declared_quantity(tmp_path: Path) -> None:
    result = simulate(tmp_path, PRICE_INCREASE % ", quantity: 1")
    assert result.returncode == 0, result.stderr
    # 3 seats x $10.00 = $30.00, then the declared single seat at $12.50.
    assert [why for _, why, _ in check_lines(result.stdout)] == [
        "per unit: 3 units at $10.00 = $30.00",
        "per unit: 1 unit at $12.50 = $12.50",
    ]
