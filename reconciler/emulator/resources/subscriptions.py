"""Subscriptions (``/v1/subscriptions``) and their items (``/v1/subscription_items``).

A subscription bills its items on one cycle: every item's price shares the
currency, ``interval`` and ``interval_count``. Period boundaries follow the
``billing_cycle_anchor`` on the calendar (see :mod:`.billing`); "now" is the
customer's test clock time when it has one.

Stripe's rules emulated here:

- metered items take no ``quantity`` (400 when given); licensed ones default to 1;
- a legacy meter-less metered price can be attached (create, item add or
  price change) only on API versions up to ``2025-02-24.acacia``;
- an archived price (``active=false``) cannot be attached (create, item add or
  price change): ``The price specified is inactive. This field only accepts
  active prices.`` (see :data:`.billing.INACTIVE_PRICE`); an item already on an
  archived price keeps it through updates;
- since ``2025-03-31.basil`` ``current_period_start`` / ``current_period_end``
  live on each item only; older versions also show them on the subscription;
- list filters ``price``, ``customer``, ``status`` (default: everything but
  ``canceled`` / ``incomplete_expired``; ``all``), ``test_clock``; up to 100 a page;
  ``expand[]=data.schedule`` works through the schedule object type;
- ``DELETE`` cancels (and cancels an attached schedule; ``invoice_now`` and
  ``prorate`` per :mod:`.prorations`); canceling stops the automatic
  collection of the customer's open invoices;
- payments (:mod:`.collection`): ``default_payment_method`` (one attached to
  the customer), ``payment_behavior`` on create (``allow_incomplete``, the
  default, ``default_incomplete``, ``error_if_incomplete``; ``pending_if_incomplete``
  is refused: pending updates are not emulated), statuses ``incomplete``,
  ``incomplete_expired``, ``past_due``, ``unpaid``;
- ``cancel_at`` (a time, ``max_period_end`` / ``min_period_end``; ``""``
  clears it), ``cancel_at_period_end``, ``pause_collection``
  (``keep_as_draft`` / ``mark_uncollectible`` / ``void``, optional
  ``resumes_at``), honoured by test clock advances (:mod:`.renewals`);
- item changes prorate (:mod:`.prorations`), or reset the billing cycle at once
  when they move the subscription between free and paid (:mod:`.cycle_reset`).
- Stripe's per-subscription limits on new invoices and quantity updates
  (:mod:`.subscription_limits`) apply to create, update, cancel and resume.

- trials on create (``trial_period_days``, or ``trial_end`` as a time or
  ``now``; at most 730 days): the subscription is ``trialing``, the trial's
  end is the billing cycle anchor and the first period's end, the
  ``subscription_create`` invoice bills every licensed item at $0 ("Trial
  period for ..."), and the test clock reaching the end makes it ``active``
  and bills the first paid period (``subscription_cycle``). Not emulated,
  refused: trials with metered items, with a ``billing_cycle_anchor``,
  ``trial_from_plan``, and trial changes on update; ``trial_settings``
  (``missing_payment_method``: ``create_invoice``, ``pause``, ``cancel``) is
  honoured at the trial's end (:mod:`.renewals`), a ``paused`` subscription
  comes back with ``POST /v1/subscriptions/{id}/resume``;
- every object carries Stripe's always-present fields: an item's deprecated
  ``plan`` is the plan view of its price, added when rendered.

Not emulated (refused): pending updates, sources and ``payment_settings``;
the item endpoints are in :mod:`.subscription_items`.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from reconciler.emulator.errors import invalid, missing_param, no_such
from reconciler.emulator.events import emit
from reconciler.emulator.render import apply_metadata, matches_created, paginate
from reconciler.emulator.resources.billing import (
    CUSTOMER,
    DISCOUNT,
    INVOICE,
    SCHEDULE,
    SUBSCRIPTION,
    TEST_CLOCK,
    check_attachable,
    customer_now,
    is_metered,
    next_boundary,
)
from reconciler.emulator.resources.catalog import PRICE, plan_of
from reconciler.emulator.resources.payment_methods import (
    PAYMENT_METHOD,
    customer_payment_method,
)
from reconciler.emulator.resources.subscription_limits import limited
from reconciler.emulator.resources.tax_and_discounts import make_discounts, tax_rate_objects
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON, new_id
from reconciler.emulator.versions import BASIL, CLOVER, version_at_least

__all__ = [
    "MAX_ITEMS",
    "MAX_TRIAL_DAYS",
    "PAYMENT_BEHAVIOR",
    "PRORATION_BEHAVIOR",
    "RUNNING",
    "ItemSpec",
    "apply_item_specs",
    "billing_mode",
    "cancel_subscription",
    "check_specs",
    "find_item",
    "interval_of",
    "is_boundary",
    "item_plan",
    "items_changed",
    "new_item",
    "new_subscription",
    "path_subscription",
    "register",
    "set_period",
]

MAX_ITEMS = 20
#: ``req.context`` key: the ``payment_behavior`` of the subscription being created
#: (read by the first invoice's collection).
PAYMENT_BEHAVIOR = "subscriptions.payment_behavior"
#: ``req.context`` key: the ``proration_behavior`` of the subscription being created
#: (prorates the first period up to a later ``billing_cycle_anchor``).
PRORATION_BEHAVIOR = "subscriptions.proration_behavior"
#: What a subscription item is built from: price, quantity, tax_rates, metadata (+ id to keep).
ItemSpec = dict[str, Any]
_UNSUPPORTED_CREATE = (
    "add_invoice_items",
    "default_source",
    "payment_settings",
    "backdate_start_date",
    "billing_cycle_anchor_config",
    "trial_from_plan",
)
DAY = 86400
#: Longest trial Stripe accepts (``trial_period_days`` / ``trial_end``), in days.
MAX_TRIAL_DAYS = 730
#: Statuses in which a subscription runs and renews on its test clock (a ``past_due`` or
#: ``unpaid`` one "continues to create invoices": docs.stripe.com/billing/subscriptions/overview).
RUNNING = ("active", "trialing", "past_due", "unpaid")
#: ``payment_behavior`` values emulated on create (``pending_if_incomplete`` is update-only).
PAYMENT_BEHAVIORS = ("allow_incomplete", "default_incomplete", "error_if_incomplete")
#: ``pause_collection.behavior`` values (docs.stripe.com/billing/subscriptions/pause-payment).
PAUSE_BEHAVIORS = ("keep_as_draft", "mark_uncollectible", "void")
_ENDED = ("canceled", "incomplete_expired")


def _refuse_unsupported(params: JSON, names: tuple[str, ...]) -> None:
    for name in names:
        if params.get(name) is not None:
            raise invalid(
                f"The emulator does not support `{name}` on subscriptions (not emulated: "
                "trial changes after creation, trials from plans, backdating, one-off "
                "invoice items, sources, payment settings, thresholds, tax, Connect "
                "fields and a new billing cycle anchor).",
                param=name,
            )


#: Update parameters with no effect in the emulator, refused rather than ignored.
_UPDATE_NOT_EMULATED = (
    "add_invoice_items",
    "default_source",
    "payment_settings",
    "trial_end",
    "trial_from_plan",
    "trial_settings",
    "application_fee_percent",
    "automatic_tax",
    "billing_schedules",
    "billing_thresholds",
    "invoice_settings",
    "on_behalf_of",
    "pending_invoice_item_interval",
    "transfer_data",
)


def billing_mode(req: Request) -> JSON:
    """``flexible`` by default since ``2025-09-30.clover`` (it cannot be turned back)."""
    if version_at_least(req.api_version, CLOVER):
        return {"type": "flexible", "flexible": {"proration_discounts": "included"}}
    return {"type": "classic", "flexible": None}


def item_plan(req: Request, item: JSON) -> None:
    """Render hook: the item's deprecated ``plan``, the plan view of its price."""
    price_id = item.get("price")
    if isinstance(price_id, dict):
        price_id = price_id.get("id")
    price = req.store.find(PRICE, str(price_id)) if price_id else None
    if price is not None and "plan" not in item:
        item["plan"] = plan_of(price, req.api_version)


