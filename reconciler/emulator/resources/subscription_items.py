"""Subscription items on their own: ``POST /v1/subscription_items``, ``POST`` and
``DELETE /v1/subscription_items/{id}`` (retrieve and list are in :mod:`.subscriptions`).

Each change is a change of the subscription and emits
``customer.subscription.updated`` (Stripe sends no ``subscription_item.*``
events). The rules are the subscription's own (:mod:`.subscriptions`): a
recurring, active price (an item keeps an archived price it already has), no
``quantity`` on a metered price, one item per price, every item on the same
currency and interval; the last item cannot be deleted (cancel the
subscription instead); a canceled subscription's items do not change.

Prorations follow :mod:`.prorations` (``proration_behavior``, default
``create_prorations``; ``proration_date``; ``payment_behavior`` for
``always_invoice``). Not emulated, refused when asked for: ``price_data``,
``billing_thresholds``, ``current_trial``, item ``discounts`` and pending
updates (``payment_behavior=pending_if_incomplete``). ``clear_usage`` on
delete is accepted: the item's unbilled usage is not billed.
"""

from __future__ import annotations

import copy

from reconciler.emulator.errors import invalid, missing_param
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata
from reconciler.emulator.resources._common import deleted
from reconciler.emulator.resources.billing import (
    SUBSCRIPTION,
    check_attachable,
    customer_now,
    is_metered,
)
from reconciler.emulator.resources.catalog import PRICE
from reconciler.emulator.resources.subscription_limits import limited
from reconciler.emulator.resources.subscriptions import find_item, items_changed, new_item
from reconciler.emulator.resources.tax_and_discounts import tax_rate_objects
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON

__all__ = ["register"]

_ENDED = ("canceled", "incomplete_expired")
_NOT_EMULATED = ("price_data", "billing_thresholds", "current_trial", "discounts")
_PAYMENT_BEHAVIOURS = ("allow_incomplete", "error_if_incomplete", "default_incomplete")


def _refuse_not_emulated(params: JSON) -> None:
    for name in _NOT_EMULATED:
        if params.get(name) is not None:
            raise invalid(
                f"The emulator does not support `{name}` on subscription items (not emulated).",
                param=name,
            )
    payment = params.get("payment_behavior")
    if payment not in (None, *_PAYMENT_BEHAVIOURS):
        raise invalid(
            f"The emulator does not support payment_behavior={payment} (pending updates are "
            "not emulated).",
            param="payment_behavior",
        )


def _check_changeable(sub: JSON, param: str) -> None:
    if sub["status"] == "incomplete":
        raise invalid(
            f"The subscription {sub['id']} is incomplete: it can only update its metadata "
            "until its first invoice is paid.",
            param=param,
        )
    if sub["status"] in _ENDED:
        raise invalid(
            f"The subscription {sub['id']} is {sub['status']}: its items can no longer change.",
            param=param,
        )


def _check_quantity(price: JSON, quantity: object) -> None:
    if quantity is None:
        return
    if is_metered(price):
        raise invalid(
            "Quantity should not be specified where usage_type is `metered`. Remove quantity.",
            param="quantity",
        )
    if int(str(quantity)) < 0:
        raise invalid("Quantity must be a non-negative integer.", param="quantity")


def _check_fits(req: Request, sub: JSON, price: JSON, *, replacing: str | None = None) -> None:
    """One item per price; every item on the price's currency and interval."""
    for other in sub["items"]["data"]:
        if other["id"] == replacing:
            continue
        if other["price"] == price["id"]:
            raise invalid(
                f"Cannot add multiple subscription items with the same price: {price['id']}.",
                param="price",
            )
        existing = req.store.get(PRICE, str(other["price"]))
        same = (
            existing["currency"] == price["currency"]
            and existing["recurring"]["interval"] == price["recurring"]["interval"]
            and existing["recurring"]["interval_count"] == price["recurring"]["interval_count"]
        )
        if not same:
            raise invalid(
                "Currency and interval fields must match across all plans on this "
                "subscription. Found mismatch in `price`.",
                param="price",
            )


def _price_param(params: JSON) -> object:
    return params.get("price") if params.get("price") is not None else params.get("plan")


