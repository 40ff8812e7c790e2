"""``read_revenue``'s requests and failures, against a gateway that answers from memory.

What it asks Stripe (two previews per subscription, pinned like the migration's
writes, at most ``limit`` per migration, in batch order), what it keeps when
Stripe refuses one, and what stops it: a Stripe that cannot be reached.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any, cast

import pytest

from reconciler.errors import StripeCallError
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.live import read_revenue
from reconciler.migrations import plan_migration
from reconciler.plan import Plan, fingerprint
from reconciler.snapshot import Snapshot
from tests.unit.test_migrations import MIGRATION, NEW, snapshot, sub

PATH = "/v1/invoices/create_preview"


class Previews:
    """Answers each preview with an invoice of one line: 1,000 a month as is, 1,250 on the
    new price; ``refuse`` and ``unreachable`` name subscriptions it fails for."""

    def __init__(self, refuse: frozenset[str] = frozenset(), unreachable: str = "") -> None:
        self.refuse, self.unreachable = refuse, unreachable
        self.calls: list[tuple[str, str, dict[str, Any], str | None]] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        stripe_version: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        assert idempotency_key is None
        found = dict(params or {})
        with self._lock:
            self.calls.append((method, path, found, stripe_version))
        subscription = found["subscription"]
        if subscription == self.unreachable:
            raise StripeCallError("cannot reach the API", method=method, path=path)
        if subscription in self.refuse:
            raise StripeCallError(
                f"No upcoming invoices for customer: cus_{subscription}",
                method=method,
                path=path,
                http_status=400,
                code="invoice_upcoming_none",
            )
        amount = 1250 if "subscription_details" in found else 1000
        line = {"amount": amount, "type": "subscription", "proration": False}
        return {"object": "invoice", "lines": {"data": [line]}}, False


def planned(count: int, **fields: Any) -> tuple[Plan, Snapshot]:
    read = dataclasses.replace(
        snapshot(*(sub(f"sub_{n:02}") for n in range(count))),
        from_terms=("usd", "month", 1),
        to_terms=("usd", "month", 1),
        **fields,
    )
    change = plan_migration(MIGRATION, read)
    plan = Plan(fingerprint({"c": 1}), fingerprint({"s": 1}), (change,))
    return plan, Snapshot(migrations={MIGRATION.name: read})


def read(previews: Previews, plan: Plan, snap: Snapshot, limit: int = 200) -> Any:
    return read_revenue(cast(Gateway, previews), plan, snap, limit=limit)


def test_two_pinned_previews_per_subscription_up_to_the_limit_in_batch_order() -> None:
    plan, snap = planned(5)
    previews = Previews()
    (m,) = read(previews, plan, snap, limit=3).migrations
    assert [row.subscription for row in m.subscriptions] == ["sub_00", "sub_01", "sub_02"]
    assert (m.to_schedule, m.customers, m.before, m.after, m.change) == (5, 5, 3000, 3750, 750)
    assert len(previews.calls) == 6
    assert {(method, path, version) for method, path, _, version in previews.calls} == {
        ("post", PATH, LEGACY_API_VERSION)
    }
    asked = [params for _, _, params, _ in previews.calls if params["subscription"] == "sub_00"]
    # The old price's item (metered: no quantity) moves to the new price, unprorated.
    assert sorted(asked, key=len) == [
        {"subscription": "sub_00"},
        {
            "subscription": "sub_00",
            "subscription_details": {
                "items": [{"id": "si_1", "price": NEW}],
                "proration_behavior": "none",
            },
        },
    ]


def test_a_refused_preview_is_kept_for_its_subscription_alone() -> None:
    plan, snap = planned(3)
    (m,) = read(Previews(refuse=frozenset({"sub_01"})), plan, snap).migrations
    refused = {row.subscription: row.refused for row in m.subscriptions}
    assert refused["sub_00"] is None and refused["sub_02"] is None
    assert refused["sub_01"] == (
        f"as is: POST {PATH} (400 invoice_upcoming_none): No upcoming invoices for "
        "customer: cus_sub_01"
    )
    assert (m.before, m.after) == (2000, 2500)


def test_a_stripe_that_cannot_be_reached_stops_the_read() -> None:
    plan, snap = planned(3)
    with pytest.raises(StripeCallError, match="cannot reach the API"):
        read(Previews(unreachable="sub_02"), plan, snap)


def test_a_new_price_not_yet_in_the_account_previews_nothing_and_says_why() -> None:
    plan, snap = planned(2, to_price_id=None)
    previews = Previews()
    (m,) = read(previews, plan, snap).migrations
    assert previews.calls == []
    assert m.unavailable == (
        "to_price 'new_key' is not in the account yet: once apply has created it, plan "
        "--revenue previews the move"
    )
    assert (m.to_schedule, m.customers, m.subscriptions) == (2, 2, ())


def test_nothing_to_schedule_or_no_migration_asks_nothing() -> None:
    plan, snap = planned(0)
    previews = Previews()
    (m,) = read(previews, plan, snap).migrations
    assert (m.to_schedule, m.subscriptions, previews.calls) == (0, (), [])
    empty = Plan(fingerprint({"c": 1}), fingerprint({"s": 1}))
    assert read(previews, empty, Snapshot()).migrations == ()


def test_a_row_whose_subscription_was_not_read_is_refused_without_a_request() -> None:
    plan, snap = planned(2)
    read_only_one = dataclasses.replace(
        snap.migrations[MIGRATION.name],
        subscriptions=snap.migrations[MIGRATION.name].subscriptions[:1],
    )
    previews = Previews()
    (m,) = read(previews, plan, Snapshot(migrations={MIGRATION.name: read_only_one})).migrations
    assert [row.refused for row in m.subscriptions] == [None, "its item was not read"]
    assert len(previews.calls) == 2