def interval_of(req: Request, sub: JSON) -> tuple[str, int]:
    """The subscription's billing interval (all items share it)."""
    for item in sub["items"]["data"]:
        price = req.store.find(PRICE, str(item["price"]))
        if price is not None and price.get("recurring"):
            return str(price["recurring"]["interval"]), int(price["recurring"]["interval_count"])
    return "month", 1


def find_item(
    req: Request, item_id: str, *, param: str = "id", status: int = 404
) -> tuple[JSON, JSON]:
    """The subscription and the item with ``item_id`` (404 ``No such subscription_item``)."""
    for sub in req.store.values(SUBSCRIPTION):
        for item in sub["items"]["data"]:
            if item["id"] == item_id:
                return sub, item
    raise no_such("subscription_item", item_id, param=param, status=status)


def _check_one(
    req: Request,
    spec: ItemSpec,
    where: str,
    *,
    allow_legacy: bool = False,
    allow_inactive: bool = False,
    kept: Collection[str] = (),
) -> JSON:
    """The price of one item spec, checked (attachable, no quantity when metered).

    An archived price passes when ``allow_inactive`` or when it is one of ``kept``
    (prices already attached where the spec applies).
    """
    if spec.get("price_data") is not None:
        raise invalid(
            "The emulator does not support price_data; create the price first.",
            param=f"{where}[price_data]",
        )
    if spec.get("price") is None:
        if spec.get("plan") is None:
            raise missing_param(f"{where}[price]")
        spec["price"] = spec["plan"]
    price = check_attachable(
        req,
        spec["price"],
        f"{where}[price]",
        allow_legacy=allow_legacy,
        allow_inactive=allow_inactive or str(spec["price"]) in kept,
    )
    if is_metered(price) and spec.get("quantity") is not None:
        raise invalid(
            "Quantity should not be specified where usage_type is `metered`. Remove "
            f"quantity from `{where}`.",
            param=f"{where}[quantity]",
        )
    if spec.get("quantity") is not None and int(spec["quantity"]) < 0:
        raise invalid("Quantity must be a non-negative integer.", param=f"{where}[quantity]")
    return price


