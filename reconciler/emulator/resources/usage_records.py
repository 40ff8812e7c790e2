"""Legacy usage records, only on API versions up to ``2025-02-24.acacia``.

- ``POST /v1/subscription_items/{id}/usage_records`` (``quantity``,
  ``timestamp`` (``now`` by default), ``action`` ``increment`` | ``set``);
- ``GET /v1/subscription_items/{id}/usage_record_summaries``: one summary per
  billing period, newest first: the current period (``invoice`` null), then
  every invoiced period with the invoice that billed it.

On ``2025-03-31.basil`` and later both routes answer Stripe's unrecognised-URL
404, whatever the parameters. The SDK 16 has no TypedDicts for them any more,
so their parameter schemas are written here. Only items on a legacy
(meter-less) metered price take usage; the timestamp must fall in the item's
current period and not in the future (of the customer's test clock).
"""

from __future__ import annotations

from typing import Any

from reconciler.emulator.errors import ApiError, invalid
from reconciler.emulator.params import ListNode, ObjectNode, ScalarNode, UnionNode
from reconciler.emulator.render import paginate
from reconciler.emulator.resources.billing import (
    INVOICE,
    USAGE_RECORD_KIND,
    customer_now,
    is_legacy_metered,
    legacy_usage,
)
from reconciler.emulator.resources.catalog import PRICE
from reconciler.emulator.resources.subscriptions import find_item
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, new_id
from reconciler.emulator.versions import has_legacy_usage_billing

__all__ = ["register"]

#: Usage may be stamped this far ahead of the clock (request latency).
MAX_FUTURE = 5 * 60

_CREATE = ObjectNode(
    "UsageRecordCreateParams",
    {
        "action": ScalarNode("str", frozenset({"increment", "set"})),
        "expand": ListNode(ScalarNode("str")),
        "quantity": ScalarNode("int"),
        "timestamp": UnionNode((ScalarNode("str", frozenset({"now"})), ScalarNode("int"))),
    },
    frozenset({"quantity"}),
)
_SUMMARIES = ObjectNode(
    "UsageRecordSummaryListParams",
    {
        "ending_before": ScalarNode("str"),
        "expand": ListNode(ScalarNode("str")),
        "limit": ScalarNode("int"),
        "starting_after": ScalarNode("str"),
    },
)


class _Unchecked(ObjectNode):
    """Any parameters: the handler answers 404 before looking at them."""

    def coerce(self, value: Any, path: str) -> Any:
        return dict(value) if isinstance(value, dict) else {}


def _schema(legacy: ObjectNode) -> Any:
    def adjust(version: str, schema: ObjectNode) -> ObjectNode:
        return legacy if has_legacy_usage_billing(version) else _Unchecked("Removed")

    return adjust


def _gate(req: Request) -> None:
    if not req.legacy_usage_billing:
        raise ApiError(
            404,
            f"Unrecognized request URL ({req.method}: {req.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            store_idempotent=False,
        )


def _legacy_item(req: Request) -> tuple[JSON, JSON, JSON]:
    sub, item = find_item(req, req.path_params["id"])
    price = req.store.get(PRICE, str(item["price"]))
    if not is_legacy_metered(price):
        raise invalid(
            "Usage records can only be created for subscription items on a metered price "
            f"without a meter; {item['id']} is on {price['id']}.",
            param="subscription_item",
        )
    return sub, item, price


def create(req: Request) -> JSON:
    _gate(req)
    sub, item, _ = _legacy_item(req)
    if sub["status"] != "active":
        raise invalid(
            f"Usage cannot be reported on subscription {sub['id']}: it is {sub['status']}."
        )
    params = req.params
    quantity = int(params["quantity"])
    if quantity < 0:
        raise invalid("quantity must be a non-negative integer.", param="quantity")
    now = customer_now(req, sub["customer"])
    raw = params.get("timestamp")
    timestamp = now if raw in (None, "now") else int(raw)
    start, end = int(item["current_period_start"]), int(item["current_period_end"])
    if not start <= timestamp < end:
        raise invalid(
            f"Cannot create the usage record with this timestamp because timestamps must be "
            f"within the current subscription billing period ({start} to {end}).",
            param="timestamp",
        )
    if timestamp > now + MAX_FUTURE:
        raise invalid("The usage record timestamp cannot be in the future.", param="timestamp")
    record: JSON = {
        "id": new_id("mbur"),
        "subscription_item": item["id"],
        "quantity": quantity,
        "timestamp": timestamp,
        "action": params.get("action") or "increment",
        "created": req.now(),
    }
    req.store.put(USAGE_RECORD_KIND, record)
    return {
        "id": record["id"],
        "object": "usage_record",
        "livemode": False,
        "quantity": quantity,
        "subscription_item": item["id"],
        "timestamp": timestamp,
    }


def _summary(item_id: str, start: int, end: int, total: int, invoice: str | None) -> JSON:
    return {
        "id": f"sis_{item_id.removeprefix('si_')}{start}",
        "object": "usage_record_summary",
        "invoice": invoice,
        "livemode": False,
        "period": {"end": end, "start": start},
        "subscription_item": item_id,
        "total_usage": total,
    }


def summaries(req: Request) -> JSON:
    _gate(req)
    sub, item, price = _legacy_item(req)
    aggregate = str(price["recurring"].get("aggregate_usage") or "sum")
    billed: list[JSON] = []
    for invoice in req.store.values(INVOICE):
        for line in invoice["lines"]["data"]:
            if line.get("subscription_item") == item["id"]:
                start, end = int(line["period"]["start"]), int(line["period"]["end"])
                billed.append(
                    _summary(item["id"], start, end, int(line["quantity"]), invoice["id"])
                )
    found: list[JSON] = []
    if sub["status"] == "active":
        start, end = int(item["current_period_start"]), int(item["current_period_end"])
        found.append(
            _summary(
                item["id"], start, end, legacy_usage(req, item["id"], aggregate, start, end), None
            )
        )
    found.extend(sorted(billed, key=lambda s: -int(s["period"]["start"])))
    return paginate(
        req,
        found,
        f"/v1/subscription_items/{item['id']}/usage_record_summaries",
        label="usage_record_summary",
    )


def register(registry: Registry) -> None:
    base = "/v1/subscription_items/{id}"
    registry.route("POST", base + "/usage_records", create, adjust=_schema(_CREATE))
    registry.route("GET", base + "/usage_record_summaries", summaries, adjust=_schema(_SUMMARIES))
