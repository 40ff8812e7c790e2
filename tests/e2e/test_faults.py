"""Apply under injected faults and sudden death: it converges and never duplicates."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from reconciler.apply import apply_plan, plan_steps
from reconciler.config import load_config, load_text
from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG, seed_legacy_account
from reconciler.errors import ApplyError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.planner import build_plan
from tests.e2e.conftest import API_KEY, EXAMPLE_CATALOG, kill_at_write, stripe_reconcile

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(EXAMPLE_CATALOG)
EXPECTED_COUNTS = {"products": 3, "prices": 5, "meters": 2, "alerts": 1}


def object_counts(gateway: Gateway) -> dict[str, int]:
    return {
        "products": len(list(gateway.list_all("/v1/products"))),
        "prices": len(list(gateway.list_all("/v1/prices"))),
        "meters": len(list(gateway.list_all("/v1/billing/meters"))),
        "alerts": len(list(gateway.list_all("/v1/billing/alerts"))),
    }


def assert_converged(emulator: Emulator) -> None:
    emulator.set_faults(None)
    clean = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not build_plan(EXAMPLE, read_snapshot(clean)).has_changes
    assert object_counts(clean) == EXPECTED_COUNTS
    lookup_keys = Counter(p["lookup_key"] for p in clean.list_all("/v1/prices"))
    assert max(lookup_keys.values()) == 1


@pytest.mark.parametrize(
    "faults",
    [
        "seed=1,500=0.3",
        "seed=2,429=0.3",
        "seed=3,reset=0.3",
        "seed=4,lost=0.3",
        "seed=5,500=0.1,429=0.1,reset=0.1,lost=0.1,latency=0.2:0.01",
        "seed=6,500=0.1,429=0.1,reset=0.1,lost=0.1,latency=0.2:0.01",
    ],
)
def test_apply_converges_through_faults(emulator: Emulator, faults: str) -> None:
    emulator.set_faults(faults)
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=12, sleep=lambda _s: None)
    snapshot = read_snapshot(gateway)
    apply_plan(build_plan(EXAMPLE, snapshot), snapshot, gateway)
    assert sum(emulator.stats()["faults"].values()) > 0
    assert gateway.stats.retries > 0
    assert_converged(emulator)


def test_a_request_that_keeps_failing_stops_apply_and_says_what_is_left(
    emulator: Emulator,
) -> None:
    emulator.set_faults("seed=1,500=1.0")
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=2, sleep=lambda _s: None)
    with pytest.raises(StripeCallError, match=r"\(500"):
        read_snapshot(gateway)
    emulator.set_faults(None)
    snapshot = read_snapshot(gateway)
    plan = build_plan(EXAMPLE, snapshot)
    emulator.set_faults("seed=1,500=1.0")
    retries_before = gateway.stats.retries
    with pytest.raises(ApplyError) as caught:
        apply_plan(plan, snapshot, gateway, concurrency=1)
    message = str(caught.value)
    assert message.startswith("apply stopped at product.prod_video_generation: create: ")
    assert "done (0): nothing" in message
    assert "not done (14):" in message
    # the first write, retried twice; nothing else started
    assert gateway.stats.retries - retries_before == 2
    emulator.set_faults(None)
    clean = Gateway(API_KEY, api_base=emulator.url)
    assert object_counts(clean) == {"products": 0, "prices": 0, "meters": 0, "alerts": 0}


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_apply_killed_at_a_random_point_then_rerun_converges(emulator: Emulator, seed: int) -> None:
    """Killed right after its k-th write, k drawn over the whole apply: it really dies
    mid-apply, and a rerun finishes the job with nothing twice."""
    planned = plan_steps(
        build_plan(EXAMPLE, read_snapshot(Gateway(API_KEY, api_base=emulator.url)))
    )
    writes = random.Random(seed).randint(1, len(planned) - 1)
    emulator.set_faults(f"seed={seed},latency=1.0:0.03")  # 30 ms a request: a clean kill
    command = ["apply", "--auto-approve", "--rate-limit", "1000", "-f", str(EXAMPLE_CATALOG)]
    # One write at a time, so the kill lands between the k-th write and the next.
    killed = kill_at_write(emulator, [*command, "--concurrency", "1"], writes)
    assert killed == -signal.SIGKILL, "the apply finished before the kill"
    emulator.set_faults(None)
    rerun = stripe_reconcile(*command, url=emulator.url)
    assert rerun.returncode == 0, rerun.stderr
    assert "Apply complete" in rerun.stdout, "the killed apply had already done everything"
    assert_converged(emulator)


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_migration_converges_through_faults_with_one_schedule_each(
    emulator: Emulator, seed: int
) -> None:
    account = seed_legacy_account(emulator, customers=8, usage_days=1)
    desired = load_text(MIGRATION_CONFIG, "migration.yaml")
    emulator.set_faults(f"seed={seed},500=0.1,429=0.1,reset=0.1,lost=0.15")
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=12, sleep=lambda _s: None)
    for _ in range(3):  # reruns finish whatever a final failure left
        snapshot = read_snapshot(gateway, desired)
        try:
            apply_plan(build_plan(desired, snapshot), snapshot, gateway)
            break
        except ApplyError:
            continue
    emulator.set_faults(None)
    clean = Gateway(API_KEY, api_base=emulator.url)
    final = build_plan(desired, read_snapshot(clean, desired))
    assert not final.has_changes
    schedules = list(clean.list_all("/v1/subscription_schedules"))
    per_subscription = Counter(s["subscription"] for s in schedules if s["status"] != "released")
    assert set(per_subscription) == set(account.subscriptions)
    assert max(per_subscription.values()) == 1
    for product in clean.list_all("/v1/products"):
        if product.get("default_price"):
            assert clean.get(f"/v1/prices/{product['default_price']}")["active"] is True