def check_specs(
    req: Request,
    specs: list[ItemSpec],
    param: str,
    *,
    allow_legacy: bool = False,
    allow_inactive: bool = False,
    kept: Collection[str] = (),
) -> list[JSON]:
    """Check item specs together; returns their prices in order (see :func:`_check_one`)."""
    if not specs:
        raise missing_param(param, f"Missing required param: {param}. A subscription needs items.")
    if len(specs) > MAX_ITEMS:
        raise invalid(f"A subscription can have at most {MAX_ITEMS} items.", param=param)
    prices: list[JSON] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        where = f"{param}[{index}]"
        price = _check_one(
            req,
            spec,
            where,
            allow_legacy=allow_legacy,
            allow_inactive=allow_inactive,
            kept=kept,
        )
        if price["id"] in seen:
            raise invalid(
                f"Cannot add multiple subscription items with the same price: {price['id']}.",
                param=f"{where}[price]",
            )
        seen.add(price["id"])
        prices.append(price)
    first = prices[0]
    for index, price in enumerate(prices[1:], start=1):
        same_cycle = (
            price["recurring"]["interval"] == first["recurring"]["interval"]
            and price["recurring"]["interval_count"] == first["recurring"]["interval_count"]
        )
        if price["currency"] != first["currency"] or not same_cycle:
            raise invalid(
                "Currency and interval fields must match across all plans on this "
                f"subscription. Found mismatch in `{param}[{index}][price]`.",
                param=f"{param}[{index}][price]",
            )
    return prices


def new_item(req: Request, sub: JSON, spec: ItemSpec, price: JSON, *, param: str, now: int) -> JSON:
    item: JSON = {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billed_until": None,
        "billing_thresholds": None,
        "created": now,
        "current_trial": None,
        "current_period_end": sub.get("current_period_end"),
        "current_period_start": sub.get("current_period_start"),
        "discounts": [],
        "metadata": apply_metadata({}, spec.get("metadata") or {}),
        "price": price["id"],
        "subscription": sub["id"],
        "tax_rates": tax_rate_objects(req, spec.get("tax_rates"), f"{param}[tax_rates]"),
    }
    if not is_metered(price):
        item["quantity"] = int(spec["quantity"]) if spec.get("quantity") is not None else 1
    return item


def apply_item_specs(req: Request, sub: JSON, specs: list[ItemSpec], param: str, now: int) -> None:
    """Make the subscription's items exactly ``specs`` (a schedule phase's items).

    An item whose price is already on the subscription keeps its ``si_`` id
    (quantity, tax rates and metadata follow the spec); others are removed
    or added.
    """
    prices = check_specs(req, specs, param, allow_legacy=True, allow_inactive=True)
    current = {str(item["price"]): item for item in sub["items"]["data"]}
    items: list[JSON] = []
    for index, (spec, price) in enumerate(zip(specs, prices, strict=True)):
        where = f"{param}[{index}]"
        existing = current.get(price["id"])
        if existing is None:
            items.append(new_item(req, sub, spec, price, param=where, now=now))
            continue
        if not is_metered(price):
            existing["quantity"] = int(spec["quantity"]) if spec.get("quantity") is not None else 1
        existing["tax_rates"] = tax_rate_objects(req, spec.get("tax_rates"), f"{where}[tax_rates]")
        if spec.get("metadata") is not None:
            existing["metadata"] = apply_metadata({}, spec["metadata"])
        items.append(existing)
    sub["items"]["data"] = items
    sub["items"]["total_count"] = len(items)


