"""Migration benchmarks: planning cost in memory, and a whole migration over HTTP.

1. Pure planning of one migration over 20,000 subscriptions: seconds and
   peak memory (tracemalloc), no I/O at all.
2. Plan and apply a migration of N subscriptions (2,000 by default) against the
   emulator at its 25 req/s limit: writes and reads per subscription, achieved
   rate against the target and the limit, 429s met.
"""

from __future__ import annotations

import time
import tracemalloc

from reconciler.apply import apply_plan, plan_steps
from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG, seed_legacy_account
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.live_subscriptions import (
    LiveSubscription,
    SubscriptionItem,
)
from reconciler.migrations import (
    MigrationSnapshot,
    plan_migration,
)
from reconciler.model import Migration
from reconciler.planner import build_plan

EMULATOR_LIMIT = 25.0
START, END = 1_767_225_600, 1_769_904_000


def pure_planning(subscriptions: int = 20_000) -> list[str]:
    subs = tuple(
        LiveSubscription(
            id=f"sub_{n:06d}",
            customer=f"cus_{n:06d}",
            status="active",
            items=(
                SubscriptionItem(
                    price="price_legacy", metered=True, period_start=START, period_end=END
                ),
                SubscriptionItem(price="price_seat", quantity=2, tax_rates=("txr_1",)),
            ),
            discounts=({"coupon": "co_10"},),
            metadata={"team": str(n % 7)},
        )
        for n in range(subscriptions)
    )
    snap = MigrationSnapshot(
        from_price_id="price_legacy", to_price_id="price_new", subscriptions=subs
    )
    migration = Migration(name="move", from_price="legacy", to_price="new")
    timings = []
    for _ in range(3):  # the best of three; tracemalloc would slow the timed runs
        started = time.perf_counter()
        change = plan_migration(migration, snap)
        timings.append(time.perf_counter() - started)
    seconds = min(timings)
    tracemalloc.start()
    plan_migration(migration, snap)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert change.details["counts"] == {"pending": subscriptions}
    return [
        f"{'subscriptions':>14} {'seconds':>8} {'per sub (µs)':>13} {'peak MiB':>9}",
        f"{subscriptions:>14} {seconds:>8.3f} {seconds / subscriptions * 1e6:>13.1f} "
        f"{peak / 2**20:>9.1f}",
    ]


def over_http(subscriptions: int = 2_000) -> list[str]:
    desired = load_text(MIGRATION_CONFIG, "bench.yaml")
    with Emulator(port=0) as emulator:
        seed_legacy_account(emulator, customers=subscriptions, usage_days=1)
        emulator.set_rate_limit(EMULATOR_LIMIT)
        target = 0.8 * EMULATOR_LIMIT
        gateway = Gateway("sk_test_bench", api_base=emulator.url, rate_limit=target)
        started = time.monotonic()
        snapshot = read_snapshot(gateway, desired)
        reads = gateway.stats.requests
        plan = build_plan(desired, snapshot)
        migration_writes = sum(1 for s in plan_steps(plan) if s.address.startswith("migration."))
        apply_plan(plan, snapshot, gateway, concurrency=4)
        seconds = time.monotonic() - started
        stats = gateway.stats
        achieved = stats.requests / seconds
        return [
            f"{'subscriptions':>14} {'reads':>6} {'writes':>7} {'writes/sub':>10} "
            f"{'seconds':>8} {'req/s':>6} {'÷ target':>9} {'÷ limit':>8} {'429s':>5}",
            f"{subscriptions:>14} {reads:>6} {stats.writes:>7} "
            f"{migration_writes / subscriptions:>10.2f} {seconds:>8.1f} {achieved:>6.2f} "
            f"{achieved / target:>9.2f} {achieved / EMULATOR_LIMIT:>8.2f} {stats.rate_limited:>5}",
        ]
