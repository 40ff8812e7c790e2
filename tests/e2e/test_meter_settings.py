"""A meter's fixed settings end to end: its own payload keys and its event time window
are created as declared, imported back, and a change to any of them, in billing.yaml
or behind the tool's back, stops the plan with the way out."""

from __future__ import annotations

from pathlib import Path

from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from tests.e2e.conftest import converge, stripe_reconcile

HOURLY = """\
version: 1
mode: test
products:
  - {id: prod_api, name: API}
meters:
  - event_name: api_tokens
    display_name: API tokens
    aggregation: sum
    customer_key: account
    value_key: tokens
    event_time_window: hour
prices:
  - lookup_key: api_tokens_metered
    product: prod_api
    currency: usd
    unit_amount: 2
    recurring: {interval: month, usage: metered, meter: api_tokens}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "billing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_meter_is_made_with_its_keys_and_window_and_imports_back(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    assert not converge(HOURLY, gateway).has_changes
    (meter,) = gateway.get("/v1/billing/meters")["data"]
    assert meter["customer_mapping"] == {"event_payload_key": "account", "type": "by_id"}
    assert meter["value_settings"] == {"event_payload_key": "tokens"}
    assert meter["event_time_window"] == "hour"

    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = load_text(out.read_text(encoding="utf-8"), str(out))
    (back,) = imported.meters
    assert (back.customer_key, back.value_key, back.event_time_window) == (
        "account",
        "tokens",
        "hour",
    )
    again = stripe_reconcile("plan", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout


def test_a_window_changed_in_billing_yaml_stops_the_plan_with_the_way_out(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    assert not converge(HOURLY, gateway).has_changes
    daily = write(tmp_path, HOURLY.replace("event_time_window: hour", "event_time_window: day"))
    result = stripe_reconcile("plan", "-f", str(daily), url=emulator.url)
    assert result.returncode == 1
    assert "meter.api_tokens: event_time_window 'hour' -> 'day'" in result.stderr
    assert "Declare a new meter with a new event_name" in result.stderr
    gone = write(tmp_path, HOURLY.replace("    event_time_window: hour\n", ""))
    result = stripe_reconcile("plan", "-f", str(gone), url=emulator.url)
    assert result.returncode == 1
    assert "meter.api_tokens: event_time_window 'hour' -> None" in result.stderr


def test_a_meter_made_behind_the_tools_back_with_other_settings_is_not_taken_over(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    gateway.post(
        "/v1/billing/meters",
        {
            "event_name": "api_tokens",
            "display_name": "API tokens",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
            "event_time_window": "day",
        },
    )
    result = stripe_reconcile("plan", "-f", str(write(tmp_path, HOURLY)), url=emulator.url)
    assert result.returncode == 1
    assert (
        "meter.api_tokens: customer_key 'stripe_customer_id' -> 'account', "
        "value_key 'value' -> 'tokens', event_time_window 'day' -> 'hour': "
    ) in result.stderr
    assert "mark 'api_tokens' active: false" in result.stderr
    assert len(gateway.get("/v1/billing/meters")["data"]) == 1  # nothing was written