def set_period(sub: JSON, start: int, end: int) -> None:
    """Set the current period on the subscription and every item."""
    sub["current_period_start"] = start
    sub["current_period_end"] = end
    for item in sub["items"]["data"]:
        item["current_period_start"] = start
        item["current_period_end"] = end


def new_subscription(
    req: Request,
    *,
    customer_id: str,
    specs: list[ItemSpec],
    start: int,
    anchor: int | None,
    params: JSON,
    param: str = "items",
    allow_legacy: bool = False,
    allow_inactive: bool = False,
) -> JSON:
    """A stored, active subscription starting at ``start`` (its first invoice is separate)."""
    customer = req.store.get(CUSTOMER, customer_id, param="customer", status=400)
    prices = check_specs(
        req, specs, param, allow_legacy=allow_legacy, allow_inactive=allow_inactive
    )
    sub_id = new_id("sub")
    interval = str(prices[0]["recurring"]["interval"])
    count = int(prices[0]["recurring"]["interval_count"])
    cycle_anchor = start if anchor is None else anchor
    if cycle_anchor < start:
        raise invalid(
            "billing_cycle_anchor cannot be earlier than the subscription's start.",
            param="billing_cycle_anchor",
        )
    end = next_boundary(cycle_anchor, interval, count, start)
    sub: JSON = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": cycle_anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": billing_mode(req),
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": params.get("collection_method") or "charge_automatically",
        "created": start,
        "currency": prices[0]["currency"],
        "current_period_end": end,
        "current_period_start": start,
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": params.get("days_until_due"),
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": tax_rate_objects(
            req, params.get("default_tax_rates"), "default_tax_rates"
        ),
        "description": params.get("description"),
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "items": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": apply_metadata({}, params.get("metadata") or {}),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "presentment_details": None,
        "schedule": None,
        "start_date": start,
        "status": "active",
        "status_details": None,
        "test_clock": customer.get("test_clock"),
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": _trial_settings(None),
        "trial_start": None,
    }
    sub["items"]["data"] = [
        new_item(req, sub, spec, price, param=f"{param}[{index}]", now=start)
        for index, (spec, price) in enumerate(zip(specs, prices, strict=True))
    ]
    sub["items"]["total_count"] = len(sub["items"]["data"])
    sub["discounts"] = make_discounts(
        req,
        params.get("discounts"),
        customer=customer["id"],
        subscription=sub_id,
        start=start,
        param="discounts",
    )
    req.store.put(SUBSCRIPTION, sub)
    emit(req, "customer.subscription.created", sub)
    return sub


def issue_first_invoice(req: Request, sub: JSON) -> None:
    """Bill the first period (hooked by the invoice module: ``subscription.created``)."""
    for hook in req.registry.hooks("subscription.created"):
        hook(req, sub)


def _trial_end(params: JSON, now: int) -> int | None:
    """The trial's end from ``trial_end`` (a time or ``now``) or ``trial_period_days``."""
    raw = params.get("trial_end")
    days = params.get("trial_period_days")
    if raw is not None:
        if raw == "now":
            return None
        end = int(raw)
        if end <= now:
            raise invalid(
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                param="trial_end",
            )
        if end > now + MAX_TRIAL_DAYS * DAY:
            raise invalid(
                f"trial_end can be no more than {MAX_TRIAL_DAYS} days in the future.",
                param="trial_end",
            )
        return end
    if days is None or int(days) == 0:
        return None
    if not 0 < int(days) <= MAX_TRIAL_DAYS:
        raise invalid(
            f"trial_period_days must be between 1 and {MAX_TRIAL_DAYS}.",
            param="trial_period_days",
        )
    return now + int(days) * DAY


