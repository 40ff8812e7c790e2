"""Branches users hit that the example's happy path does not: a legacy price read by id,
archiving a product, replacing and reactivating an alert, a failed apply in JSON, and a
saved plan the account has since made impossible. Command-line tests run the CLI as a
subprocess against the emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.errors import StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.live import read_legacy_price
from tests.e2e.conftest import EXAMPLE_CATALOG, stripe_reconcile

EXAMPLE = EXAMPLE_CATALOG
ALERT = 'alert.video_seconds["Video seconds passed 50,000"]'


def cli(emulator: Emulator, *args: str) -> Any:
    return stripe_reconcile(*args, url=emulator.url)


def config(tmp_path: Path, text: str, name: str = "billing.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def applied(emulator: Emulator, path: Path) -> None:
    done = cli(emulator, "apply", "--auto-approve", "-f", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def plan_is_empty(emulator: Emulator, path: Path) -> None:
    again = cli(emulator, "plan", "--detailed-exitcode", "-f", str(path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout


def writes(emulator: Emulator) -> int:
    routes = emulator.stats()["by_route"]
    return sum(n for route, n in routes.items() if not route.startswith("GET "))


# --- a legacy price read by id --------------------------------------------------------------


def test_a_legacy_price_is_read_by_id_whole(gateway: Gateway) -> None:
    legacy = gateway.post(
        "/v1/prices",
        {
            "product_data": {"name": "Video seconds (legacy)"},
            "currency": "usd",
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [{"up_to": 1000, "unit_amount": 0}, {"up_to": "inf", "unit_amount": 2}],
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "max"},
        },
        stripe_version=LEGACY_API_VERSION,
    )
    found = read_legacy_price(gateway, legacy["id"])
    assert found is not None
    assert found["id"] == legacy["id"]
    assert found["recurring"]["aggregate_usage"] == "max"
    assert [t["up_to"] for t in found["tiers"]] == [1000, None]


def test_a_legacy_price_id_that_does_not_exist_reads_as_none(gateway: Gateway) -> None:
    assert read_legacy_price(gateway, "price_1DoesNotExist000000") is None


def test_a_failure_other_than_404_is_not_mistaken_for_absence(
    emulator: Emulator, gateway: Gateway
) -> None:
    """Emulator only: a 500 on demand."""
    emulator.set_faults("500=1")
    with pytest.raises(StripeCallError) as caught:
        read_legacy_price(gateway, "price_1DoesNotExist000000")
    assert caught.value.http_status == 500


# --- archiving a product --------------------------------------------------------------------


def test_a_product_declared_inactive_is_archived_then_left_alone(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    applied(emulator, EXAMPLE)
    retired = config(
        tmp_path,
        EXAMPLE.read_text()
        .replace(
            "    description: Prepaid generation credits.\n",
            "    description: Prepaid generation credits.\n    active: false\n",
        )
        .replace(
            "    unit_amount: 1000\n    default: true\n",
            "    unit_amount: 1000\n    active: false\n",
        ),
    )
    plan = cli(emulator, "plan", "--detailed-exitcode", "-f", str(retired))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    lines = plan.stdout.splitlines()
    assert "  - product.prod_credit_packs will be archived" in lines
    assert "  - price.credits_1000 will be archived" in lines
    assert lines[-1] == "Plan: 0 to create, 0 to update, 0 to replace, 2 to archive."
    applied(emulator, retired)
    product = gateway.get("/v1/products/prod_credit_packs")
    assert (product["active"], product["default_price"]) == (False, None)
    plan_is_empty(emulator, retired)


# --- alerts ---------------------------------------------------------------------------------


def alerts(gateway: Gateway) -> list[dict[str, Any]]:
    return list(gateway.list_all("/v1/billing/alerts"))


def test_a_threshold_change_replaces_the_alert(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    applied(emulator, EXAMPLE)
    (old,) = alerts(gateway)
    raised = config(tmp_path, EXAMPLE.read_text().replace("threshold: 50000", "threshold: 60000"))
    plan = cli(emulator, "plan", "-f", str(raised))
    assert plan.returncode == 0, plan.stderr
    assert f"  -/+ {ALERT} will be replaced" in plan.stdout.splitlines()
    assert "threshold: 50000 -> 60000" in plan.stdout
    applied(emulator, raised)
    (active,) = alerts(gateway)  # lists leave archived alerts out
    assert active["id"] != old["id"]
    assert (active["status"], active["usage_threshold"]["gte"]) == ("active", 60000)
    assert gateway.get(f"/v1/billing/alerts/{old['id']}")["status"] == "archived"
    plan_is_empty(emulator, raised)


def test_an_alert_deactivated_out_of_band_is_reactivated(
    emulator: Emulator, gateway: Gateway
) -> None:
    applied(emulator, EXAMPLE)
    (alert,) = alerts(gateway)
    gateway.post(f"/v1/billing/alerts/{alert['id']}/deactivate")
    plan = cli(emulator, "plan", "--detailed-exitcode", "-f", str(EXAMPLE))
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert f"  ~ {ALERT} will be reactivated" in plan.stdout.splitlines()
    applied(emulator, EXAMPLE)
    (after,) = alerts(gateway)
    assert (after["id"], after["status"]) == (alert["id"], "active")
    plan_is_empty(emulator, EXAMPLE)


# --- failures a user must be able to read ---------------------------------------------------


def test_a_failed_apply_in_json_says_what_failed_and_exits_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    broken = config(
        tmp_path,
        EXAMPLE.read_text().replace(
            "    threshold: 50000\n", "    threshold: 50000\n    customer: cus_doesnotexist\n"
        ),
    )
    result = cli(emulator, "apply", "--auto-approve", "--format", "json", "-f", str(broken))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)  # stdout is the JSON document and nothing else
    assert report["ok"] is False
    assert report["failed"] == f"{ALERT}: create"
    assert "No such customer: 'cus_doesnotexist'" in report["error"]
    assert report["remaining"] == [f"{ALERT}: create"]
    assert "product.prod_video_generation: create" in report["done"]
    assert result.stderr.startswith("Error: apply stopped at " + ALERT)


def test_a_saved_plan_the_account_now_contradicts_is_refused_as_stale(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    planfile = tmp_path / "plan.json"
    made = cli(emulator, "plan", "-f", str(EXAMPLE), "--out", str(planfile))
    assert made.returncode == 0, made.stderr
    # Someone else takes a declared lookup key; billing.yaml does not say adopt: true.
    foreign = gateway.post(
        "/v1/prices",
        {
            "currency": "usd",
            "unit_amount": 900,
            "lookup_key": "credits_1000",
            "product_data": {"name": "Someone else's credits"},
        },
    )
    before = writes(emulator)
    result = cli(emulator, "apply", str(planfile), "-f", str(EXAMPLE))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: the account changed since the plan was made:\n")
    assert (
        f"price.credits_1000: lookup key 'credits_1000' belongs to {foreign['id']}, which "
        "stripe-reconcile did not create; set adopt: true"
    ) in result.stderr
    assert writes(emulator) == before, "a refused plan wrote to the account"
    assert gateway.get(f"/v1/prices/{foreign['id']}")["lookup_key"] == "credits_1000"
