"""Invoice previews: ``POST /v1/invoices/create_preview`` (and ``GET /v1/invoices/upcoming``).

After docs.stripe.com/api/invoices/create_preview: "At any time, you can preview
the upcoming invoice for a subscription or subscription schedule [...] You can
also preview the effects of creating or updating a subscription or subscription
schedule, including a preview of any prorations", and "the invoice has not yet
been created. As such, the upcoming invoice will not show up in invoice listing
calls".

How the emulator answers: it copies its state (:meth:`.Store.snapshot`), runs
its own billing machinery on the copy, and throws the copy away. The change the
request describes is applied there with the very handlers a real request uses
(``subscription_details`` with ``subscription``: the subscription update;
``subscription_details.items`` alone: the subscription create; ``schedule_details``
with ``schedule``: the schedule update; ``schedule_details.phases`` alone: the
schedule create), then the copy's test clock (a private one when the customer
has none) is moved to the subscription's period end (to a ``not_started``
schedule's start), exactly as a test clock advance would. The first invoice the
subscription gets on the way is the preview: its lines, discounts and taxes are
built by :func:`.invoices.issue_invoice`, the arithmetic of every real invoice.
So the preview is the invoice the emulator produces when the change is made and
the clock crosses the period end (prorations pending with
``create_prorations``, the invoice issued at once with ``always_invoice``, the
renewal after a schedule's phase switch). Nothing is stored, no event is
recorded, no clock moves.

Metered items bill the usage recorded so far in the period: meter events with
``period start <= timestamp < period end`` (legacy prices: their usage
records), as the period-end invoice would. Stripe: "Stripe processes meter
events asynchronously, so aggregated usage in meter event summaries and on
upcoming invoices might not immediately reflect recently received meter events"
(docs.stripe.com/billing/subscriptions/usage-based/recording-usage).

The answer is an Invoice: ``id`` ``upcoming_in_...`` ("For preview invoices
created using the create preview endpoint, this id will be prefixed with
``upcoming_in``": the invoice object reference), ``status`` ``draft``,
``billing_reason`` ``upcoming`` ("Reserved for upcoming invoices created through
the Create Preview Invoice API": the SDK 16 ``Invoice``), line ids ``il_tmp_...``
(Stripe's example of upcoming lines), and ``parent.subscription_details.
subscription_proration_date`` set when the preview holds prorations ("Only set for
upcoming invoices that preview prorations"). Every line is in ``lines`` (``has_more``
false). UNCONFIRMED (no document states it): ``created``, ``period_start`` and
``period_end`` are those of the invoice the machinery would issue (the renewal's
period end), and a previewed new subscription is named by an id that does not exist.

Refused as Stripe does (wording UNCONFIRMED unless quoted):

- none of ``subscription``, ``schedule``, ``subscription_details.items``,
  ``schedule_details.phases``: "You must provide at least one of: ..." (Stripe's
  message, quoted in github.com/stripe/stripe-node/issues/2347); before basil a
  ``customer`` alone previews the customer's subscription that invoices first
  (docs.stripe.com/changelog/basil/2025-03-31/invoice-preview-api-deprecations:
  "you can no longer preview the next invoice for a customer across all their
  subscriptions");
- ``schedule``/``schedule_details`` with ``subscription``/``subscription_details``
  ("Cannot be used with ``subscription`` or ``subscription_`` prefixed fields");
- ``subscription_details.proration_date`` without ``subscription`` and items, or
  with ``proration_behavior=none`` (the parameter's reference);
- unknown customers, subscriptions, schedules, prices, tax rates: ``No such ...``
  with the parameter named under ``subscription_details[...]`` /
  ``schedule_details[...]``;
- no invoice coming (a canceled subscription, one cancelling at its period end
  with nothing to bill): ``invoice_upcoming_none`` "No upcoming invoices for
  customer: cus_..." (github.com/stripe/stripe-java/issues/920);
- since basil, a subscription or schedule holding a legacy meter-less metered price
  ("existing legacy prices can no longer be attached to quotes, upcoming invoices
  or subscriptions"): send the preview pinned to ``2025-02-24.acacia``.

Not emulated, refused: ``invoice_items``, ``discounts``, ``customer_details``,
``customer_account``, ``currency``, ``issuer``, ``on_behalf_of``, automatic tax,
``preview_mode=recurring``; in ``subscription_details``: ``billing_cycle_anchor``
``now`` (a ``timestamp`` only for a new subscription), ``cancel_now``, ``pause``,
``resume_at``, ``trial_end``, ``start_date``, ``billing_mode``,
``billing_schedules``, item ``price_data``, ``discounts``, ``billing_thresholds``,
``current_trial``; in ``schedule_details``: ``billing_mode``, ``pause_schedules``,
a change of the current phase's licensed items unless ``proration_behavior=none``
(the emulator's schedule update does not prorate), and phases with invoice items,
automatic tax, billing thresholds, trials or ``billing_cycle_anchor=phase_start``.

``GET /v1/invoices/upcoming`` (and ``/lines``) exist up to ``2025-02-24.acacia``
(basil removed them: "We're removing the GET /v1/invoices/upcoming API in favor
of the Create Preview Invoice API"): the same preview with no ``id``, taking both
``subscription_details`` and the older flat ``subscription_items``,
``subscription_proration_behavior``, ``subscription_proration_date``,
``subscription_default_tax_rates``, ``subscription_cancel_at_period_end``,
``subscription_cancel_at``. From basil on they answer 404 like an unknown URL
(UNCONFIRMED wording).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from reconciler.emulator.errors import ApiError, invalid, missing_param
from reconciler.emulator.events import EVENT_LOG
from reconciler.emulator.params import ObjectNode, ScalarNode, UnionNode
from reconciler.emulator.render import paginate
from reconciler.emulator.resources import schedules as schedule_handlers
from reconciler.emulator.resources import subscriptions as subscription_handlers
from reconciler.emulator.resources.billing import (
    CUSTOMER,
    SCHEDULE,
    SUBSCRIPTION,
    TEST_CLOCK,
    customer_now,
    is_legacy_metered,
)
from reconciler.emulator.resources.catalog import PRICE
from reconciler.emulator.resources.invoices import CAPTURE
from reconciler.emulator.resources.prorations import items_state
from reconciler.emulator.resources.subscriptions import RUNNING
from reconciler.emulator.router import Registry, Request
from reconciler.emulator.store import JSON, Store
from reconciler.emulator.versions import BASIL, LAST_LEGACY_USAGE_VERSION, version_at_least

__all__ = ["NEED_ONE", "create_preview", "register", "upcoming"]

#: Stripe's refusal of a preview naming nothing to preview (stripe-node issue 2347).
NEED_ONE = (
    "You must provide at least one of: `subscription`, `schedule`, "
    "`subscription_details.items`, `schedule_details.phases`, `invoice_items`."
)
#: Kinds the throw-away copy leaves out: bookkeeping no billing step reads.
_SKIPPED_KINDS = (EVENT_LOG, "_idempotency", "_meter_event_session", "_meter_event_identifier")
_PRIVATE_CLOCK = "clock_preview"
_NOT_EMULATED = (
    "invoice_items",
    "discounts",
    "customer_details",
    "customer_account",
    "currency",
    "issuer",
    "on_behalf_of",
)
_NOT_EMULATED_SUBSCRIPTION = (
    "billing_mode",
    "billing_schedules",
    "cancel_now",
    "pause",
    "resume_at",
    "start_date",
    "trial_end",
)
_NOT_EMULATED_ITEM = ("price_data", "discounts", "billing_thresholds", "current_trial")
_NOT_EMULATED_SCHEDULE = ("billing_mode", "pause_schedules")
_NOT_EMULATED_PHASE = ("add_invoice_items", "billing_thresholds", "trial")
_PASSED_TO_UPDATE = (
    "proration_behavior",
    "proration_date",
    "default_tax_rates",
    "metadata",
    "cancel_at",
    "cancel_at_period_end",
)
#: The flat parameters ``GET /v1/invoices/upcoming`` took, and their
#: ``subscription_details`` names.
_FLAT = {
    "subscription_items": "items",
    "subscription_proration_behavior": "proration_behavior",
    "subscription_proration_date": "proration_date",
    "subscription_default_tax_rates": "default_tax_rates",
    "subscription_cancel_at_period_end": "cancel_at_period_end",
    "subscription_cancel_at": "cancel_at",
    "subscription_billing_cycle_anchor": "billing_cycle_anchor",
    "subscription_trial_end": "trial_end",
    "subscription_cancel_now": "cancel_now",
    "subscription_start_date": "start_date",
    "subscription_resume_at": "resume_at",
}


def _not_emulated(name: str, what: str = "") -> ApiError:
    return invalid(
        f"The emulator does not support `{name}` in invoice previews (not emulated{what}).",
        param=name,
    )


def _prefixed(exc: ApiError, prefix: str) -> ApiError:
    """``items[0][price]`` -> ``subscription_details[items][0][price]``."""
    if exc.param and not exc.param.startswith(prefix):
        head, bracket, rest = exc.param.partition("[")
        exc.param = f"{prefix}[{head}]" + (bracket + rest if bracket else "")
    return exc


# --- checks ---------------------------------------------------------------------------


def _refuse_unsupported(params: JSON) -> None:
    for name in _NOT_EMULATED:
        if params.get(name) is not None:
            raise _not_emulated(name)
    tax = params.get("automatic_tax")
    if isinstance(tax, dict) and tax.get("enabled"):
        raise _not_emulated("automatic_tax", ": only tax rates are emulated")
    if params.get("preview_mode") not in (None, "next"):
        raise _not_emulated("preview_mode", ": only the next invoice is previewed")
    details = params.get("subscription_details") or {}
    for name in _NOT_EMULATED_SUBSCRIPTION:
        if details.get(name) not in (None, False):
            raise _not_emulated(f"subscription_details[{name}]")
    for index, item in enumerate(details.get("items") or []):
        for name in _NOT_EMULATED_ITEM:
            if item.get(name) is not None:
                raise _not_emulated(f"subscription_details[items][{index}][{name}]")
    schedule = params.get("schedule_details") or {}
    for name in _NOT_EMULATED_SCHEDULE:
        if schedule.get(name) is not None:
            raise _not_emulated(f"schedule_details[{name}]")
    for index, phase in enumerate(schedule.get("phases") or []):
        where = f"schedule_details[phases][{index}]"
        for name in _NOT_EMULATED_PHASE:
            if phase.get(name):
                raise _not_emulated(f"{where}[{name}]")
        phase_tax = phase.get("automatic_tax")
        if isinstance(phase_tax, dict) and phase_tax.get("enabled"):
            raise _not_emulated(f"{where}[automatic_tax]", ": only tax rates are emulated")
        if phase.get("billing_cycle_anchor") not in (None, "automatic"):
            raise _not_emulated(f"{where}[billing_cycle_anchor]")
        for j, item in enumerate(phase.get("items") or []):
            for name in ("price_data", "discounts", "billing_thresholds"):
                if item.get(name) is not None:
                    raise _not_emulated(f"{where}[items][{j}][{name}]")


def _refuse_legacy(req: Request, price_ids: list[str], param: str) -> None:
    """Since basil a legacy meter-less price cannot be on an upcoming invoice."""
    if req.legacy_usage_billing:
        return
    for price_id in price_ids:
        price = req.store.find(PRICE, price_id)
        if price is not None and is_legacy_metered(price):
            raise invalid(
                f"The price {price_id} is a legacy metered price without a meter (usage "
                f"records). Since API version {BASIL} such prices can no longer be attached to "
                "subscriptions, schedules, quotes or upcoming invoices: preview with "
                f"Stripe-Version {LAST_LEGACY_USAGE_VERSION}.",
                param=param,
            )


def _anchor(details: JSON, *, new: bool) -> int | None:
    """``billing_cycle_anchor``: ``unchanged`` (nothing), a ``timestamp`` for a new
    subscription; ``now`` (a new period at once) is not emulated."""
    anchor = details.get("billing_cycle_anchor")
    if anchor is None:
        return None
    kind = anchor.get("type") if isinstance(anchor, dict) else anchor
    where = "subscription_details[billing_cycle_anchor]"
    if kind == "unchanged":
        return None
    if kind == "now":
        raise _not_emulated(where, ": resetting the billing cycle")
    moment = anchor.get("timestamp") if isinstance(anchor, dict) else anchor
    if not new:
        raise invalid(
            "For existing subscriptions, billing_cycle_anchor can only be set to now or unchanged.",
            param=where,
        )
    if moment is None:
        raise missing_param(f"{where}[timestamp]")
    return int(moment)


# --- the throw-away copy ----------------------------------------------------------------


def _box(req: Request, customer_id: str, captured: list[JSON]) -> Request:
    """A request on a copy of the store; the customer gets a private test clock if it
    has none (so the copy's time can move without the emulator clock)."""
    store: Store = req.store.snapshot(skip=_SKIPPED_KINDS)
    box = dataclasses.replace(req, store=store, context={CAPTURE: captured}, path_params={})
    customer = store.get(CUSTOMER, customer_id, param="customer", status=400)
    clock_id = customer.get("test_clock")
    if not clock_id or store.find(TEST_CLOCK, str(clock_id)) is None:
        clock = {
            "id": _PRIVATE_CLOCK,
            "object": "test_helpers.test_clock",
            "frozen_time": req.now(),
            "status": "ready",
        }
        store.put(TEST_CLOCK, clock)
        customer["test_clock"] = _PRIVATE_CLOCK
    return box


def _call(
    box: Request, handler: Callable[[Request], Any], params: JSON, prefix: str, **path: str
) -> Any:
    box.params = params
    box.path_params = dict(path)
    try:
        return handler(box)
    except ApiError as exc:
        raise _prefixed(exc, prefix) from None


def _advance(box: Request, customer_id: str, horizon: int) -> None:
    """Move the copy's clock to ``horizon`` as a test clock advance would."""
    customer = box.store.get(CUSTOMER, customer_id)
    clock = box.store.get(TEST_CLOCK, str(customer["test_clock"]))
    old = int(clock["frozen_time"])
    if horizon <= old:
        return
    for hook in box.registry.hooks("test_clock.advance"):
        hook(box, clock, old, horizon)
    clock["frozen_time"] = horizon


# --- the preview ------------------------------------------------------------------------


@dataclasses.dataclass
class _Target:
    """What is previewed: a subscription (by id) or a schedule's subscription."""

    customer: str
    subscription: str | None = None
    schedule: str | None = None

    def subscription_id(self, box: Request) -> str | None:
        if self.schedule is None:
            return self.subscription
        schedule = box.store.find(SCHEDULE, self.schedule)
        found = schedule.get("subscription") if schedule else None
        return str(found) if found else None

    def horizon(self, box: Request) -> int | None:
        """When the next invoice is due: the period end of a running subscription,
        the start of a schedule that has not started."""
        sub_id = self.subscription_id(box)
        sub = box.store.find(SUBSCRIPTION, sub_id) if sub_id else None
        if sub is not None:
            return int(sub["current_period_end"]) if sub["status"] in RUNNING else None
        schedule = box.store.find(SCHEDULE, self.schedule) if self.schedule else None
        if schedule is not None and schedule["status"] == "not_started":
            return int(schedule["phases"][0]["start_date"])
        return None


def _first_for(captured: list[JSON], sub_id: str | None) -> JSON | None:
    return next((i for i in captured if sub_id and i["subscription"] == sub_id), None)


def _customer_subscription(req: Request, customer_id: str) -> str | None:
    """Before basil: the customer's running subscription that invoices first."""
    running = [
        sub
        for sub in req.store.values(SUBSCRIPTION)
        if sub["customer"] == customer_id and sub["status"] in RUNNING
    ]
    running.sort(key=lambda sub: int(sub["current_period_end"]))
    return str(running[0]["id"]) if running else None


def _no_upcoming(customer_id: str) -> ApiError:
    return invalid(
        f"No upcoming invoices for customer: {customer_id}", code="invoice_upcoming_none"
    )


def _update_params(details: JSON) -> JSON:
    params = {name: details[name] for name in _PASSED_TO_UPDATE if name in details}
    if details.get("items") is not None:
        params["items"] = [dict(item) for item in details["items"]]
    return params


def _check_proration_date(details: JSON, sub_id: str | None) -> None:
    if details.get("proration_date") is None:
        return
    where = "subscription_details[proration_date]"
    if sub_id is None or not details.get("items"):
        raise invalid(
            "subscription_details[proration_date] requires `subscription` and "
            "subscription_details[items].",
            param=where,
        )
    if details.get("proration_behavior") == "none":
        raise invalid(
            "subscription_details[proration_date] cannot be used with "
            "subscription_details[proration_behavior]=none.",
            param=where,
        )


def _preview_subscription(req: Request, box: Request, sub: JSON, details: JSON | None) -> _Target:
    _refuse_legacy(req, [str(item["price"]) for item in sub["items"]["data"]], "subscription")
    if details:
        _anchor(details, new=False)
        _call(
            box,
            subscription_handlers.update,
            _update_params(details),
            "subscription_details",
            id=str(sub["id"]),
        )
    return _Target(customer=str(sub["customer"]), subscription=str(sub["id"]))


def _preview_new_subscription(box: Request, customer_id: str, details: JSON) -> _Target:
    for index, item in enumerate(details.get("items") or []):
        for name in ("id", "deleted", "clear_usage"):
            if item.get(name) is not None:
                raise invalid(
                    f"subscription_details[items][{index}][{name}] only applies to an existing "
                    "subscription: pass `subscription`.",
                    param=f"subscription_details[items][{index}][{name}]",
                )
    if details.get("cancel_at_period_end"):
        raise _not_emulated("subscription_details[cancel_at_period_end]", ": on a new subscription")
    params: JSON = {
        "customer": customer_id,
        "items": [dict(item) for item in details["items"]],
    }
    for name in ("default_tax_rates", "metadata", "cancel_at", "proration_behavior"):
        if name in details:
            params[name] = details[name]
    anchor = _anchor(details, new=True)
    if anchor is not None:
        params["billing_cycle_anchor"] = anchor
    created = _call(box, subscription_handlers.create, params, "subscription_details")
    return _Target(customer=customer_id, subscription=str(created["id"]))


def _schedule_params(details: JSON) -> JSON:
    params: JSON = {}
    if details.get("phases"):
        params["phases"] = [dict(phase) for phase in details["phases"]]
    if details.get("end_behavior") is not None:
        params["end_behavior"] = details["end_behavior"]
    return params


def _preview_schedule(req: Request, box: Request, schedule: JSON, details: JSON | None) -> _Target:
    sub_id = schedule.get("subscription")
    sub = req.store.find(SUBSCRIPTION, str(sub_id)) if sub_id else None
    prices = [str(item["price"]) for phase in schedule["phases"] for item in phase["items"]]
    if sub is not None:
        prices += [str(item["price"]) for item in sub["items"]["data"]]
    _refuse_legacy(req, prices, "schedule")
    target = _Target(customer=str(schedule["customer"]), schedule=str(schedule["id"]))
    if details and (details.get("phases") or details.get("end_behavior")):
        box_sub = box.store.find(SUBSCRIPTION, str(sub_id)) if sub_id else None
        before = items_state(box, box_sub) if box_sub is not None else {}
        _call(
            box,
            schedule_handlers.update,
            _schedule_params(details),
            "schedule_details",
            id=str(schedule["id"]),
        )
        after = items_state(box, box_sub) if box_sub is not None else {}
        behavior = details.get("proration_behavior") or "create_prorations"
        prorating = box_sub is not None and box_sub["status"] in ("active", "past_due", "unpaid")
        if before != after and behavior != "none" and prorating:
            raise _not_emulated(
                "schedule_details[proration_behavior]",
                ": prorating a change of the current phase's items; pass "
                "schedule_details[proration_behavior]=none",
            )
    return target


def _preview_new_schedule(box: Request, customer_id: str, details: JSON) -> _Target:
    params = _schedule_params(details)
    params["customer"] = customer_id
    start = params["phases"][0].get("start_date")
    if start is not None:
        params["start_date"] = start
    created = _call(box, schedule_handlers.create, params, "schedule_details")
    return _Target(customer=customer_id, schedule=str(created["id"]))


def preview_invoice(req: Request, params: JSON, *, legacy_endpoint: bool = False) -> JSON:
    """The preview invoice for ``params`` (create_preview's parameters)."""
    _refuse_unsupported(params)
    sub_id = params.get("subscription")
    schedule_id = params.get("schedule")
    details = params.get("subscription_details")
    schedule_details = params.get("schedule_details")
    if (sub_id or details is not None) and (schedule_id or schedule_details is not None):
        raise invalid(
            "`schedule` and `schedule_details` cannot be used with `subscription` or "
            "`subscription_details`.",
            param="schedule" if schedule_id else "schedule_details",
        )
    items = (details or {}).get("items")
    phases = (schedule_details or {}).get("phases")
    customer_id = params.get("customer")
    customer = (
        req.store.get(CUSTOMER, str(customer_id), param="customer", status=400)
        if customer_id
        else None
    )
    _check_proration_date(details or {}, sub_id)
    if not (sub_id or schedule_id or items or phases):
        legacy_wide = customer is not None and not version_at_least(req.api_version, BASIL)
        if not legacy_wide:
            raise invalid(NEED_ONE)
        assert customer is not None
        sub_id = _customer_subscription(req, str(customer["id"]))
        if sub_id is None:
            raise _no_upcoming(str(customer["id"]))
    sub = (
        req.store.get(SUBSCRIPTION, str(sub_id), param="subscription", status=400)
        if sub_id
        else None
    )
    schedule = (
        req.store.get(
            SCHEDULE, str(schedule_id), label="subscription_schedule", param="schedule", status=400
        )
        if schedule_id
        else None
    )
    owner = (sub or schedule or {}).get("customer")
    if customer is not None and owner is not None and owner != customer["id"]:
        raise invalid(
            f"The {'subscription' if sub else 'subscription schedule'} does not belong to "
            f"customer {customer['id']}.",
            param="customer",
        )
    customer_of = str(owner or (customer or {}).get("id") or "")
    if not customer_of:
        raise missing_param("customer")
    captured: list[JSON] = []
    box = _box(req, customer_of, captured)
    started = customer_now(box, customer_of)
    if sub is not None:
        target = _preview_subscription(req, box, sub, details)
    elif schedule is not None:
        target = _preview_schedule(req, box, schedule, schedule_details)
    elif items:
        target = _preview_new_subscription(box, customer_of, details or {})
    else:
        target = _preview_new_schedule(box, customer_of, schedule_details or {})
    # Resolved before the clock moves: a schedule released at its end forgets its subscription.
    previewed = target.subscription_id(box)
    invoice = _first_for(captured, previewed)
    if invoice is None:
        horizon = target.horizon(box)
        if horizon is not None:
            _advance(box, customer_of, horizon)
            invoice = _first_for(captured, previewed or target.subscription_id(box))
    if invoice is None:
        raise _no_upcoming(customer_of)
    proration_date = (details or {}).get("proration_date")
    if proration_date is None and any(line["proration"] for line in invoice["lines"]["data"]):
        proration_date = started if sub is not None else None
    return _as_preview(invoice, proration_date, legacy_endpoint=legacy_endpoint)


def _as_preview(invoice: JSON, proration_date: Any, *, legacy_endpoint: bool) -> JSON:
    preview = dict(invoice)
    preview_id = None if legacy_endpoint else "upcoming_" + str(invoice["id"])
    if legacy_endpoint:
        preview.pop("id", None)
    else:
        preview["id"] = preview_id
    for line in preview["lines"]["data"]:
        line["id"] = "il_tmp_" + str(line["id"]).removeprefix("il_")
        line["invoice"] = preview_id
    preview["lines"]["url"] = (
        "/v1/invoices/upcoming/lines" if legacy_endpoint else f"/v1/invoices/{preview_id}/lines"
    )
    preview["billing_reason"] = "upcoming"
    preview["status"] = "draft"
    preview["automatically_finalizes_at"] = None
    preview["next_payment_attempt"] = None
    details = (preview.get("parent") or {}).get("subscription_details")
    if details is not None:
        details["subscription_proration_date"] = (
            int(proration_date) if proration_date is not None else None
        )
    return preview


# --- endpoints ----------------------------------------------------------------------------


def create_preview(req: Request) -> JSON:
    return preview_invoice(req, req.params)


def _removed(req: Request) -> None:
    if version_at_least(req.api_version, BASIL):
        raise ApiError(
            404,
            f"Unrecognized request URL ({req.method}: {req.path}). The upcoming invoice API "
            f"was removed in API version {BASIL}: use POST /v1/invoices/create_preview.",
            store_idempotent=False,
        )


def _details_from_flat(params: JSON) -> JSON:
    """The older flat ``subscription_*`` parameters as ``subscription_details``."""
    flat = {name: params[name] for name in _FLAT if name in params}
    if not flat:
        return params
    if params.get("subscription_details") is not None:
        raise invalid(
            "You cannot use `subscription_details` together with the `subscription_*` parameters.",
            param="subscription_details",
        )
    rest = {name: value for name, value in params.items() if name not in _FLAT}
    details = {_FLAT[name]: value for name, value in flat.items()}
    return {**rest, "subscription_details": details}


def upcoming(req: Request) -> JSON:
    """``GET /v1/invoices/upcoming`` (up to acacia)."""
    _removed(req)
    return preview_invoice(req, _details_from_flat(req.params), legacy_endpoint=True)


def upcoming_lines(req: Request) -> JSON:
    """``GET /v1/invoices/upcoming/lines`` (up to acacia): the preview's lines, paged."""
    _removed(req)
    paging = ("limit", "starting_after", "ending_before")
    params = {name: value for name, value in req.params.items() if name not in paging}
    preview = preview_invoice(req, _details_from_flat(params), legacy_endpoint=True)
    return paginate(
        req, list(preview["lines"]["data"]), "/v1/invoices/upcoming/lines", label="line_item"
    )


def _upcoming_params(version: str, schema: ObjectNode) -> ObjectNode:
    """The preview's parameters plus the flat ``subscription_*`` ones of the older API."""
    details = schema.fields["subscription_details"]
    assert isinstance(details, ObjectNode)
    flat: dict[str, Any] = {
        "subscription_items": details.fields["items"],
        "subscription_proration_behavior": details.fields["proration_behavior"],
        "subscription_proration_date": ScalarNode("int"),
        "subscription_default_tax_rates": details.fields["default_tax_rates"],
        "subscription_cancel_at_period_end": ScalarNode("bool"),
        "subscription_cancel_at": details.fields["cancel_at"],
        "subscription_billing_cycle_anchor": UnionNode((ScalarNode("int"), ScalarNode("str"))),
        "subscription_trial_end": details.fields["trial_end"],
        "subscription_cancel_now": ScalarNode("bool"),
        "subscription_start_date": ScalarNode("int"),
        "subscription_resume_at": ScalarNode("str"),
    }
    for name, node in flat.items():
        schema = schema.with_field((), name, node)
    return schema


def _lines_params(version: str, schema: ObjectNode) -> ObjectNode:
    schema = _upcoming_params(version, schema)
    for name in ("limit", "starting_after", "ending_before"):
        schema = schema.with_field((), name, ScalarNode("int" if name == "limit" else "str"))
    return schema


def register(registry: Registry) -> None:
    # Before the invoices module: ``/v1/invoices/{id}`` would take ``upcoming`` for an id.
    registry.route(
        "POST", "/v1/invoices/create_preview", create_preview, params="InvoiceCreatePreviewParams"
    )
    registry.route(
        "GET",
        "/v1/invoices/upcoming",
        upcoming,
        params="InvoiceCreatePreviewParams",
        adjust=_upcoming_params,
    )
    registry.route(
        "GET",
        "/v1/invoices/upcoming/lines",
        upcoming_lines,
        params="InvoiceCreatePreviewParams",
        adjust=_lines_params,
    )