def create(req: Request) -> JSON:
    params = req.params
    _refuse_unsupported(params, _UNSUPPORTED_CREATE)
    customer_id = params.get("customer")
    if customer_id is None:
        raise missing_param("customer")
    now = customer_now(req, str(customer_id))
    anchor = params.get("billing_cycle_anchor")
    trial_end = _trial_end(params, now)
    if trial_end is not None and anchor is not None:
        raise invalid(
            "The emulator does not support a billing_cycle_anchor together with a trial (not "
            "emulated): the trial's end is the anchor.",
            param="billing_cycle_anchor",
        )
    trial_settings = _trial_settings(params.get("trial_settings"))
    behavior = params.get("payment_behavior") or "allow_incomplete"
    if behavior not in PAYMENT_BEHAVIORS:
        raise invalid(
            f"payment_behavior={behavior} is only valid when updating a subscription.",
            param="payment_behavior",
        )
    default_pm = params.get("default_payment_method")
    if default_pm is not None:
        customer_payment_method(req, str(default_pm), str(customer_id), "default_payment_method")
    sub = new_subscription(
        req,
        customer_id=str(customer_id),
        specs=list(params.get("items") or []),
        start=now,
        anchor=trial_end if trial_end is not None else (int(anchor) if anchor else None),
        params=params,
    )
    sub["default_payment_method"] = default_pm
    sub["trial_settings"] = trial_settings
    if params.get("cancel_at") is not None:
        _set_cancel_at(req, sub, params["cancel_at"], params.get("proration_behavior"), now)
    if params.get("pause_collection") is not None:
        sub["pause_collection"] = _pause_collection(params["pause_collection"])
    if trial_end is not None:
        _start_trial(req, sub, now, trial_end)
    req.context[PAYMENT_BEHAVIOR] = behavior
    req.context[PRORATION_BEHAVIOR] = params.get("proration_behavior")
    issue_first_invoice(req, sub)
    if sub["status"] == "incomplete" and behavior == "error_if_incomplete":
        for hook in req.registry.hooks("subscription.error_if_incomplete"):
            hook(req, sub)
    req.store.put(SUBSCRIPTION, sub)
    emit(req, "customer.subscription.updated", sub)
    return sub


def _trial_settings(given: JSON | None) -> JSON:
    """``trial_settings.end_behavior.missing_payment_method``: what the trial's end does
    without a payment method (docs.stripe.com/billing/subscriptions/trials: ``create_invoice``,
    the default, ``pause`` or ``cancel``); its ``billing_cycle_anchor`` is not emulated."""
    end = (given or {}).get("end_behavior") or {}
    if end.get("billing_cycle_anchor") is not None:
        raise invalid(
            "The emulator does not support trial_settings[end_behavior][billing_cycle_anchor] "
            "(not emulated).",
            param="trial_settings[end_behavior][billing_cycle_anchor]",
        )
    missing = end.get("missing_payment_method") or "create_invoice"
    return {"end_behavior": {"missing_payment_method": missing}}


def _pause_collection(value: JSON) -> JSON:
    """``{behavior, resumes_at}`` as Stripe stores it."""
    behavior = value.get("behavior")
    if behavior not in PAUSE_BEHAVIORS:
        raise missing_param("pause_collection[behavior]")
    resumes = value.get("resumes_at")
    return {"behavior": behavior, "resumes_at": int(resumes) if resumes is not None else None}


def _start_trial(req: Request, sub: JSON, start: int, end: int) -> None:
    """``trialing`` until ``end`` (the first period); metered items are not emulated in trials."""
    for index, item in enumerate(sub["items"]["data"]):
        if is_metered(req.store.get(PRICE, str(item["price"]))):
            raise invalid(
                "The emulator does not support trials on subscriptions with metered items "
                "(not emulated: usage during a trial).",
                param=f"items[{index}][price]",
            )
    sub["status"] = "trialing"
    sub["trial_start"] = start
    sub["trial_end"] = end
    req.store.put(SUBSCRIPTION, sub)


def retrieve(req: Request) -> JSON:
    return req.store.get(SUBSCRIPTION, req.path_params["id"])


def _update_items(req: Request, sub: JSON, entries: list[JSON], now: int) -> None:
    by_id = {item["id"]: item for item in sub["items"]["data"]}
    items = list(sub["items"]["data"])
    for index, entry in enumerate(entries):
        where = f"items[{index}]"
        if entry.get("price_data") is not None:
            raise invalid(
                "The emulator does not support price_data; create the price first.",
                param=f"{where}[price_data]",
            )
        item_id = entry.get("id")
        if item_id is None:
            price = _check_one(req, entry, where)
            items.append(new_item(req, sub, entry, price, param=where, now=now))
            continue
        item = by_id.get(str(item_id))
        if item is None:
            raise no_such("subscription_item", str(item_id), param=f"{where}[id]", status=400)
        if entry.get("deleted"):
            items = [i for i in items if i["id"] != item["id"]]
            continue
        price_id = entry.get("price") or entry.get("plan") or item["price"]
        # An item that keeps its price keeps it even once the price is archived.
        price = check_attachable(
            req, price_id, f"{where}[price]", allow_inactive=str(price_id) == item["price"]
        )
        if is_metered(price):
            if entry.get("quantity") is not None:
                raise invalid(
                    "Quantity should not be specified where usage_type is `metered`. Remove "
                    f"quantity from `{where}`.",
                    param=f"{where}[quantity]",
                )
            item.pop("quantity", None)
        else:
            quantity = entry.get("quantity")
            item["quantity"] = int(quantity) if quantity is not None else item.get("quantity", 1)
        item["price"] = price["id"]
        if "tax_rates" in entry:
            item["tax_rates"] = tax_rate_objects(req, entry["tax_rates"], f"{where}[tax_rates]")
        if "metadata" in entry:
            item["metadata"] = apply_metadata(item["metadata"], entry["metadata"])
    if not items:
        raise invalid("A subscription must have at least one active item.", param="items")
    _check_specs_existing(req, items)
    sub["items"]["data"] = items
    sub["items"]["total_count"] = len(items)


