"""Emulator objects have the fields Stripe's objects have.

Two references: the SDK's resource classes (always available) and Stripe's
published example objects in ``../shared/stripe-openapi/fixtures3.json``
beside the repository (skipped when absent, as in users' clones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import stripe
from emulator_helpers import make_client

from reconciler.emulator import Emulator

FIXTURES = Path(__file__).parents[3] / "shared" / "stripe-openapi" / "fixtures3.json"

#: Fields Stripe itself leaves out unless expanded or included on request.
NOT_BY_DEFAULT = {
    "price": {"tiers", "currency_options", "deleted"},
    "product": {"deleted"},
    "customer": {
        "deleted",
        "cash_balance",
        "invoice_credit_balance",
        "sources",
        "subscriptions",
        "tax",
        "tax_ids",
    },
    "test_helpers.test_clock": {"deleted"},
}


@pytest.fixture
def objects(emu: Emulator) -> dict[str, dict[str, Any]]:
    client = make_client(emu.url)
    meter = client.v1.billing.meters.create(
        params={"display_name": "M", "event_name": "m", "default_aggregation": {"formula": "sum"}}
    )
    product = client.v1.products.create(params={"name": "P"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    customer = client.v1.customers.create(params={"name": "C"})
    clock = client.v1.test_helpers.test_clocks.create(params={"frozen_time": 1_700_000_000})
    alert = client.v1.billing.alerts.create(
        params={
            "alert_type": "usage_threshold",
            "title": "A",
            "usage_threshold": {"gte": 5, "meter": meter.id, "recurrence": "one_time"},
        }
    )
    base = 1_700_000_000 // 86400 * 86400
    summary = client.v1.billing.meters.event_summaries.list(
        meter.id, params={"customer": customer.id, "start_time": base, "end_time": base + 60}
    ).data[0]
    return {
        obj.object: obj.to_dict(recursive=True)
        for obj in (meter, product, price, customer, clock, alert, summary)
    }


def _sdk_fields(cls: type) -> set[str]:
    return {name for name in cls.__annotations__ if not name.isupper()}


def test_objects_have_the_sdk_resource_fields(objects: dict[str, dict[str, Any]]) -> None:
    for cls in (
        stripe.Price,
        stripe.Product,
        stripe.billing.Meter,
        stripe.billing.Alert,
        stripe.Customer,
        stripe.test_helpers.TestClock,
        stripe.billing.MeterEventSummary,
    ):
        name = cls.OBJECT_NAME
        expected = _sdk_fields(cls) - NOT_BY_DEFAULT.get(name, {"deleted"})
        missing = expected - set(objects[name])
        assert not missing, f"{name} lacks {sorted(missing)}"
        assert objects[name]["livemode"] is False


def test_objects_have_every_top_level_key_of_stripes_examples(
    objects: dict[str, dict[str, Any]],
) -> None:
    if not FIXTURES.exists():
        pytest.skip(f"{FIXTURES} not present")
    resources = json.loads(FIXTURES.read_text())["resources"]
    for name, ours in objects.items():
        example = resources[name]
        missing = set(example) - set(ours)
        assert not missing, f"{name} lacks {sorted(missing)}"
        for key, value in example.items():
            if isinstance(value, dict) and isinstance(ours.get(key), dict) and key != "metadata":
                nested = set(value) - set(ours[key])
                assert not nested, f"{name}.{key} lacks {sorted(nested)}"


def test_id_prefixes(objects: dict[str, dict[str, Any]]) -> None:
    prefixes = {
        "price": "price_",
        "product": "prod_",
        "billing.meter": "mtr_",
        "customer": "cus_",
        "test_helpers.test_clock": "clock_",
        "billing.alert": "alrt_",
        "billing.meter_event_summary": "mtrusg_",
    }
    for name, prefix in prefixes.items():
        assert objects[name]["id"].startswith(prefix)
