"""The usage parity gate's reads: a plan reads what the next batch needs, not everyone.

N subscriptions are seeded on the legacy price, each clock is moved past its
first period with usage records and equal meter events (dual-write), then a
migration with ``require_usage_parity: 0.5%`` and ``batch: 50`` is planned
against the emulator at its 25 req/s limit, with the default pace (80%, reads
included). Figures: requests of the plan and its parity reads, against
``status --every-usage`` (every subscription read), and the 429s met.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.emulator.seed import MIGRATION_CONFIG, seed_legacy_account
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.planner import build_plan
from reconciler.scenario import advance_clock, report_usage, send_meter_event

EMULATOR_LIMIT = 25.0
DAY = 86_400


def _parity_reads(gateway: Gateway) -> int:
    return sum(
        n
        for route, n in gateway.stats.by_route.items()
        if route.endswith(("usage_record_summaries", "event_summaries"))
    )


def main(subscriptions: int = 200, batch: int = 50) -> list[str]:
    base = load_text(MIGRATION_CONFIG, "bench.yaml")
    gated = dataclasses.replace(
        base.migrations[0], require_usage_parity=Decimal("0.5"), batch=batch
    )
    desired = dataclasses.replace(base, migrations=(gated,))
    rows = [
        f"{'subscriptions':>14} {'plan read':>12} {'requests':>9} {'parity reads':>13} "
        f"{'seconds':>8} {'429s':>5}"
    ]
    with Emulator(port=0) as emulator:
        seeded = seed_legacy_account(emulator, customers=subscriptions, usage_days=1)
        setup = Gateway("sk_test_bench", api_base=emulator.url)
        catalog = dataclasses.replace(desired, migrations=())
        snapshot = read_snapshot(setup, catalog)
        apply_plan(build_plan(catalog, snapshot), snapshot, setup)
        for customer in seeded.customers:  # a dual-written second period, then past it
            start = customer.period_end
            advance_clock(setup, customer.test_clock, start + DAY, wait_seconds=5)
            report_usage(setup, customer.legacy_item, 1000, start + 3600)
            send_meter_event(
                setup,
                "video_seconds",
                customer.customer,
                1000,
                at=start + 3600,
                identifier=f"{customer.customer}-{start}",
            )
            advance_clock(setup, customer.test_clock, start + 32 * DAY, wait_seconds=5)
        emulator.set_rate_limit(EMULATOR_LIMIT)
        for label, every in (("next batch", False), ("every-usage", True)):
            gateway = Gateway(
                "sk_test_bench", api_base=emulator.url, rate_limit=0.8 * EMULATOR_LIMIT
            )
            started = time.monotonic()
            read_snapshot(gateway, desired, every_usage=every)
            seconds = time.monotonic() - started
            rows.append(
                f"{subscriptions:>14} {label:>12} {gateway.stats.requests:>9} "
                f"{_parity_reads(gateway):>13} {seconds:>8.1f} {gateway.stats.rate_limited:>5}"
            )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