def _check_specs_existing(req: Request, items: list[JSON]) -> None:
    """Cycle and currency checks over the resulting items (prices already checked)."""
    prices = [req.store.get(PRICE, str(item["price"])) for item in items]
    first = prices[0]
    seen: set[str] = set()
    for index, price in enumerate(prices):
        if price["id"] in seen:
            raise invalid(
                f"Cannot add multiple subscription items with the same price: {price['id']}.",
                param=f"items[{index}][price]",
            )
        seen.add(price["id"])
        if price["currency"] != first["currency"] or (
            price["recurring"]["interval"],
            price["recurring"]["interval_count"],
        ) != (first["recurring"]["interval"], first["recurring"]["interval_count"]):
            raise invalid(
                "Currency and interval fields must match across all plans on this subscription.",
                param="items",
            )


def update(req: Request) -> JSON:
    sub = req.store.get(SUBSCRIPTION, req.path_params["id"])
    saved = copy.deepcopy(sub)
    params = req.params
    _refuse_unsupported(params, _UPDATE_NOT_EMULATED)
    anchor = params.get("billing_cycle_anchor")
    if (anchor.get("type") if isinstance(anchor, dict) else anchor) not in (None, "unchanged"):
        raise invalid(
            "The emulator does not support billing_cycle_anchor=now on an update (not emulated: "
            "a new billing cycle starting at once); leave it unchanged.",
            param="billing_cycle_anchor",
        )
    if sub["status"] in _ENDED:
        allowed = {"metadata", "cancellation_details", "expand"}
        extra = sorted(set(params) - allowed)
        if extra:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                param=extra[0],
            )
    if sub["status"] == "incomplete":
        # "A subscription in this status can only have metadata and default_source
        # updated" (the subscription object's status; sources are not emulated).
        extra = sorted(set(params) - {"metadata", "expand"})
        if extra:
            raise invalid(
                "An incomplete subscription can only update its metadata and default_source "
                "until its first invoice is paid.",
                param=extra[0],
            )
    now = customer_now(req, sub["customer"])
    if params.get("items") is not None:
        _update_items(req, sub, list(params["items"]), now)
    if "metadata" in params:
        sub["metadata"] = apply_metadata(sub["metadata"], params["metadata"])
    if "default_tax_rates" in params:
        sub["default_tax_rates"] = tax_rate_objects(
            req, params["default_tax_rates"], "default_tax_rates"
        )
    if "discounts" in params:
        sub["discounts"] = make_discounts(
            req,
            params["discounts"],
            customer=sub["customer"],
            subscription=sub["id"],
            start=now,
            param="discounts",
            keep=sub["discounts"],
        )
    for name in ("collection_method", "description", "days_until_due"):
        if name in params:
            sub[name] = params[name] if params[name] is not None else sub[name]
    behavior = params.get("payment_behavior")
    if behavior == "pending_if_incomplete":
        raise invalid(
            "The emulator does not support payment_behavior=pending_if_incomplete (pending "
            "updates are not emulated).",
            param="payment_behavior",
        )
    if "default_payment_method" in params:
        pm_id = params["default_payment_method"]
        if pm_id is not None:
            customer_payment_method(req, str(pm_id), sub["customer"], "default_payment_method")
        sub["default_payment_method"] = pm_id
    if "pause_collection" in params:
        value = params["pause_collection"]
        sub["pause_collection"] = _pause_collection(value) if value is not None else None
    if "cancel_at" in params:
        _set_cancel_at(req, sub, params["cancel_at"], params.get("proration_behavior"), now)
    if "cancel_at_period_end" in params:
        if sub.get("schedule") and params["cancel_at_period_end"]:
            raise invalid(
                f"The subscription is managed by the subscription schedule `{sub['schedule']}`, "
                "and updating any cancelation behavior directly is not allowed. Please update "
                "the schedule instead.",
                param="cancel_at_period_end",
            )
        sub["cancel_at_period_end"] = bool(params["cancel_at_period_end"])
        sub["cancel_at"] = sub["current_period_end"] if sub["cancel_at_period_end"] else None
    if params.get("cancellation_details") is not None:
        sub["cancellation_details"].update(params["cancellation_details"])
    req.store.put(SUBSCRIPTION, sub)
    if sub["status"] not in _ENDED:
        items_changed(req, sub, saved, params, now)
    emit(req, "customer.subscription.updated", sub)
    return sub


