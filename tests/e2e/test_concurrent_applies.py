"""Applies started a moment apart, and applies killed at any point, converge.

Two or three ``apply --auto-approve`` processes over one account, started at
0, 0.3 and 0.8 s, each request slowed so the runs overlap: every one exits 0,
the account holds one of everything, no subscription has two schedules, and
a fresh plan is empty. A migration apply killed with SIGKILL after a random
number of schedule writes is finished by a rerun, and pausing the migration
then releases every schedule stripe-reconcile made (and restores the ones it
adopted).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG, SeededAccount, seed_legacy_account
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.model import MANAGED_BY_KEY
from tests.e2e.conftest import API_KEY, EXAMPLE_CATALOG, kill_at_write, stripe_reconcile

EXAMPLE = EXAMPLE_CATALOG
OFFSETS = {"two": (0.0, 0.3), "three": (0.0, 0.3, 0.8)}
SLOW = "seed=1,latency=1.0:0.02"  # every request takes 20 ms: the applies overlap


def applies_at(
    emulator: Emulator, config: Path, offsets: tuple[float, ...], *plan_file: str
) -> list[Any]:
    """Start one apply per offset (seconds after the first) and wait for all of them;
    each applies ``plan_file`` when given, else plans itself (``--auto-approve``)."""
    results: list[Any] = [None] * len(offsets)
    began = time.monotonic()

    def run(index: int, offset: float) -> None:
        time.sleep(max(0.0, began + offset - time.monotonic()))
        how = list(plan_file) or ["--auto-approve"]
        results[index] = stripe_reconcile("apply", *how, "-f", str(config), url=emulator.url)

    workers = [threading.Thread(target=run, args=(i, offset)) for i, offset in enumerate(offsets)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    return results


def assert_all_succeeded(results: list[Any]) -> None:
    assert all(r is not None for r in results), "an apply did not finish"
    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results]
    assert not any("Traceback" in r.stderr for r in results)


def plan_is_empty(emulator: Emulator, config: Path) -> None:
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(config), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr


def live_schedules(gateway: Gateway) -> list[dict[str, Any]]:
    return [
        s
        for s in gateway.list_all("/v1/subscription_schedules", stripe_version=LEGACY_API_VERSION)
        if s["status"] in ("not_started", "active")
    ]


@pytest.mark.parametrize("run", range(3))
@pytest.mark.parametrize("offsets", sorted(OFFSETS))
def test_applies_a_moment_apart_all_succeed_with_one_of_everything(
    emulator: Emulator, offsets: str, run: int
) -> None:
    emulator.set_faults(SLOW)
    assert_all_succeeded(applies_at(emulator, EXAMPLE, OFFSETS[offsets]))
    emulator.set_faults(None)
    gateway = Gateway(API_KEY, api_base=emulator.url)
    counts = Counter(
        {
            "products": len(list(gateway.list_all("/v1/products"))),
            "prices": len(list(gateway.list_all("/v1/prices"))),
            "meters": len(list(gateway.list_all("/v1/billing/meters"))),
            "alerts": len(list(gateway.list_all("/v1/billing/alerts"))),
        }
    )
    assert counts == Counter(products=3, prices=5, meters=2, alerts=1)
    plan_is_empty(emulator, EXAMPLE)


@pytest.mark.parametrize("offsets", sorted(OFFSETS))
def test_one_saved_plan_applied_a_moment_apart_finishes_once(
    emulator: Emulator, tmp_path: Path, offsets: str
) -> None:
    """A saved plan overtaken by a concurrent apply of itself finishes as a no-op."""
    seeded = seed_legacy_account(emulator, customers=6)
    config = tmp_path / "migration.yaml"
    config.write_text(MIGRATION_CONFIG)
    saved = tmp_path / "plan.json"
    made = stripe_reconcile("plan", "-f", str(config), "--out", str(saved), url=emulator.url)
    assert made.returncode == 0, made.stderr
    emulator.set_faults(SLOW)
    assert_all_succeeded(applies_at(emulator, config, OFFSETS[offsets], str(saved)))
    emulator.set_faults(None)
    assert_one_schedule_each(Gateway(API_KEY, api_base=emulator.url), seeded)
    plan_is_empty(emulator, config)


@pytest.fixture
def migration(tmp_path: Path) -> Path:
    config = tmp_path / "migration.yaml"
    config.write_text(MIGRATION_CONFIG)
    return config


def assert_one_schedule_each(gateway: Gateway, seeded: SeededAccount) -> None:
    per_subscription = Counter(s["subscription"] for s in live_schedules(gateway))
    assert set(per_subscription) == {c.subscription for c in seeded.customers}
    assert set(per_subscription.values()) == {1}, per_subscription


@pytest.mark.parametrize("run", range(2))
@pytest.mark.parametrize("offsets", sorted(OFFSETS))
def test_migration_applies_a_moment_apart_give_one_schedule_per_subscription(
    emulator: Emulator, migration: Path, offsets: str, run: int
) -> None:
    seeded = seed_legacy_account(emulator, customers=8)
    emulator.set_faults(SLOW)
    assert_all_succeeded(applies_at(emulator, migration, OFFSETS[offsets]))
    emulator.set_faults(None)
    assert_one_schedule_each(Gateway(API_KEY, api_base=emulator.url), seeded)
    plan_is_empty(emulator, migration)


@pytest.mark.parametrize("seed", [31, 32, 33, 34])
def test_migration_killed_at_a_random_point_then_rerun_then_paused_releases_every_schedule(
    emulator: Emulator, migration: Path, seed: int
) -> None:
    seeded = seed_legacy_account(emulator, customers=40)
    foreign = {c.subscription: c.schedule for c in seeded.customers if c.schedule}
    # 40 subscriptions: 30 need two schedule writes, 10 adopted ones need one.
    total_writes = 2 * (40 - len(foreign)) + len(foreign)
    writes = random.Random(seed).randint(1, total_writes - 1)
    emulator.set_faults(f"seed={seed},latency=1.0:0.01")
    command = ["apply", "--auto-approve", "-f", str(migration)]
    killed = kill_at_write(emulator, command, writes, "POST /v1/subscription_sch")
    assert killed == -signal.SIGKILL, "the apply finished before the kill"
    emulator.set_faults(None)
    rerun = stripe_reconcile("apply", "--auto-approve", "-f", str(migration), url=emulator.url)
    assert rerun.returncode == 0, rerun.stderr
    gateway = Gateway(API_KEY, api_base=emulator.url)
    assert_one_schedule_each(gateway, seeded)
    plan_is_empty(emulator, migration)

    paused = migration.with_name("paused.yaml")
    paused.write_text(MIGRATION_CONFIG + "    paused: true\n")
    undo = stripe_reconcile("apply", "--auto-approve", "-f", str(paused), url=emulator.url)
    assert undo.returncode == 0, undo.stderr
    remaining = {s["subscription"]: s for s in live_schedules(gateway)}
    # Every schedule stripe-reconcile made is released; the adopted ones are theirs again.
    assert set(remaining) == set(foreign)
    for subscription, schedule in remaining.items():
        assert schedule["id"] == foreign[subscription]
        assert MANAGED_BY_KEY not in (schedule.get("metadata") or {})
    plan_is_empty(emulator, paused)


def test_two_different_configs_at_once_both_finish_and_one_more_apply_settles_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Different requests never share a key, so neither apply fails; Stripe keeps alert
    titles unique per nothing, so each may create its own alert under the title: the
    next apply of either archives the extra one, and the account holds one of each."""
    other = tmp_path / "billing.yaml"
    other.write_text(
        EXAMPLE.read_text()
        .replace("threshold: 50000", "threshold: 60000")
        .replace("nickname: Pro base fee", "nickname: Pro base fee (2027)")
    )
    emulator.set_faults(SLOW)
    began = time.monotonic()
    results: list[Any] = [None, None]

    def run(index: int, config: Path, offset: float) -> None:
        time.sleep(max(0.0, began + offset - time.monotonic()))
        results[index] = stripe_reconcile(
            "apply", "--auto-approve", "-f", str(config), url=emulator.url
        )

    workers = [
        threading.Thread(target=run, args=(0, EXAMPLE, 0.0)),
        threading.Thread(target=run, args=(1, other, 0.3)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    emulator.set_faults(None)
    assert_all_succeeded(results)
    settle = stripe_reconcile("apply", "--auto-approve", "-f", str(other), url=emulator.url)
    assert settle.returncode == 0, settle.stderr
    gateway = Gateway(API_KEY, api_base=emulator.url)
    alerts = [a for a in gateway.list_all("/v1/billing/alerts") if a["status"] != "archived"]
    assert len(alerts) == 1, alerts
    assert alerts[0]["usage_threshold"]["gte"] == 60000
    plan_is_empty(emulator, other)


def test_a_second_alert_under_a_declared_title_is_archived(emulator: Emulator) -> None:
    first = stripe_reconcile("apply", "--auto-approve", "-f", str(EXAMPLE), url=emulator.url)
    assert first.returncode == 0, first.stderr
    gateway = Gateway(API_KEY, api_base=emulator.url)
    meter = next(
        m for m in gateway.list_all("/v1/billing/meters") if m["event_name"] == "video_seconds"
    )
    gateway.post(
        "/v1/billing/alerts",
        {
            "alert_type": "usage_threshold",
            "title": "Video seconds passed 50,000",
            "usage_threshold": {"gte": 50000, "meter": meter["id"], "recurrence": "one_time"},
        },
    )
    shown = stripe_reconcile("plan", "-f", str(EXAMPLE), url=emulator.url)
    assert "two writers created one each" in shown.stdout, shown.stdout
    again = stripe_reconcile("apply", "--auto-approve", "-f", str(EXAMPLE), url=emulator.url)
    assert again.returncode == 0, again.stderr
    live = [a["id"] for a in gateway.list_all("/v1/billing/alerts") if a["status"] != "archived"]
    assert len(live) == 1
    plan_is_empty(emulator, EXAMPLE)
