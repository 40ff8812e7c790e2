"""The parity gate reads what the next batch needs, in its order, and no more."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from reconciler.live import _gate_usage
from reconciler.live_subscriptions import (
    LiveSchedule,
    LiveSubscription,
)
from reconciler.migrations import (
    MigrationSnapshot,
    parity_blocker,
    parity_candidates,
    plan_migration,
)
from reconciler.model import MANAGED_BY_KEY, MANAGED_BY_VALUE, Migration
from tests.unit.test_migrations import MIGRATION, snapshot, sub

GATED = dataclasses.replace(MIGRATION, require_usage_parity=Decimal("0.5"), batch=2)
PASSING = (Decimal(1000), Decimal(1000))
FAILING = (Decimal(1000), Decimal(900))


def account(count: int) -> MigrationSnapshot:
    return snapshot(*(sub(f"sub_{n:02d}") for n in range(count)))


Usage = dict[str, tuple[Decimal, Decimal] | None]


def gate(
    migration: Migration, read: MigrationSnapshot, failing: set[str], *, everything: bool = False
) -> tuple[list[str], Usage]:
    asked: list[str] = []

    def pair(subscription: LiveSubscription) -> tuple[Decimal, Decimal]:
        asked.append(subscription.id)
        return FAILING if subscription.id in failing else PASSING

    return asked, _gate_usage(migration, read, pair, everything=everything)


def test_only_the_next_batch_is_read_when_it_passes() -> None:
    read = account(30)
    asked, usage = gate(GATED, read, set())
    assert sorted(asked) == ["sub_00", "sub_01", "sub_02", "sub_03"]  # one round of 4 readers
    rows = {
        r["subscription"]: r
        for r in plan_migration(GATED, dataclasses.replace(read, usage=usage)).details[
            "subscriptions"
        ]
    }
    assert [s for s, r in rows.items() if r["state"] == "pending"] == ["sub_00", "sub_01"]
    assert {r["state"] for s, r in rows.items() if s >= "sub_02"} == {"waiting"}
    assert all(r["blocker"] is None for r in rows.values())


def test_failures_make_the_gate_read_on_until_the_batch_is_full() -> None:
    read = account(30)
    failing = {f"sub_{n:02d}" for n in range(6)}
    asked, usage = gate(GATED, read, failing)
    assert len(asked) < 12
    changed = plan_migration(GATED, dataclasses.replace(read, usage=usage))
    states = {r["subscription"]: r["state"] for r in changed.details["subscriptions"]}
    assert [s for s, state in states.items() if state == "pending"] == ["sub_06", "sub_07"]
    assert all(states[s] == "blocked" for s in failing)


def test_every_usage_reads_every_candidate() -> None:
    read = account(9)
    asked, usage = gate(GATED, read, set(), everything=True)
    assert sorted(asked) == [f"sub_{n:02d}" for n in range(9)]
    assert len(usage) == 9


def test_scheduled_paused_and_excluded_subscriptions_are_never_read() -> None:
    ours = LiveSchedule(
        "sub_sched_1",
        "active",
        {
            MANAGED_BY_KEY: MANAGED_BY_VALUE,
            "stripe_reconcile_migration": "move",
            "switch_at": "1769904000",
        },
    )
    read = snapshot(sub("sub_a"), sub("sub_b", schedule=ours), sub("sub_c"))
    excluded = dataclasses.replace(GATED, exclude=("sub_c",))
    assert [s.id for s in parity_candidates(excluded, read)] == ["sub_a"]
    assert parity_candidates(dataclasses.replace(GATED, paused=True), read) == []
    assert parity_candidates(dataclasses.replace(GATED, require_usage_parity=None), read) == []


def test_an_unread_subscription_waits_and_a_read_one_is_judged() -> None:
    assert parity_blocker(Decimal("0.5"), PASSING) is None
    assert parity_blocker(Decimal("0.5"), None) is not None
    assert "differ by 10.00%" in str(parity_blocker(Decimal("0.5"), FAILING))
    row = plan_migration(GATED, snapshot(sub("sub_a"))).details["subscriptions"][0]
    assert (row["state"], row["action"]) == ("waiting", None)
