"""Reliability figures from a real run: applies under random faults, then counted.

For each seed: the example billing.yaml applied to an empty emulator whose
requests fail at random (500s, 429s, connection resets, writes committed but
answered with a dropped connection, latency), then a migration of seeded
subscriptions under the same faults. Reported: faults injected, retries,
whether the next plan was empty, and anomalies found: duplicates (objects
beyond what billing.yaml declares, a subscription with two schedules) and
subscriptions left without their schedule.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from reconciler.apply import apply_plan
from reconciler.config import load_config
from reconciler.emulator import Emulator
from reconciler.emulator.seed import seed_legacy_account
from reconciler.errors import ApplyError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.planner import build_plan

EXAMPLE = Path(__file__).resolve().parents[1] / "billing.yaml"
FAULTS = "seed={seed},500=0.08,429=0.08,reset=0.06,lost=0.08,latency=0.05:0.005"
KEY = "sk_test_reliability"


def _run(seed: int) -> tuple[int, int, bool, int]:
    desired = load_config(EXAMPLE)
    migration = desired.migrations[0]
    desired = dataclasses.replace(
        desired,
        migrations=(dataclasses.replace(migration, require_usage_parity=None, batch=None),),
    )
    with Emulator(port=0) as emulator:
        account = seed_legacy_account(emulator, customers=6, usage_days=1)
        emulator.set_faults(FAULTS.format(seed=seed))
        gateway = Gateway(KEY, api_base=emulator.url, max_retries=12, sleep=lambda _s: None)
        for _ in range(4):
            try:
                snapshot = read_snapshot(gateway, desired)
                apply_plan(build_plan(desired, snapshot), snapshot, gateway)
                break
            except ApplyError:
                continue
        faults = sum(emulator.stats()["faults"].values())
        emulator.set_faults(None)
        clean = Gateway(KEY, api_base=emulator.url)
        converged = not build_plan(desired, read_snapshot(clean, desired)).has_changes
        keys = Counter(p["lookup_key"] for p in clean.list_all("/v1/prices") if p["lookup_key"])
        duplicates = sum(n - 1 for n in keys.values())
        duplicates += len(list(clean.list_all("/v1/billing/meters"))) - len(desired.meters)
        duplicates += len(list(clean.list_all("/v1/billing/alerts"))) - len(desired.alerts)
        schedules = Counter(
            s["subscription"]
            for s in clean.list_all("/v1/subscription_schedules")
            if s["status"] != "released"
        )
        duplicates += sum(n - 1 for n in schedules.values())
        duplicates += len(set(account.subscriptions) - set(schedules))
        return faults, gateway.stats.retries, converged, duplicates


def main(seeds: int = 20) -> list[str]:
    rows = [f"{'seed':>5} {'faults':>7} {'retries':>8} {'converged':>10} {'anomalies':>10}"]
    totals = Counter[str]()
    for seed in range(1, seeds + 1):
        faults, retries, converged, duplicates = _run(seed)
        totals.update(faults=faults, retries=retries, converged=int(converged), dup=duplicates)
        rows.append(f"{seed:>5} {faults:>7} {retries:>8} {converged!s:>10} {duplicates:>10}")
    rows.append(
        f"{'all':>5} {totals['faults']:>7} {totals['retries']:>8} "
        f"{totals['converged']:>7}/{seeds:<2} {totals['dup']:>10}"
    )
    return rows
