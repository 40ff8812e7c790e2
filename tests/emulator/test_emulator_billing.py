"""Meters, meter events (v1 and v2), event summaries, customers, test clocks, alerts."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import stripe
from emulator_helpers import make_client

from reconciler.emulator import Emulator

DAY = 86400


def _day_start(days_ago: int) -> int:
    return (int(time.time()) // DAY - days_ago) * DAY


# --- meters ---------------------------------------------------------------------------------
def test_meter_create_defaults_and_list(client: stripe.StripeClient, uid: str) -> None:
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "Tokens",
            "event_name": f"tokens_{uid}",
            "default_aggregation": {"formula": "last"},
            "customer_mapping": {"type": "by_id", "event_payload_key": "customer"},
        }
    )
    assert meter.id.startswith("mtr_")
    assert meter.object == "billing.meter"
    assert meter.status == "active"
    assert meter.customer_mapping.event_payload_key == "customer"
    assert meter.value_settings.event_payload_key == "value"
    assert meter.status_transitions.deactivated_at is None
    assert client.v1.billing.meters.retrieve(meter.id).event_name == f"tokens_{uid}"
    listed = client.v1.billing.meters.list(params={"status": "active"})
    assert meter.id in {m.id for m in listed.auto_paging_iter()}


def test_meter_event_name_is_unique(
    client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meters.create(
            params={
                "display_name": "Again",
                "event_name": meter.event_name,
                "default_aggregation": {"formula": "sum"},
            }
        )
    assert caught.value.http_status == 400
    assert caught.value.param == "event_name"


def test_meter_update_display_name_only(
    client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    updated = client.v1.billing.meters.update(meter.id, params={"display_name": "Renamed"})
    assert updated.display_name == "Renamed"
    for field, value in (
        ("event_name", "other"),
        ("default_aggregation", {"formula": "count"}),
        ("value_settings", {"event_payload_key": "v"}),
    ):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.raw_request("post", f"/v1/billing/meters/{meter.id}", **{field: value})
        assert (caught.value.code, caught.value.http_status) == ("parameter_unknown", 400)
        assert str(caught.value.param).startswith(field)


def test_meter_event_time_window_is_kept_and_fixed(client: stripe.StripeClient, uid: str) -> None:
    plain = client.v1.billing.meters.create(
        params={
            "display_name": "Raw",
            "event_name": f"raw_{uid}",
            "default_aggregation": {"formula": "sum"},
        }
    )
    assert plain.event_time_window is None
    hourly = client.v1.billing.meters.create(
        params={
            "display_name": "Hourly",
            "event_name": f"hourly_{uid}",
            "default_aggregation": {"formula": "sum"},
            "event_time_window": "hour",
        }
    )
    assert hourly.event_time_window == "hour"
    assert client.v1.billing.meters.retrieve(hourly.id).event_time_window == "hour"
    listed = {m.id: m for m in client.v1.billing.meters.list().auto_paging_iter()}
    assert listed[hourly.id].event_time_window == "hour"
    with pytest.raises(stripe.InvalidRequestError) as weekly:
        client.v1.billing.meters.create(
            params={
                "display_name": "Weekly",
                "event_name": f"weekly_{uid}",
                "default_aggregation": {"formula": "sum"},
                "event_time_window": "week",
            }
        )
    assert (weekly.value.http_status, weekly.value.param) == (400, "event_time_window")
    with pytest.raises(stripe.InvalidRequestError) as changed:
        client.raw_request("post", f"/v1/billing/meters/{hourly.id}", event_time_window="day")
    assert (changed.value.code, changed.value.param) == ("parameter_unknown", "event_time_window")
    assert client.v1.billing.meters.retrieve(hourly.id).event_time_window == "hour"


def test_meter_deactivate_reactivate(
    client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    off = client.v1.billing.meters.deactivate(meter.id)
    assert off.status == "inactive"
    assert off.status_transitions.deactivated_at is not None
    inactive = client.v1.billing.meters.list(params={"status": "inactive"})
    assert meter.id in {m.id for m in inactive.data}
    on = client.v1.billing.meters.reactivate(meter.id)
    assert on.status == "active"
    assert on.status_transitions.deactivated_at is None


# --- meter events and summaries ----------------------------------------------------------
def test_event_summaries_by_hand(emu: Emulator) -> None:
    client = make_client(emu.url)
    meter = client.v1.billing.meters.create(
        params={"display_name": "S", "event_name": "s", "default_aggregation": {"formula": "sum"}}
    )
    alice = client.v1.customers.create(params={"name": "Alice"})
    bob = client.v1.customers.create(params={"name": "Bob"})
    base = _day_start(2)
    for when, customer, value in (
        (base + 10, alice.id, 5),
        (base + 3600 + 5, alice.id, 7),
        (base + DAY + 1, alice.id, 11),
        (base + 20, bob.id, 100),
        (base + 2 * DAY + 1, alice.id, 1000),
    ):
        event = client.v1.billing.meter_events.create(
            params={
                "event_name": "s",
                "payload": {"stripe_customer_id": customer, "value": str(value)},
                "timestamp": when,
            }
        )
        assert event.object == "billing.meter_event"
        assert event.timestamp == when
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": alice.id, "start_time": base, "end_time": base + 2 * DAY}
    )
    assert [s.aggregated_value for s in summaries.data] == [5 + 7 + 11]
    assert summaries.data[0].object == "billing.meter_event_summary"
    assert (summaries.data[0].start_time, summaries.data[0].end_time) == (base, base + 2 * DAY)
    hourly = client.v1.billing.meters.event_summaries.list(
        meter.id,
        params={
            "customer": alice.id,
            "start_time": base,
            "end_time": base + 3 * 3600,
            "value_grouping_window": "hour",
        },
    )
    assert [(s.start_time, s.aggregated_value) for s in hourly.data] == [
        (base + 7200, 0),
        (base + 3600, 7),
        (base, 5),
    ]
    daily = client.v1.billing.meters.event_summaries.list(
        meter.id,
        params={
            "customer": bob.id,
            "start_time": base,
            "end_time": base + 2 * DAY,
            "value_grouping_window": "day",
        },
    )
    assert [s.aggregated_value for s in daily.data] == [0, 100]


def test_summary_formulas_count_and_last(emu: Emulator) -> None:
    client = make_client(emu.url)
    counted = client.v1.billing.meters.create(
        params={"display_name": "C", "event_name": "c", "default_aggregation": {"formula": "count"}}
    )
    last = client.v1.billing.meters.create(
        params={"display_name": "L", "event_name": "l", "default_aggregation": {"formula": "last"}}
    )
    customer = client.v1.customers.create(params={"email": "a@example.com"})
    base = _day_start(1)
    for offset, value in ((300, 4), (100, 9), (200, 2)):
        for name in ("c", "l"):
            client.v1.billing.meter_events.create(
                params={
                    "event_name": name,
                    "timestamp": base + offset,
                    "payload": {"stripe_customer_id": customer.id, "value": str(value)},
                }
            )
    window = {"customer": customer.id, "start_time": base, "end_time": base + 3600}
    assert (
        client.v1.billing.meters.event_summaries.list(counted.id, params=window)
        .data[0]
        .aggregated_value
        == 3
    )
    assert (
        client.v1.billing.meters.event_summaries.list(last.id, params=window)
        .data[0]
        .aggregated_value
        == 4
    )


@pytest.mark.parametrize(("window", "size"), [("hour", 3600), ("day", DAY)])
def test_a_pre_aggregated_meter_counts_the_latest_event_sent_in_each_window(
    emu: Emulator, window: str, size: int
) -> None:
    client = make_client(emu.url)
    meter = client.v1.billing.meters.create(
        params={
            "display_name": "P",
            "event_name": "p",
            "default_aggregation": {"formula": "sum"},
            "event_time_window": window,
            "customer_mapping": {"type": "by_id", "event_payload_key": "account"},
            "value_settings": {"event_payload_key": "tokens"},
        }
    )
    alice = client.v1.customers.create(params={"name": "Alice"})
    bob = client.v1.customers.create(params={"name": "Bob"})
    base = _day_start(3)
    # Sent in this order: within one window the latest sent replaces the others, even
    # one stamped earlier; each customer has windows of their own.
    for when, customer, value in (
        (base + 120, alice.id, 5),
        (base + 60, alice.id, 7),
        (base + size + 60, alice.id, 11),
        (base + 180, bob.id, 100),
    ):
        client.v1.billing.meter_events.create(
            params={
                "event_name": "p",
                "payload": {"account": customer, "tokens": str(value)},
                "timestamp": when,
            }
        )
    span = {"start_time": base, "end_time": base + 2 * DAY}
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": alice.id, **span}
    )
    assert [s.aggregated_value for s in summaries.data] == [7 + 11]
    per_window = client.v1.billing.meters.event_summaries.list(
        meter.id,
        params={
            "customer": alice.id,
            "start_time": base,
            "end_time": base + 2 * size,
            "value_grouping_window": window,
        },
    )
    assert [s.aggregated_value for s in per_window.data] == [11, 7]
    bobs = client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": bob.id, **span}
    )
    assert [s.aggregated_value for s in bobs.data] == [100]


def test_summary_times_must_be_aligned(
    client: stripe.StripeClient, meter: stripe.billing.Meter
) -> None:
    customer = client.v1.customers.create(params={"name": "X"})
    base = _day_start(1)
    with pytest.raises(stripe.InvalidRequestError) as minute:
        client.v1.billing.meters.event_summaries.list(
            meter.id,
            params={"customer": customer.id, "start_time": base + 7, "end_time": base + 60},
        )
    assert minute.value.param == "start_time"
    with pytest.raises(stripe.InvalidRequestError) as hour:
        client.v1.billing.meters.event_summaries.list(
            meter.id,
            params={
                "customer": customer.id,
                "start_time": base,
                "end_time": base + 60,
                "value_grouping_window": "hour",
            },
        )
    assert hour.value.param == "end_time"


def test_meter_event_refusals(
    client: stripe.StripeClient, meter: stripe.billing.Meter, uid: str
) -> None:
    customer = client.v1.customers.create(params={"name": "E"})
    payload = {"stripe_customer_id": customer.id, "value": "1"}
    event = client.v1.billing.meter_events.create(
        params={"event_name": meter.event_name, "payload": payload, "identifier": f"id_{uid}"}
    )
    assert event.identifier == f"id_{uid}"
    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        client.v1.billing.meter_events.create(
            params={"event_name": meter.event_name, "payload": payload, "identifier": f"id_{uid}"}
        )
    assert duplicate.value.param == "identifier"
    with pytest.raises(stripe.InvalidRequestError) as old:
        client.v1.billing.meter_events.create(
            params={
                "event_name": meter.event_name,
                "payload": payload,
                "timestamp": int(time.time()) - 36 * DAY,
            }
        )
    assert old.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError) as future:
        client.v1.billing.meter_events.create(
            params={
                "event_name": meter.event_name,
                "payload": payload,
                "timestamp": int(time.time()) + 600,
            }
        )
    assert future.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError) as no_customer:
        client.v1.billing.meter_events.create(
            params={"event_name": meter.event_name, "payload": {"value": "1"}}
        )
    assert no_customer.value.param == "payload[stripe_customer_id]"


def test_meter_events_need_an_active_meter(emu: Emulator) -> None:
    client = make_client(emu.url)
    meter = client.v1.billing.meters.create(
        params={"display_name": "D", "event_name": "d", "default_aggregation": {"formula": "sum"}}
    )
    client.v1.billing.meters.deactivate(meter.id)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.billing.meter_events.create(
            params={"event_name": "d", "payload": {"stripe_customer_id": "cus_1", "value": "1"}}
        )
    assert caught.value.param == "event_name"


def test_v2_session_and_stream(emu: Emulator) -> None:
    client = make_client(emu.url)
    meter = client.v1.billing.meters.create(
        params={"display_name": "V2", "event_name": "v2", "default_aggregation": {"formula": "sum"}}
    )
    customer = client.v1.customers.create(params={"name": "Streamer"})
    session = client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session"
    assert session.authentication_token
    expires = datetime.fromisoformat(str(session.expires_at).replace("Z", "+00:00"))
    assert expires > datetime.now(tz=UTC)
    base = _day_start(1)
    stream_client = make_client(emu.url, key=session.authentication_token)
    stream_client.v2.billing.meter_event_stream.create(
        params={
            "events": [
                {
                    "event_name": "v2",
                    "identifier": f"ev_{i}",
                    "payload": {"stripe_customer_id": customer.id, "value": str(i)},
                    "timestamp": datetime.fromtimestamp(base + 60 * i, tz=UTC).isoformat(),
                }
                for i in range(1, 5)
            ]
        }
    )
    single = client.v2.billing.meter_events.create(
        params={
            "event_name": "v2",
            "payload": {"stripe_customer_id": customer.id, "value": "10"},
            "timestamp": datetime.fromtimestamp(base + 600, tz=UTC).isoformat(),
        }
    )
    assert single.object == "v2.billing.meter_event"
    total = client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": customer.id, "start_time": base, "end_time": base + 3600}
    )
    assert total.data[0].aggregated_value == 1 + 2 + 3 + 4 + 10
    with pytest.raises(stripe.AuthenticationError):
        make_client(emu.url, key="mes_tok_forged").v2.billing.meter_event_stream.create(
            params={"events": []}
        )
    with pytest.raises(stripe.AuthenticationError):
        client.v2.billing.meter_event_stream.create(params={"events": []})
    emu.clock.advance(16 * 60)
    with pytest.raises(stripe.TemporarySessionExpiredError) as expired:
        stream_client.v2.billing.meter_event_stream.create(params={"events": []})
    assert expired.value.code == "billing_meter_event_session_expired"


# --- customers and test clocks ----------------------------------------------------------
def test_customers(client: stripe.StripeClient, uid: str) -> None:
    customer = client.v1.customers.create(
        params={"email": f"{uid}@example.com", "name": "Ann", "metadata": {"plan": "pro"}}
    )
    assert customer.id.startswith("cus_")
    assert customer.test_clock is None
    updated = client.v1.customers.update(
        customer.id, params={"name": "Anna", "metadata": {"x": "1"}}
    )
    assert updated.name == "Anna"
    assert updated.metadata.to_dict() == {"plan": "pro", "x": "1"}
    found = client.v1.customers.list(params={"email": f"{uid}@example.com"})
    assert [c.id for c in found.data] == [customer.id]
    assert client.v1.customers.retrieve(customer.id).email == f"{uid}@example.com"


def test_test_clock_lifecycle(client: stripe.StripeClient, uid: str) -> None:
    start = _day_start(0)
    clock = client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": start, "name": f"sim {uid}"}
    )
    assert clock.id.startswith("clock_")
    assert clock.status == "ready"
    assert clock.frozen_time == start
    customer = client.v1.customers.create(params={"name": "On clock", "test_clock": clock.id})
    assert customer.test_clock == clock.id
    expanded = client.v1.customers.retrieve(customer.id, params={"expand": ["test_clock"]})
    assert expanded.test_clock.frozen_time == start
    moved = client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": start + DAY}
    )
    assert moved.frozen_time == start + DAY
    assert moved.status in ("advancing", "ready")
    with pytest.raises(stripe.InvalidRequestError) as backwards:
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": start})
    assert backwards.value.param == "frozen_time"
    listed = client.v1.test_helpers.test_clocks.list()
    assert clock.id in {c.id for c in listed.data}
    gone = client.v1.test_helpers.test_clocks.delete(clock.id)
    assert gone.deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer.id)


def test_customer_test_clock_must_exist(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.create(params={"test_clock": "clock_missing"})
    assert (caught.value.code, caught.value.param) == ("resource_missing", "test_clock")


def test_clock_advance_runs_hooks_and_caps_jumps(emu: Emulator) -> None:
    seen: list[tuple[int, int]] = []

    def spy(req: object, clock: object, old: int, new: int) -> None:
        seen.append((old, new))

    emu.app.registry.add_hook("test_clock.advance", spy)
    try:
        client = make_client(emu.url)
        clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_700_000_000})
        client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": 1_700_086_400})
        assert seen == [(1_700_000_000, 1_700_086_400)]
        with pytest.raises(stripe.InvalidRequestError) as caught:
            client.v1.test_helpers.test_clocks.advance(
                clock.id, params={"frozen_time": 1_700_086_400 + 3 * 365 * DAY}
            )
        assert caught.value.param == "frozen_time"
    finally:
        emu.app.registry._hooks["test_clock.advance"].remove(spy)


def test_meter_event_timestamps_follow_the_customers_test_clock(emu: Emulator) -> None:
    client = make_client(emu.url)
    client.v1.billing.meters.create(
        params={"display_name": "T", "event_name": "t", "default_aggregation": {"formula": "sum"}}
    )
    frozen = 1_600_000_000
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": frozen})
    customer = client.v1.customers.create(params={"test_clock": clock.id})
    event = client.v1.billing.meter_events.create(
        params={
            "event_name": "t",
            "timestamp": frozen - DAY,
            "payload": {"stripe_customer_id": customer.id, "value": "3"},
        }
    )
    assert event.timestamp == frozen - DAY


# --- alerts -------------------------------------------------------------------------------
def test_alert_lifecycle(
    client: stripe.StripeClient, meter: stripe.billing.Meter, uid: str
) -> None:
    customer = client.v1.customers.create(params={"name": "Alerted"})
    alert = client.v1.billing.alerts.create(
        params={
            "alert_type": "usage_threshold",
            "title": f"Over 10k {uid}",
            "usage_threshold": {
                "gte": 10000,
                "meter": meter.id,
                "recurrence": "one_time",
                "filters": [{"type": "customer", "customer": customer.id}],
            },
        }
    )
    assert alert.id.startswith("alrt_")
    assert alert.status == "active"
    assert alert.usage_threshold.meter == meter.id
    assert alert.usage_threshold.filters[0].customer == customer.id
    assert client.v1.billing.alerts.retrieve(alert.id).title == f"Over 10k {uid}"
    listed = client.v1.billing.alerts.list(params={"meter": meter.id})
    assert [a.id for a in listed.data] == [alert.id]
    assert client.v1.billing.alerts.deactivate(alert.id).status == "inactive"
    assert client.v1.billing.alerts.activate(alert.id).status == "active"
    assert client.v1.billing.alerts.archive(alert.id).status == "archived"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.billing.alerts.activate(alert.id)
    assert client.v1.billing.alerts.list(params={"meter": meter.id}).data == []


def test_alert_refusals(client: stripe.StripeClient, meter: stripe.billing.Meter) -> None:
    with pytest.raises(stripe.InvalidRequestError) as no_meter:
        client.v1.billing.alerts.create(
            params={
                "alert_type": "usage_threshold",
                "title": "t",
                "usage_threshold": {"gte": 1, "meter": "mtr_missing", "recurrence": "one_time"},
            }
        )
    assert no_meter.value.param == "usage_threshold[meter]"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing.alerts.create(
            params={
                "alert_type": "usage_threshold",
                "usage_threshold": {"gte": 1, "meter": meter.id, "recurrence": "one_time"},
            }
        )
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "title")
    with pytest.raises(stripe.InvalidRequestError) as no_update:
        client.raw_request("post", "/v1/billing/alerts/alrt_x", title="new")
    assert no_update.value.http_status == 404
