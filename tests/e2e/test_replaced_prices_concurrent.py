"""Two applies at once of one saved plan replacing a price with ``existing_subscriptions:
migrate``.

Three paying customers (2, 1 and 3 seats) on seat_2025; billing.yaml raises it to
$11.00 and moves them. The saved plan is applied twice, started together, a moment
apart, and with the second apply reading the account between the first one's two
price writes (the old price marked, the key not moved yet). Each time the account
holds one new price under the lookup key, one old price marked and kept active,
one schedule per subscription (the old price until its period end, then the new
one, same quantity), nothing twice, and the next plan is empty; past the switch
on the test clocks every subscription is on the new price, and the only change
left is the archive of the emptied old price.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import load_text
from reconciler.converge import apply_until_done
from reconciler.emulator import Emulator
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.kinds.replaced_prices import REPLACED_BY_KEY
from reconciler.plan import Action, ActionReason
from reconciler.scenario import advance_clock
from tests.e2e.conftest import change_at, plan_of, stripe_reconcile
from tests.e2e.test_any_price_migrations import CATALOG, DAY, START, converge, subscribe
from tests.e2e.test_concurrent_applies import SLOW, applies_at, assert_all_succeeded
from tests.e2e.test_replaced_prices import declare

MIGRATE = declare("migrate")
SEATS = (2, 1, 3)
SWITCH = START + 31 * DAY  # each subscription's first period ends on 2026-02-01
OFFSETS = {
    "together": (0.0, 0.0),
    "staggered-0.1s": (0.0, 0.1),
    "staggered-0.25s": (0.0, 0.25),
    "staggered-0.5s": (0.0, 0.5),
}


class Customers:
    """The subscribers of seat_2025 before the replace: clock, customer, subscription
    and seats of each, and the price they hold."""

    def __init__(self, gateway: Gateway) -> None:
        assert not converge(load_text(CATALOG, "billing.yaml"), gateway).has_changes
        self.rows = [(*subscribe(gateway, "seat_2025", seats), seats) for seats in SEATS]
        found = gateway.get("/v1/prices", {"lookup_keys": ["seat_2025"]})["data"]
        self.old = str(found[0]["id"])

    @property
    def seats(self) -> dict[str, int]:
        return {subscription: seats for _clock, _customer, subscription, seats in self.rows}


def saved_plan(emulator: Emulator, tmp_path: Path) -> tuple[Path, Path]:
    """billing.yaml with the raise and the decision to migrate, and its saved plan."""
    config = tmp_path / "billing.yaml"
    config.write_text(MIGRATE)
    saved = tmp_path / "plan.json"
    made = stripe_reconcile("plan", "-f", str(config), "--out", str(saved), url=emulator.url)
    assert made.returncode == 0, made.stderr
    return config, saved


def assert_replaced_once(gateway: Gateway, customers: Customers) -> str:
    """The account after the replace, however many applies made it; the new price's id."""
    prices = list(gateway.list_all("/v1/prices"))
    # seat_2026, the old seat_2025 and one new one: no second price was created.
    assert len(prices) == 3, [(p["id"], p["lookup_key"]) for p in prices]
    keyed = [p for p in prices if p["lookup_key"] == "seat_2025"]
    assert len(keyed) == 1, keyed
    new = keyed[0]
    assert (new["id"] != customers.old, new["unit_amount"], new["active"]) == (True, 1100, True)
    marked = [p for p in prices if (p.get("metadata") or {}).get(REPLACED_BY_KEY)]
    assert [p["id"] for p in marked] == [customers.old]
    assert (marked[0]["active"], marked[0]["lookup_key"]) == (True, None)
    assert marked[0]["metadata"][REPLACED_BY_KEY] == "seat_2025"

    schedules = list(
        gateway.list_all("/v1/subscription_schedules", {}, stripe_version=LEGACY_API_VERSION)
    )
    per_subscription = Counter(s["subscription"] for s in schedules)
    assert per_subscription == Counter(set(customers.seats)), per_subscription
    for schedule in schedules:
        seats = customers.seats[schedule["subscription"]]
        phases = [
            ([(i["price"], i["quantity"]) for i in phase["items"]], phase["start_date"])
            for phase in schedule["phases"]
        ]
        assert phases == [
            ([(customers.old, seats)], START),
            ([(new["id"], seats)], SWITCH),
        ], schedule["id"]
        assert schedule["phases"][0]["end_date"] == SWITCH
        assert (schedule["status"], schedule["end_behavior"]) == ("active", "release")
    return str(new["id"])


