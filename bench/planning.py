"""The `plan` command's own work, with Stripe answered from memory.

billing.yaml declares 1,000 prices and a migration; the account holds them
(a third changed, so replaced) and N subscriptions on the legacy price (a
quarter with someone else's schedule). Stripe's answers are encoded as JSON
pages beforehand and served by an in-memory HTTP client plugged into the
stripe SDK, so what is timed is what `stripe-reconcile plan --out plan.json`
spends apart from waiting on the network: loading billing.yaml, every request
through the gateway and the SDK, decoding each page, the snapshot, the plan,
the text render and writing plan.json. Figures: CPU seconds of each stage and
of the whole (best of 3), the peak memory of one whole run (tracemalloc,
measured apart, so its overhead is not in the times), and, apart from the
total, what `apply plan.json` spends checking that file against an unchanged
account before its first write (load and schema-check the file, plan again,
compare), reads excluded.
"""

from __future__ import annotations

import json
import tempfile
import time
import tracemalloc
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
import yaml

from reconciler.config import load_config
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.plan import gc_paused
from reconciler.planfile import load_plan, resolve_saved_plan
from reconciler.planner import build_plan
from reconciler.render import render_text

DAY = 86400
# The current period runs from ten days ago to twenty days ahead, as a live account's do:
# a renewal already past, or within defer_within, would defer every subscription.
START = (int(time.time()) // DAY - 10) * DAY
END = START + 30 * DAY


def _config(prices: int) -> dict[str, Any]:
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
    return {
        "version": 1,
        "mode": "test",
        "products": [{"id": "prod_app", "name": "App"}],
        "meters": [{"event_name": "seconds", "display_name": "Seconds", "aggregation": "sum"}],
        "prices": declared,
        "migrations": {"to-meter": {"from_price": "price_legacy", "to_price": "seconds_metered"}},
    }


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


PAGE = 100
LEGACY_PRICE = {
    "id": "price_legacy",
    "object": "price",
    "active": True,
    "currency": "usd",
    "lookup_key": None,
    "metadata": {},
    "product": "prod_app",
    "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
    "type": "recurring",
    "unit_amount": None,
    "unit_amount_decimal": "0.5",
    "billing_scheme": "per_unit",
    "transform_quantity": None,
    "tiers_mode": None,
}


class CannedStripe(stripe.HTTPClient):
    """Stripe's answers from memory: each list as pre-encoded pages of 100, followed by
    ``starting_after`` as Stripe does; a retrieve by id; an empty list otherwise."""

    name = "canned"

    def __init__(self, lists: Mapping[str, list[dict[str, Any]]]) -> None:
        super().__init__()
        self.requests = 0
        self._pages: dict[tuple[str, str | None], str] = {}
        self._objects: dict[str, str] = {}
        for path, objects in lists.items():
            after: str | None = None
            for start in range(0, max(len(objects), 1), PAGE):
                data = objects[start : start + PAGE]
                more = start + PAGE < len(objects)
                body = {"object": "list", "url": path, "has_more": more, "data": data}
                self._pages[(path, after)] = json.dumps(body)
                after = data[-1]["id"] if data else None
        self._objects["/v1/prices/price_legacy"] = json.dumps(LEGACY_PRICE)

    def request(  # type: ignore[override]
        self, method: str, url: str, headers: Any, post_data: Any = None, **_: Any
    ) -> tuple[str, int, dict[str, str]]:
        self.requests += 1
        parts = urlsplit(url)
        if parts.path in self._objects:
            return self._objects[parts.path], 200, {}
        query = dict(parse_qsl(parts.query))
        key = parts.path + ("?price=" + query["price"] if "price" in query else "")
        body = self._pages.get((key, query.get("starting_after")))
        if body is None:
            body = json.dumps({"object": "list", "url": parts.path, "has_more": False, "data": []})
        return body, 200, {}

    def close(self) -> None:
        pass


def _account(prices: int, subscriptions: int) -> CannedStripe:
    return CannedStripe(
        {
            "/v1/prices": _stripe_prices(prices),
            "/v1/subscriptions?price=price_legacy": [
                _stripe_subscription(n) for n in range(subscriptions)
            ],
        }
    )


def _one_run(config: Path, account: CannedStripe, out: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    started = time.process_time()
    desired = load_config(config)
    times["load"] = time.process_time() - started
    mark = time.process_time()
    gateway = Gateway("sk_test_bench", api_base="http://127.0.0.1:9", http_client=account)
    snapshot = read_snapshot(gateway, desired)
    times["read"] = time.process_time() - mark
    mark = time.process_time()
    plan = build_plan(desired, snapshot)
    times["plan"] = time.process_time() - mark
    mark = time.process_time()
    with gc_paused():  # as the plan command renders
        render_text(plan, color=False)
    times["text"] = time.process_time() - mark
    mark = time.process_time()
    out.write_text(plan.dumps(), encoding="utf-8")
    times["json"] = time.process_time() - mark
    times["total"] = time.process_time() - started
    times["json_mib"] = out.stat().st_size / 2**20
    times["requests"] = gateway.stats.requests
    return times


def _saved_plan_check(config: Path, account: CannedStripe, out: Path) -> float:
    """CPU seconds `apply plan.json` spends before its first write on an unchanged account."""
    desired = load_config(config)
    gateway = Gateway("sk_test_bench", api_base="http://127.0.0.1:9", http_client=account)
    snapshot = read_snapshot(gateway, desired)
    started = time.process_time()
    resolve_saved_plan(load_plan(out), desired, snapshot)
    return time.process_time() - started


def main(sizes: tuple[int, ...] = (2_000, 20_000), prices: int = 1_000) -> list[str]:
    rows = [
        f"{'subscriptions':>14} {'requests':>9} {'load s':>7} {'read s':>7} {'plan s':>7} "
        f"{'text s':>7} {'json s':>7} {'total s':>8} {'plan.json MiB':>14} {'peak MiB':>9} "
        f"{'saved plan s':>13}"
    ]
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "billing.yaml"
        config.write_text(yaml.safe_dump(_config(prices), sort_keys=False), encoding="utf-8")
        out = Path(folder) / "plan.json"
        for size in sizes:
            account = _account(prices, size)
            best = min((_one_run(config, account, out) for _ in range(3)), key=lambda t: t["total"])
            saved = min(_saved_plan_check(config, account, out) for _ in range(3))
            tracemalloc.start()
            _one_run(config, account, out)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append(
                f"{size:>14} {best['requests']:>9.0f} {best['load']:>7.2f} {best['read']:>7.2f} "
                f"{best['plan']:>7.2f} {best['text']:>7.2f} {best['json']:>7.2f} "
                f"{best['total']:>8.2f} {best['json_mib']:>14.1f} {peak / 2**20:>9.0f} "
                f"{saved:>13.2f}"
            )
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
