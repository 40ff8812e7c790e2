"""The `plan` path a user runs, minus the network: parse, plan, render, write JSON.

An account of N subscriptions on a legacy price (a quarter with someone
else's schedule) and 1,000 declared prices, as Stripe's JSON, is reduced to a
snapshot (what ``live.py`` does with each page), planned, rendered as text
and written as the plan file. Figures: CPU seconds of each stage and of the
whole, and the peak memory of one whole run (tracemalloc, measured apart).
"""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from typing import Any

from reconciler.config import desired_from_data
from reconciler.live import snapshot_from_objects
from reconciler.migrations import MigrationSnapshot, subscription_from_stripe
from reconciler.model import Desired
from reconciler.plan import gc_paused
from reconciler.planner import build_plan
from reconciler.render import render_text

START, END = 1_767_225_600, 1_769_904_000


def _config(prices: int) -> Desired:
    declared: list[dict[str, Any]] = [
        {"lookup_key": f"seat_{n}", "product": "prod_app", "currency": "usd", "unit_amount": 900}
        for n in range(prices)
    ]
    declared.append(
        {
            "lookup_key": "seconds_metered",
            "product": "prod_app",
            "currency": "usd",
            "unit_amount_decimal": "0.35",
            "recurring": {"interval": "month", "usage": "metered", "meter": "seconds"},
        }
    )
    return desired_from_data(
        {
            "version": 1,
            "mode": "test",
            "products": [{"id": "prod_app", "name": "App"}],
            "meters": [{"event_name": "seconds", "display_name": "Seconds", "aggregation": "sum"}],
            "prices": declared,
            "migrations": {
                "to-meter": {"from_price": "price_legacy", "to_price": "seconds_metered"}
            },
        }
    )


def _stripe_prices(prices: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"price_{n:06d}",
            "object": "price",
            "active": True,
            "currency": "usd",
            "lookup_key": f"seat_{n}",
            "metadata": {"managed_by": "stripe-reconcile"},
            "nickname": None,
            "product": "prod_app",
            "recurring": None,
            "type": "one_time",
            "unit_amount": 900 + (n % 3 == 0),  # a third changed: replaced
            "unit_amount_decimal": str(900 + (n % 3 == 0)),
            "billing_scheme": "per_unit",
            "transform_quantity": None,
            "tiers_mode": None,
        }
        for n in range(prices)
    ]


def _stripe_subscription(n: int) -> dict[str, Any]:
    items = [
        {
            "id": f"si_{n}_a",
            "price": {"id": "price_legacy", "recurring": {"usage_type": "metered"}},
            "quantity": None,
            "tax_rates": [],
            "current_period_start": START,
            "current_period_end": END,
        },
        {
            "id": f"si_{n}_b",
            "price": {"id": "price_seat", "recurring": {"usage_type": "licensed"}},
            "quantity": 2,
            "tax_rates": [{"id": "txr_vat"}],
            "current_period_start": START,
            "current_period_end": END,
        },
    ]
    schedule = None
    if n % 4 == 0:
        schedule = {
            "id": f"sub_sched_{n}",
            "status": "active",
            "metadata": {"owner": "sales"},
            "created": START,
            "current_phase": {"start_date": START, "end_date": END},
            "phases": [
                {
                    "start_date": START,
                    "end_date": END,
                    "items": [{"price": "price_legacy"}, {"price": "price_seat", "quantity": 2}],
                }
            ],
        }
    return {
        "id": f"sub_{n:06d}",
        "customer": f"cus_{n:06d}",
        "status": "active",
        "items": {"data": items},
        "discounts": [{"id": f"di_{n}", "object": "discount", "coupon": {"id": "co_10"}}],
        "default_tax_rates": [],
        "metadata": {"team": str(n % 7)},
        "collection_method": "charge_automatically",
        "schedule": schedule,
    }


def _one_run(desired: Desired, prices: list[Any], subs: list[Any]) -> dict[str, float]:
    times: dict[str, float] = {}
    started = time.process_time()
    snapshot = snapshot_from_objects(products=[], meters=[], prices=prices, alerts=[])
    with gc_paused():  # as live.py reads them
        listed = tuple(subscription_from_stripe(s) for s in subs)
    migration = MigrationSnapshot(from_price_id="price_legacy", subscriptions=listed)
    snapshot = dataclasses.replace(snapshot, migrations={"to-meter": migration})
    times["parse"] = time.process_time() - started
    mark = time.process_time()
    plan = build_plan(desired, snapshot)
    times["plan"] = time.process_time() - mark
    mark = time.process_time()
    with gc_paused():  # as the plan command runs
        render_text(plan, color=False)
    times["text"] = time.process_time() - mark
    mark = time.process_time()
    text = plan.dumps()
    times["json"] = time.process_time() - mark
    times["total"] = time.process_time() - started
    times["json_mib"] = len(text.encode()) / 2**20
    return times


def main(sizes: tuple[int, ...] = (2_000, 20_000), prices: int = 1_000) -> list[str]:
    desired = _config(prices)
    stripe_prices = _stripe_prices(prices)
    rows = [
        f"{'subscriptions':>14} {'parse s':>8} {'plan s':>7} {'text s':>7} {'json s':>7} "
        f"{'total s':>8} {'plan.json MiB':>14} {'peak MiB':>9}"
    ]
    for size in sizes:
        subs = [_stripe_subscription(n) for n in range(size)]
        best = min(
            (_one_run(desired, stripe_prices, subs) for _ in range(3)), key=lambda t: t["total"]
        )
        tracemalloc.start()
        _one_run(desired, stripe_prices, subs)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(
            f"{size:>14} {best['parse']:>8.2f} {best['plan']:>7.2f} {best['text']:>7.2f} "
            f"{best['json']:>7.2f} {best['total']:>8.2f} {best['json_mib']:>14.1f} "
            f"{peak / 2**20:>9.0f}"
        )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