def assert_kept_until_the_switch(emulator: Emulator, gateway: Gateway, config: Path) -> None:
    again = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(config), url=emulator.url)
    assert again.returncode == 0, again.stdout + again.stderr
    _snapshot, plan = plan_of(MIGRATE, gateway)
    migration = change_at(plan, "migration.seat_2025.existing")
    assert migration.details["counts"] == {"scheduled": len(SEATS)}


def cross_the_switch(
    emulator: Emulator, gateway: Gateway, config: Path, customers: Customers, new: str
) -> None:
    """Past the period end every subscription is on the new price; the old one is then
    archived by the next apply, and the plan after that is empty."""
    for clock, _customer, _subscription, _seats in customers.rows:
        advance_clock(gateway, clock, START + 32 * DAY, wait_seconds=10)
    for _clock, _customer, subscription, seats in customers.rows:
        items = gateway.get(f"/v1/subscriptions/{subscription}")["items"]["data"]
        assert [(i["price"]["id"], i["quantity"]) for i in items] == [(new, seats)]
    _snapshot, plan = plan_of(MIGRATE, gateway)
    assert [(c.address, c.action, c.because) for c in plan.actionable] == [
        (f"price.{customers.old}", Action.ARCHIVE, ActionReason.REPLACED_EARLIER)
    ]
    retire = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert retire.returncode == 0, retire.stderr
    assert gateway.get(f"/v1/prices/{customers.old}")["active"] is False
    done = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(config), url=emulator.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(gateway.list_all("/v1/prices"))) == 3


@pytest.mark.parametrize("offsets", sorted(OFFSETS))
def test_one_saved_replace_applied_twice_at_once_replaces_once(
    emulator: Emulator, gateway: Gateway, tmp_path: Path, offsets: str
) -> None:
    customers = Customers(gateway)
    config, saved = saved_plan(emulator, tmp_path)
    emulator.set_faults(SLOW)
    assert_all_succeeded(applies_at(emulator, config, OFFSETS[offsets], str(saved)))
    emulator.set_faults(None)
    new = assert_replaced_once(gateway, customers)
    assert_kept_until_the_switch(emulator, gateway, config)
    cross_the_switch(emulator, gateway, config, customers, new)


class SecondApplyBeforeTheCreate:
    """A gateway that, when the new price is about to be created (the old one marked
    already), first lets a whole second apply of the saved plan run."""

    def __init__(self, gateway: Gateway, run_second: Any) -> None:
        self._gateway = gateway
        self._run_second = run_second
        self._lock = threading.Lock()
        self.second: Any = None

    def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
        with self._lock:
            if path == "/v1/prices" and self.second is None:
                self.second = self._run_second()
        return self._gateway.write(path, params, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)


def test_an_apply_reading_between_the_mark_and_the_create_makes_no_second_price(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    """The second apply sees the old price marked but still holding the key, so it
    plans the same replace: it must send the same create (Stripe answers the first
    apply's from it), not make a second price that takes the key and leaves the
    price the schedules name without one."""
    customers = Customers(gateway)
    config, saved = saved_plan(emulator, tmp_path)
    snapshot, plan = plan_of(MIGRATE, gateway)
    interleaved = SecondApplyBeforeTheCreate(
        gateway,
        lambda: stripe_reconcile("apply", str(saved), "-f", str(config), url=emulator.url),
    )
    apply_until_done(
        plan,
        snapshot,
        interleaved,  # type: ignore[arg-type]
        replan=lambda: plan_of(MIGRATE, gateway),
    )
    assert interleaved.second is not None, "the first apply created no price"
    assert interleaved.second.returncode == 0, interleaved.second.stderr
    new = assert_replaced_once(gateway, customers)
    assert_kept_until_the_switch(emulator, gateway, config)
    cross_the_switch(emulator, gateway, config, customers, new)