def create(req: Request) -> JSON:
    params = req.params
    _refuse_not_emulated(params)
    sub = req.store.get(SUBSCRIPTION, str(params["subscription"]), param="subscription", status=400)
    saved = copy.deepcopy(sub)
    _check_changeable(sub, "subscription")
    price_id = _price_param(params)
    if price_id is None:
        raise missing_param("price")
    price = check_attachable(req, price_id, "price")
    _check_quantity(price, params.get("quantity"))
    _check_fits(req, sub, price)
    now = customer_now(req, sub["customer"])
    spec = {"quantity": params.get("quantity"), "metadata": params.get("metadata")}
    item = new_item(req, sub, spec, price, param="", now=now)
    item["tax_rates"] = tax_rate_objects(req, params.get("tax_rates"), "tax_rates")
    sub["items"]["data"].append(item)
    sub["items"]["total_count"] = len(sub["items"]["data"])
    req.store.put(SUBSCRIPTION, sub)
    items_changed(req, sub, saved, params, customer_now(req, sub["customer"]))
    emit(req, "customer.subscription.updated", sub)
    return item


def update(req: Request) -> JSON:
    params = req.params
    _refuse_not_emulated(params)
    sub, item = find_item(req, req.path_params["id"])
    saved = copy.deepcopy(sub)
    _check_changeable(sub, "id")
    price_id = _price_param(params)
    if price_id is None:
        price_id = item["price"]
    # An item that keeps its price keeps it even once the price is archived.
    price = check_attachable(req, price_id, "price", allow_inactive=str(price_id) == item["price"])
    _check_quantity(price, params.get("quantity"))
    _check_fits(req, sub, price, replacing=item["id"])
    if is_metered(price):
        item.pop("quantity", None)
    elif params.get("quantity") is not None:
        item["quantity"] = int(params["quantity"])
    else:
        item["quantity"] = item.get("quantity", 1)
    item["price"] = price["id"]
    if "tax_rates" in params:
        item["tax_rates"] = tax_rate_objects(req, params["tax_rates"], "tax_rates")
    if "metadata" in params:
        item["metadata"] = apply_metadata(item["metadata"], params["metadata"])
    req.store.put(SUBSCRIPTION, sub)
    items_changed(req, sub, saved, params, customer_now(req, sub["customer"]))
    emit(req, "customer.subscription.updated", sub)
    return item


def delete(req: Request) -> JSON:
    params = req.params
    _refuse_not_emulated(params)
    sub, item = find_item(req, req.path_params["id"])
    saved = copy.deepcopy(sub)
    _check_changeable(sub, "id")
    if len(sub["items"]["data"]) == 1:
        raise invalid(
            "A subscription must have at least one active plan. To cancel a subscription, "
            "please use the cancel API endpoint on /v1/subscriptions.",
            param="id",
        )
    sub["items"]["data"] = [i for i in sub["items"]["data"] if i["id"] != item["id"]]
    sub["items"]["total_count"] = len(sub["items"]["data"])
    req.store.put(SUBSCRIPTION, sub)
    items_changed(req, sub, saved, params, customer_now(req, sub["customer"]))
    emit(req, "customer.subscription.updated", sub)
    return deleted("subscription_item", item["id"])


def _given_subscription(req: Request) -> str | None:
    given = req.params.get("subscription")
    return str(given) if given is not None else None


def _item_subscription(req: Request) -> str | None:
    """The subscription of the item in the path (None when there is no such item)."""
    item_id = req.path_params.get("id")
    for sub in req.store.iterate(SUBSCRIPTION):
        if any(item["id"] == item_id for item in sub["items"]["data"]):
            return str(sub["id"])
    return None


def register(registry: Registry) -> None:
    base = "/v1/subscription_items"
    registry.route(
        "POST", base, limited(create, _given_subscription), params="SubscriptionItemCreateParams"
    )
    registry.route(
        "POST",
        base + "/{id}",
        limited(update, _item_subscription),
        params="SubscriptionItemModifyParams",
    )
    registry.route(
        "DELETE",
        base + "/{id}",
        limited(delete, _item_subscription),
        params="SubscriptionItemDeleteParams",
    )