def items_changed(req: Request, sub: JSON, saved: JSON, params: JSON, now: int) -> None:
    """Prorate what changed since ``saved`` (hooked by the prorations module)."""
    for hook in req.registry.hooks("subscription.items_changed"):
        hook(req, sub, saved, params, now)


def is_boundary(req: Request, sub: JSON, moment: int) -> bool:
    """Whether ``moment`` is one of the subscription's billing period boundaries."""
    interval, count = interval_of(req, sub)
    return next_boundary(int(sub["billing_cycle_anchor"]), interval, count, moment - 1) == moment


def _set_cancel_at(req: Request, sub: JSON, value: Any, proration: Any, now: int) -> None:
    """``cancel_at``: a time (or ``max_period_end`` / ``min_period_end``: the period's end,
    which every item shares here) at which the subscription cancels; ``""`` clears it.

    docs.stripe.com/api/subscriptions/update#update_subscription-cancel_at: "If set
    to a date before the current period ends, this will cause a proration if
    prorations have been enabled using proration_behavior". Such a proration is not
    emulated: a ``cancel_at`` inside a period needs ``proration_behavior=none``.
    """
    if value is None:
        sub["cancel_at"] = None
        sub["cancel_at_period_end"] = False
        return
    if sub.get("schedule"):
        raise invalid(
            f"The subscription is managed by the subscription schedule `{sub['schedule']}`, "
            "and updating any cancelation behavior directly is not allowed. Please update "
            "the schedule instead.",
            param="cancel_at",
        )
    if value == "max_billed_until":
        raise invalid(
            "The emulator does not support cancel_at=max_billed_until (not emulated).",
            param="cancel_at",
        )
    moment = (
        int(sub["current_period_end"])
        if value in ("max_period_end", "min_period_end")
        else int(value)
    )
    if moment <= now:
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.", param="cancel_at"
        )
    if not is_boundary(req, sub, moment) and proration != "none":
        raise invalid(
            "The emulator does not support a cancel_at inside a billing period with prorations "
            "(not emulated: the credit for the unused time); pass proration_behavior=none or "
            "a period end.",
            param="cancel_at",
        )
    sub["cancel_at"] = moment
    sub["cancel_at_period_end"] = False


def cancel_subscription(req: Request, sub: JSON, when: int, reason: str) -> None:
    """Cancel now; cancels an attached active schedule and stops the automatic collection
    of the customer's finalized invoices (docs.stripe.com/api/subscriptions/cancel: "By
    default, upon subscription cancellation, Stripe stops automatic collection of all
    finalized invoices for the customer")."""
    for invoice in req.store.values(INVOICE):
        mine = invoice["customer"] == sub["customer"] and invoice["status"] == "open"
        if mine and (invoice.get("auto_advance") or invoice.get("next_payment_attempt")):
            invoice["auto_advance"] = False
            invoice["next_payment_attempt"] = None
            req.store.put(INVOICE, invoice)
    sub["status"] = "canceled"
    sub["canceled_at"] = when
    sub["ended_at"] = when
    sub["cancel_at_period_end"] = False
    sub["cancellation_details"]["reason"] = reason
    schedule_id = sub.get("schedule")
    if schedule_id:
        schedule = req.store.find(SCHEDULE, str(schedule_id))
        if schedule is not None and schedule["status"] in ("active", "not_started"):
            schedule["status"] = "canceled"
            schedule["canceled_at"] = when
            schedule["current_phase"] = None
            req.store.put(SCHEDULE, schedule)
            emit(req, "subscription_schedule.canceled", schedule)
    req.store.put(SUBSCRIPTION, sub)
    emit(req, "customer.subscription.deleted", sub)


