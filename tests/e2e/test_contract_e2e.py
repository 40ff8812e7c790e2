"""End to end, on either backend: plan, apply, an empty plan, a migration across a test
clock's switch, both invoices, and simulate.

Marked ``stripe_live``: they run on the e2e emulator by default and, unchanged,
against Stripe test mode when ``STRIPE_TEST_API_KEY`` is set
(``STRIPE_TEST_API_KEY=sk_test_... pytest -m stripe_live tests/e2e/test_contract_e2e.py``).
Each run works under its own prefix, starts its test clocks 32 days back
(so meter events after a monthly switch are inside Stripe's 35-day window
and not in the future), waits for clocks to be ``ready`` and for meter
summaries to show the events, and cleans up after itself
(:mod:`tests.e2e.contract_helpers`).

Amounts are worked by hand: the legacy and the metered price both charge
0.35 cents a second (``unit_amount_decimal: "0.35"``), and Stripe rounds a
line half up to the cent once (docs.stripe.com/billing/subscriptions/decimal-amounts).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.gateway import Gateway
from reconciler.scenario import report_usage, send_meter_event
from tests.e2e.conftest import API_KEY
from tests.e2e.contract_helpers import (
    HOUR,
    LIVE_KEY,
    Backend,
    billing_yaml,
    legacy_price,
    legacy_subscriber,
    unique_prefix,
)

pytestmark = pytest.mark.stripe_live

EMULATOR_ONLY = "needs the emulator's own controls (injected faults); Stripe test mode has none"


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    prefix = unique_prefix()
    if LIVE_KEY:
        gateway = Gateway(LIVE_KEY, rate_limit=20)
        made = Backend(LIVE_KEY, None, prefix, gateway)
    else:
        emulator = request.getfixturevalue("emulator")
        gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
        made = Backend(API_KEY, emulator.url, prefix, gateway)
    try:
        yield made
    finally:
        made.clean_up()


def _plan_exit(backend: Backend, config: Path) -> tuple[int, str]:
    result = backend.cli("plan", "-f", str(config), "--detailed-exitcode")
    assert result.returncode in (0, 2), result.stderr
    return result.returncode, result.stdout


def test_plan_apply_converge_migrate_and_simulate(backend: Backend, tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    prefix = backend.prefix

    # 1. The catalog: planned, applied, and then nothing left to do.
    config.write_text(billing_yaml(prefix, with_migration=False))
    code, out = _plan_exit(backend, config)
    assert code == 2
    assert "Plan: 3 to create, 0 to update, 0 to replace, 0 to archive." in out
    applied = backend.cli("apply", "-f", str(config), "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    code, out = _plan_exit(backend, config)
    assert code == 0, out

    # 2. A legacy subscriber on a test clock, 915 s of usage records in its first period.
    legacy = legacy_price(backend)
    start = backend.start_time()
    made = legacy_subscriber(backend, str(legacy["id"]), start)
    clock = str(made["clock"]["id"])
    customer = str(made["customer"]["id"])
    item = made["subscription"]["items"]["data"][0]
    period_end = int(item["current_period_end"])
    backend.advance(clock, start + 3 * HOUR)
    for n, seconds in enumerate((300, 315, 300)):
        report_usage(backend.gateway, str(item["id"]), seconds, start + n * HOUR + 60)

    # 3. The migration: one subscription to schedule, applied, then the plan is empty.
    config.write_text(billing_yaml(prefix, with_migration=True))
    code, out = _plan_exit(backend, config)
    assert code == 2
    assert "1 to migrate" in out
    applied = backend.cli("apply", "-f", str(config), "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    code, out = _plan_exit(backend, config)
    assert code == 0, out

    # 4. Across the switch: 1,000 s of meter events in the new period.
    backend.advance(clock, period_end + HOUR)
    meter = next(
        m
        for m in backend.gateway.get("/v1/billing/meters", {"limit": 100})["data"]
        if m["event_name"] == f"{prefix}_video_seconds"
    )
    send_meter_event(
        backend.gateway,
        f"{prefix}_video_seconds",
        customer,
        1000,
        at=period_end + 60,
        identifier=f"{prefix}-after-switch",
    )
    sub = backend.gateway.get(f"/v1/subscriptions/{made['subscription']['id']}")
    next_end = int(sub["items"]["data"][0]["current_period_end"])
    backend.wait_for_meter(str(meter["id"]), customer, period_end, next_end, 1000)
    backend.advance(clock, next_end + HOUR)

    lines = {  # (price, usage period) -> (quantity, amount)
        (str(line["price"]["id"]), int(line["period"]["start"]), int(line["period"]["end"])): (
            int(line["quantity"]),
            int(line["amount"]),
        )
        for invoice in backend.invoices(customer)
        for line in invoice["lines"]["data"]
        if line.get("price")
    }
    metered = backend.gateway.get(
        "/v1/prices", {"lookup_keys": [f"{prefix}_video_seconds_metered"], "active": "true"}
    )["data"][0]
    # before the switch: 915 s x 0.35 c = 320.25 c -> 320 c
    assert lines[str(legacy["id"]), start, period_end] == (915, 320)
    # after it: 1,000 s x 0.35 c = 350 c
    assert lines[str(metered["id"]), period_end, next_end] == (1000, 350)

    # 5. simulate rehearses the same migration in the same account, and checks both sides.
    simulated = backend.cli("simulate", "-f", str(config), "--use-key")
    assert simulated.returncode == 0, simulated.stderr + simulated.stdout
    assert f"price {prefix}_video_seconds_legacy ({legacy['id']})" in simulated.stdout
    assert simulated.stdout.rstrip().endswith("billed as expected on both sides of the switch.")

    # 6. Everything it did was what billing.yaml says: still nothing to change.
    code, out = _plan_exit(backend, config)
    assert code == 0, out


def test_clean_up_retires_what_a_run_made(backend: Backend, tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(billing_yaml(backend.prefix, with_migration=False))
    applied = backend.cli("apply", "-f", str(config), "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    legacy_price(backend)
    backend.clock(backend.start_time())
    backend.clean_up()
    gateway, prefix = backend.gateway, backend.prefix
    product = gateway.get(f"/v1/products/prod_{prefix}_video")
    assert product["active"] is False
    prices = gateway.get("/v1/prices", {"product": product["id"], "limit": 100})["data"]
    assert len(prices) == 2 and not any(p["active"] for p in prices)
    meters = gateway.get("/v1/billing/meters", {"limit": 100})["data"]
    assert [m["status"] for m in meters if prefix in m["event_name"]] == ["inactive"]
    clocks = gateway.get("/v1/test_helpers/test_clocks", {"limit": 100})["data"]
    assert not [c for c in clocks if prefix in str(c.get("name"))]


def test_apply_converges_through_injected_faults(
    backend: Backend, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Only on the emulator: Stripe test mode cannot be made to fail on purpose."""
    if backend.live:
        pytest.skip(EMULATOR_ONLY)
    emulator = request.getfixturevalue("emulator")
    config = tmp_path / "billing.yaml"
    config.write_text(billing_yaml(backend.prefix, with_migration=False))
    emulator.set_faults("seed=5,500=0.2,429=0.2,reset=0.1")
    try:
        applied = backend.cli("apply", "-f", str(config), "--auto-approve")
    finally:
        emulator.set_faults(None)
    assert applied.returncode == 0, applied.stderr
    code, out = _plan_exit(backend, config)
    assert code == 0, out
