"""The legacy account seed, checked through the API like the migration job will read it."""

from __future__ import annotations

import stripe
from lifecycle_helpers import DAY, JAN_15, LEGACY

from reconciler.emulator import Emulator
from reconciler.emulator.seed import seed_legacy_account


def test_seed_legacy_account(emu: Emulator, client: stripe.StripeClient) -> None:
    seeded = seed_legacy_account(emu, customers=12)
    assert seeded.product == "prod_video_generation"
    assert len(seeded.customers) == 12
    legacy = client.v1.prices.retrieve(seeded.legacy_price, options={"stripe_version": LEGACY})
    assert (legacy.lookup_key, str(legacy.unit_amount_decimal)) == ("video_seconds_legacy", "0.35")
    assert (legacy.recurring.meter, legacy.recurring.aggregate_usage) == (None, "sum")
    listed = client.v1.subscriptions.list(
        params={"price": seeded.legacy_price, "limit": 100, "expand": ["data.schedule"]}
    )
    assert sorted(s.id for s in listed.data) == sorted(seeded.subscriptions)
    scheduled = {s.id: s.schedule.id for s in listed.data if s.schedule is not None}
    assert scheduled == {c.subscription: c.schedule for c in seeded.scheduled}
    assert [c.index for c in seeded.scheduled] == [1, 5, 9]
    extras = [c for c in seeded.customers if c.platform_item is not None]
    assert [c.index for c in extras] == [0, 3, 6, 9]
    with_extras = client.v1.subscriptions.retrieve(extras[0].subscription)
    assert [r.id for r in with_extras.default_tax_rates] == [seeded.tax_rate]
    assert len(with_extras.discounts) == 1
    clocks = {c.test_clock for c in seeded.customers}
    assert len(clocks) == 12
    for seeded_customer in (seeded.customers[0], seeded.customers[7]):
        index = seeded_customer.index
        clock = client.v1.test_helpers.test_clocks.retrieve(seeded_customer.test_clock)
        assert clock.frozen_time == JAN_15 + index * DAY + 10 * DAY
        assert seeded_customer.period_start == JAN_15 + index * DAY
        expected = sum(60 * (index + 1) + 7 * day for day in range(10))
        assert seeded_customer.usage_total == expected
        summaries = client.deserialize(
            client.raw_request(
                "get",
                f"/v1/subscription_items/{seeded_customer.legacy_item}/usage_record_summaries",
                stripe_version=LEGACY,
            ),
            api_mode="V1",
        )
        assert summaries["data"][0]["total_usage"] == expected


def test_seed_with_priority_rendering_adds_a_second_licensed_plan(
    emu: Emulator, client: stripe.StripeClient
) -> None:
    seeded = seed_legacy_account(emu, customers=12, priority_rendering=True)
    assert seeded.priority_price is not None
    priority = client.v1.prices.retrieve(seeded.priority_price)
    assert (priority.lookup_key, priority.unit_amount, priority.product) == (
        "priority_rendering",
        1500,
        "prod_priority_rendering",
    )
    assert priority.recurring.usage_type == "licensed"
    holders = [c for c in seeded.customers if c.priority_item is not None]
    assert [(c.index, c.priority_seats) for c in holders] == [(0, 2), (4, 2), (6, 2), (10, 2)]
    assert [c.index for c in holders if c.platform_item is not None] == [0, 6]
    for holder in holders:
        items = client.v1.subscriptions.retrieve(holder.subscription)["items"].data
        assert items[-1].id == holder.priority_item
        assert (items[-1].price.id, items[-1].quantity) == (seeded.priority_price, 2)
    # The rest of the account is seeded as without it.
    assert [c.index for c in seeded.customers if c.platform_item is not None] == [0, 3, 6, 9]
    assert all(c.priority_seats == 0 for c in seeded.customers if c not in holders)