def cancel(req: Request) -> JSON:
    sub = req.store.get(SUBSCRIPTION, req.path_params["id"])
    if sub["status"] in _ENDED:
        raise invalid(f"A canceled subscription can't be canceled again: {sub['id']}.", param="id")
    now = customer_now(req, sub["customer"])
    for hook in req.registry.hooks("subscription.cancelling"):
        hook(req, sub, req.params, now)
    details = req.params.get("cancellation_details") or {}
    for name in ("comment", "feedback"):
        if details.get(name) is not None:
            sub["cancellation_details"][name] = details[name]
    cancel_subscription(req, sub, now, "cancellation_requested")
    return sub


def list_(req: Request) -> JSON:
    params = req.params
    status = params.get("status")
    price_filter = params.get("price") or params.get("plan")

    def wanted(sub: JSON) -> bool:
        if status is None and sub["status"] in _ENDED:
            return False
        if status == "ended" and sub["status"] not in _ENDED:
            return False
        if status not in (None, "all", "ended") and sub["status"] != status:
            return False
        if params.get("customer") and sub["customer"] != params["customer"]:
            return False
        if params.get("test_clock") and sub["test_clock"] != params["test_clock"]:
            return False
        if params.get("collection_method") and (
            sub["collection_method"] != params["collection_method"]
        ):
            return False
        if price_filter and all(str(i["price"]) != price_filter for i in sub["items"]["data"]):
            return False
        return (
            matches_created(sub, params.get("created"))
            and matches_created(sub, params.get("current_period_start"), "current_period_start")
            and matches_created(sub, params.get("current_period_end"), "current_period_end")
        )

    items = [sub for sub in req.store.newest_first(SUBSCRIPTION) if wanted(sub)]
    return paginate(req, items, "/v1/subscriptions", label="subscription")


def list_items(req: Request) -> JSON:
    sub_id = str(req.params["subscription"])
    sub = req.store.get(SUBSCRIPTION, sub_id, param="subscription", status=400)
    return paginate(
        req,
        list(sub["items"]["data"]),
        f"/v1/subscription_items?subscription={sub_id}",
        label="subscription_item",
    )


def retrieve_item(req: Request) -> JSON:
    return find_item(req, req.path_params["id"])[1]


def path_subscription(req: Request) -> str | None:
    """The subscription named in the path (what :func:`.subscription_limits.limited` counts)."""
    return req.path_params.get("id")


def _no_target(req: Request) -> None:
    """A create acts on no existing subscription."""
    return None


def _transform(obj: JSON, version: str) -> None:
    if version_at_least(version, BASIL):
        obj.pop("current_period_start", None)
        obj.pop("current_period_end", None)


def _delete_clock_subscriptions(req: Request, clock: JSON) -> None:
    """A deleted test clock takes its customers' subscriptions, schedules and invoices along."""
    customers = {c["id"] for c in req.store.values(CUSTOMER) if c.get("test_clock") == clock["id"]}
    for kind in (SUBSCRIPTION, SCHEDULE, INVOICE, DISCOUNT):
        for obj in req.store.values(kind):
            if obj.get("customer") in customers:
                req.store.delete(kind, obj["id"])


def register(registry: Registry) -> None:
    registry.object_type(
        ObjectType(
            "subscription",
            expandable={
                "customer": CUSTOMER,
                "default_payment_method": PAYMENT_METHOD,
                "discounts": DISCOUNT,
                "schedule": SCHEDULE,
                "latest_invoice": INVOICE,
                "test_clock": TEST_CLOCK,
            },
            nested=frozenset({"items"}),
            transform=_transform,
        )
    )
    registry.object_type(
        ObjectType("subscription_item", embedded={"price": PRICE}, complete=item_plan)
    )
    registry.route(
        "POST", "/v1/subscriptions", limited(create, _no_target), params="SubscriptionCreateParams"
    )
    registry.route("GET", "/v1/subscriptions", list_, params="SubscriptionListParams")
    registry.route("GET", "/v1/subscriptions/{id}", retrieve, params="SubscriptionRetrieveParams")
    registry.route(
        "POST",
        "/v1/subscriptions/{id}",
        limited(update, path_subscription),
        params="SubscriptionUpdateParams",
    )
    registry.route(
        "DELETE",
        "/v1/subscriptions/{id}",
        limited(cancel, path_subscription),
        params="SubscriptionCancelParams",
    )
    registry.route("GET", "/v1/subscription_items", list_items, params="SubscriptionItemListParams")
    registry.route(
        "GET",
        "/v1/subscription_items/{id}",
        retrieve_item,
        params="SubscriptionItemRetrieveParams",
    )
    registry.add_hook("test_clock.delete", _delete_clock_subscriptions)
