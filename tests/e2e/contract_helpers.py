"""Helpers for the end-to-end contract tests: one backend, the emulator or Stripe test mode.

With ``STRIPE_TEST_API_KEY`` set the tests talk to Stripe test mode, otherwise to
the e2e emulator; nothing else in the tests changes. Against a real account
they must live beside whatever else is there, so each run gets its own prefix
for product ids, meter event names, lookup keys and migration names (plan then
sees only its own objects, and lists the rest as unmanaged), times are taken
relative to the test clock's ``frozen_time`` (never a fixed date), and
:meth:`Backend.clean_up` archives, deactivates and deletes what the run made.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.scenario import advance_clock

LIVE_KEY = os.environ.get("STRIPE_TEST_API_KEY", "").strip() or None
DAY = 86400
HOUR = 3600
#: Stripe takes meter events at most 35 days old and 5 minutes ahead of now; a clock that
#: starts this far back crosses a monthly switch in the past, inside that window.
CLOCK_START_DAYS_AGO = 32


def unique_prefix() -> str:
    """A short prefix no other run shares (lower case: lookup keys and event names)."""
    return f"ct{uuid.uuid4().hex[:8]}"


@dataclass
class Backend:
    """The Stripe a contract test runs against, and what the test made there."""

    key: str
    url: str | None
    prefix: str
    gateway: Gateway
    clocks: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.url is None

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """The command line as a user runs it, on this backend's key (and base address)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
        env.update(NO_COLOR="1", STRIPE_API_KEY=self.key)
        if self.url is not None:
            env["STRIPE_API_BASE"] = self.url
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900 if self.live else 120,
            check=False,
        )

    def start_time(self) -> int:
        """Where a test clock starts: midnight UTC, :data:`CLOCK_START_DAYS_AGO` days back."""
        return (int(time.time()) // DAY - CLOCK_START_DAYS_AGO) * DAY

    def clock(self, frozen_time: int) -> dict[str, Any]:
        clock = self.gateway.post(
            "/v1/test_helpers/test_clocks",
            {"frozen_time": frozen_time, "name": f"{self.prefix} contract"},
        )
        self.clocks.append(str(clock["id"]))
        return clock

    def advance(self, clock: str, to: int) -> None:
        """Move the clock and poll it until ``ready`` (as the SDK's test clock guide does)."""
        advance_clock(self.gateway, clock, to, wait_seconds=300 if self.live else 5)

    def wait_for_meter(
        self, meter_id: str, customer: str, start: int, end: int, value: float
    ) -> None:
        """Meter events are aggregated asynchronously: poll the customer's summary."""
        deadline = time.monotonic() + (180 if self.live else 5)
        while time.monotonic() < deadline:
            summaries = self.gateway.get(
                f"/v1/billing/meters/{meter_id}/event_summaries",
                {"customer": customer, "start_time": start, "end_time": end},
            )["data"]
            if sum(float(s["aggregated_value"]) for s in summaries) >= value:
                return
            time.sleep(2)
        raise AssertionError(f"meter {meter_id} never showed {value} for {customer}")

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        found = self.gateway.get(
            "/v1/invoices", {"customer": customer, "limit": 100}, stripe_version=LEGACY_API_VERSION
        )["data"]
        return sorted(found, key=lambda invoice: (invoice["created"], invoice["id"]))

    def clean_up(self) -> None:
        """Delete the run's test clocks (their customers and subscriptions go with them),
        then retire its catalog: meters deactivated, prices and products archived."""
        listed = self.gateway.get("/v1/test_helpers/test_clocks", {"limit": 100})["data"]
        ids = set(self.clocks) | {
            str(c["id"]) for c in listed if str(c.get("name") or "").find(self.prefix) >= 0
        }
        for clock in sorted(ids):
            _quietly(
                lambda c=clock: self.gateway.request("delete", f"/v1/test_helpers/test_clocks/{c}")
            )
        for product in _own(self.gateway, "/v1/products", "id", self.prefix):
            if product.get("default_price"):
                _quietly(
                    lambda p=product: self.gateway.post(
                        f"/v1/products/{p['id']}", {"default_price": ""}
                    )
                )
            for price in _pages(self.gateway, "/v1/prices", {"product": product["id"]}):
                if price.get("active"):
                    _quietly(
                        lambda p=price: self.gateway.post(
                            f"/v1/prices/{p['id']}", {"active": False}
                        )
                    )
            if product.get("active"):
                _quietly(
                    lambda p=product: self.gateway.post(
                        f"/v1/products/{p['id']}", {"active": False}
                    )
                )
        for meter in _own(self.gateway, "/v1/billing/meters", "event_name", self.prefix):
            if meter.get("status") == "active":
                _quietly(
                    lambda m=meter: self.gateway.post(f"/v1/billing/meters/{m['id']}/deactivate")
                )


def _quietly(call: Any) -> None:
    """Clean-up goes on past one failure (an object already gone, say)."""
    with contextlib.suppress(StripeCallError):
        call()


def _pages(gateway: Gateway, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    after: str | None = None
    while True:
        page = gateway.get(
            path, {**params, "limit": 100, **({"starting_after": after} if after else {})}
        )
        yield from page["data"]
        if not page.get("has_more") or not page["data"]:
            return
        after = str(page["data"][-1]["id"])


def _own(gateway: Gateway, path: str, field_name: str, prefix: str) -> list[dict[str, Any]]:
    return [o for o in _pages(gateway, path, {}) if prefix in str(o.get(field_name) or "")]


def billing_yaml(prefix: str, *, with_migration: bool) -> str:
    """The contract's billing.yaml: one product, one meter, a metered price at 0.35 cents a
    second (the worked example's), and optionally the migration off the legacy price."""
    text = f"""version: 1
mode: test
products:
  - id: prod_{prefix}_video
    name: Video generation ({prefix})
meters:
  - event_name: {prefix}_video_seconds
    display_name: Video seconds ({prefix})
    aggregation: sum
prices:
  - lookup_key: {prefix}_video_seconds_metered
    product: prod_{prefix}_video
    currency: usd
    unit_amount_decimal: "0.35"
    recurring: {{interval: month, usage: metered, meter: {prefix}_video_seconds}}
    default: true
"""
    if with_migration:
        text += f"""migrations:
  {prefix}-to-meter:
    from_price: {prefix}_video_seconds_legacy
    to_price: {prefix}_video_seconds_metered
    switch_at: period_end
    subscriptions: all
"""
    return text


def legacy_price(backend: Backend) -> dict[str, Any]:
    """The legacy usage-record price the migration moves off (pinned to the last legacy
    API version, the only one that still makes metered prices without a meter)."""
    return backend.gateway.post(
        "/v1/prices",
        {
            "product": f"prod_{backend.prefix}_video",
            "currency": "usd",
            "unit_amount_decimal": "0.35",
            "lookup_key": f"{backend.prefix}_video_seconds_legacy",
            "nickname": "Video seconds (legacy usage records)",
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
        },
        stripe_version=LEGACY_API_VERSION,
    )


def legacy_subscriber(backend: Backend, price: str, start: int) -> dict[str, Any]:
    """A customer on a new test clock subscribed to ``price``; invoices are sent, not
    charged, so no card is needed. Returns clock, customer and subscription."""
    clock = backend.clock(start)
    customer = backend.gateway.post(
        "/v1/customers",
        {
            "name": f"{backend.prefix} studio",
            "email": "studio@example.com",
            "test_clock": clock["id"],
        },
    )
    sub = backend.gateway.post(
        "/v1/subscriptions",
        {
            "customer": customer["id"],
            "items": [{"price": price}],
            "collection_method": "send_invoice",
            "days_until_due": 30,
        },
        stripe_version=LEGACY_API_VERSION,
    )
    return {"clock": clock, "customer": customer, "subscription": sub}
