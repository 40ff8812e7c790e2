"""The reviewed plan, or nothing: a saved plan file is evidence, never an instruction.

Each test saves a plan with the command line, then tampers with the file or
changes the account behind it, and checks that apply refuses with a message
naming the entry and writes nothing at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG, SeededAccount, seed_legacy_account
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from tests.e2e.conftest import EXAMPLE_CATALOG, stripe_reconcile

EXAMPLE = EXAMPLE_CATALOG


def account_state(gateway: Gateway) -> list[Any]:
    """Everything a write could change, sorted: equal before and after means nothing written."""
    found: list[Any] = []
    for path in ("/v1/products", "/v1/prices", "/v1/billing/meters", "/v1/billing/alerts"):
        for obj in gateway.list_all(path):
            found.append(json.dumps(obj, sort_keys=True))
    for schedule in gateway.list_all(
        "/v1/subscription_schedules", stripe_version=LEGACY_API_VERSION
    ):
        found.append(json.dumps(schedule, sort_keys=True))
    for sub in gateway.list_all("/v1/subscriptions", {"status": "all"}):
        found.append(json.dumps({k: sub[k] for k in ("id", "schedule", "metadata")}))
    return sorted(found)


def saved_plan(emulator: Emulator, tmp_path: Path, config: Path) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "plan.json"
    made = stripe_reconcile("plan", "-f", str(config), "--out", str(out), url=emulator.url)
    assert made.returncode == 0, made.stderr
    return out, json.loads(out.read_text())


def refused(emulator: Emulator, gateway: Gateway, plan: Path, config: Path, *expected: str) -> str:
    before = account_state(gateway)
    result = stripe_reconcile("apply", str(plan), "-f", str(config), url=emulator.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    assert account_state(gateway) == before, "a refused plan wrote to the account"
    return result.stderr


def change_at(plan: dict[str, Any], address: str) -> dict[str, Any]:
    return next(c for c in plan["changes"] if c["address"] == address)


def write(path: Path, plan: dict[str, Any]) -> None:
    path.write_text(json.dumps(plan, indent=2))


def test_an_edited_amount_is_refused(emulator: Emulator, gateway: Gateway, tmp_path: Path) -> None:
    path, plan = saved_plan(emulator, tmp_path, EXAMPLE)
    change_at(plan, "price.pro_monthly_base")["after"]["unit_amount"] = "1"
    write(path, plan)
    message = refused(emulator, gateway, path, EXAMPLE, "price.pro_monthly_base", "unit_amount")
    assert "plan file is not the plan" in message
    assert "'1'" in message and "'4900'" in message


def test_an_added_archive_of_an_undeclared_price_is_refused(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    foreign = gateway.post(
        "/v1/prices",
        {"currency": "usd", "unit_amount": 500, "product_data": {"name": "Someone else's"}},
    )
    path, plan = saved_plan(emulator, tmp_path, EXAMPLE)
    plan["changes"].append(
        {
            "address": f"price.{foreign['id']}",
            "kind": "price",
            "action": "archive",
            "reason": "left over from an interrupted replace (managed, lost its lookup key)",
            "irreversible": True,
            "stripe_id": foreign["id"],
            "before": {"active": True},
            "after": {"active": False},
            "changes": [{"field": "active", "before": True, "after": False}],
            "details": {},
        }
    )
    write(path, plan)
    refused(emulator, gateway, path, EXAMPLE, "plan file is not the plan", "changes")
    assert gateway.get(f"/v1/prices/{foreign['id']}")["active"] is True


def test_an_edited_stripe_id_is_refused(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    first = stripe_reconcile("apply", "--auto-approve", "-f", str(EXAMPLE), url=emulator.url)
    assert first.returncode == 0, first.stderr
    other = gateway.post(
        "/v1/products", {"id": "prod_someone_elses", "name": "Not declared anywhere"}
    )
    config = tmp_path / "billing.yaml"
    config.write_text(EXAMPLE.read_text().replace("name: Pro plan", "name: Pro plan 2027"))
    path, plan = saved_plan(emulator, tmp_path, config)
    change_at(plan, "product.prod_pro_plan")["stripe_id"] = other["id"]
    write(path, plan)
    refused(emulator, gateway, path, config, "product.prod_pro_plan", "stripe_id")
    assert gateway.get(f"/v1/products/{other['id']}")["name"] == "Not declared anywhere"


@pytest.fixture
def seeded(emulator: Emulator) -> SeededAccount:
    return seed_legacy_account(emulator, customers=4)


@pytest.fixture
def migration_config(
    emulator: Emulator, gateway: Gateway, seeded: SeededAccount, tmp_path: Path
) -> Path:
    """The seeded account with its meter and price applied; the migration still to plan."""
    config = tmp_path / "migration.yaml"
    config.write_text(MIGRATION_CONFIG.split("migrations:")[0])
    done = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert done.returncode == 0, done.stderr
    config.write_text(MIGRATION_CONFIG)
    return config


def rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return list(change_at(plan, "migration.video-seconds-to-meter")["details"]["subscriptions"])


@pytest.mark.parametrize(
    ("field", "value"),
    [("end_behavior", "cancel"), ("proration_behavior", "always_invoice")],
)
def test_edited_migration_phase_fields_are_refused(
    emulator: Emulator,
    gateway: Gateway,
    *,
    migration_config: Path,
    tmp_path: Path,
    field: str,
    value: str,
) -> None:
    path, plan = saved_plan(emulator, tmp_path, migration_config)
    edited = 0
    for row in rows(plan):
        if row.get("params"):
            row["params"][field] = value
            edited += 1
    assert edited
    write(path, plan)
    refused(emulator, gateway, path, migration_config, "plan file is not the plan", field)


def test_an_edited_subscription_id_is_refused(
    emulator: Emulator,
    gateway: Gateway,
    seeded: SeededAccount,
    migration_config: Path,
    tmp_path: Path,
) -> None:
    path, plan = saved_plan(emulator, tmp_path, migration_config)
    row = next(r for r in rows(plan) if r["action"] == "create_schedule")
    row["subscription"] = next(
        c.subscription for c in seeded.customers if c.subscription != row["subscription"]
    )
    write(path, plan)
    refused(emulator, gateway, path, migration_config, "plan file is not the plan", "subscription")


def test_a_schedule_created_by_someone_else_after_the_plan_is_stale(
    emulator: Emulator, gateway: Gateway, migration_config: Path, tmp_path: Path
) -> None:
    path, plan = saved_plan(emulator, tmp_path, migration_config)
    target = next(r for r in rows(plan) if r["action"] == "create_schedule")["subscription"]
    gateway.post(
        "/v1/subscription_schedules",
        {"from_subscription": target},
        stripe_version=LEGACY_API_VERSION,
    )
    message = refused(emulator, gateway, path, migration_config, "changed since the plan", target)
    assert "Nothing was written" in message


def test_a_legacy_price_archived_after_the_plan_is_stale(
    emulator: Emulator,
    gateway: Gateway,
    seeded: SeededAccount,
    migration_config: Path,
    tmp_path: Path,
) -> None:
    path, _ = saved_plan(emulator, tmp_path, migration_config)
    gateway.post(f"/v1/prices/{seeded.legacy_price}", {"active": "false"})
    message = refused(emulator, gateway, path, migration_config, "changed since the plan")
    assert "archived" in message
    # Planned afresh, every subscription waits, with the reason, and nothing fails.
    status = stripe_reconcile("status", "-f", str(migration_config), url=emulator.url)
    assert status.returncode == 0, status.stderr
    assert "is archived" in status.stdout, status.stdout


def test_a_meter_someone_else_created_under_a_declared_event_name_is_stale(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    path, _ = saved_plan(emulator, tmp_path, EXAMPLE)
    gateway.post(
        "/v1/billing/meters",
        {
            "event_name": "video_seconds",
            "display_name": "Someone else's meter",
            "default_aggregation": {"formula": "sum"},
        },
    )
    refused(emulator, gateway, path, EXAMPLE, "changed since the plan", "meter.video_seconds")
    meter = next(m for m in gateway.list_all("/v1/billing/meters"))
    assert meter["display_name"] == "Someone else's meter"


def test_a_failed_write_then_a_fixed_config_converges(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    config = tmp_path / "billing.yaml"
    broken = EXAMPLE.read_text().replace(
        "    threshold: 50000\n", "    threshold: 50000\n    customer: cus_doesnotexist\n"
    )
    config.write_text(broken)
    failed = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert failed.returncode == 1
    assert "cus_doesnotexist" in failed.stderr
    assert "Stripe refused this for good" in failed.stderr
    customer = gateway.post("/v1/customers", {"name": "Big account"})
    config.write_text(broken.replace("cus_doesnotexist", customer["id"]))
    fixed = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert fixed.returncode == 0, fixed.stderr
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(config), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr
