"""Subscriptions and their schedules as migration planning reads them from Stripe.

:func:`subscription_from_stripe` turns a subscription listed with
``expand[]=data.schedule`` into a :class:`LiveSubscription`: its items, the
settings every phase written for it must restate, its schedule's phases in
update-parameter form (:func:`schedule_from_stripe`) and what those phases set
that a rewrite could not carry. :func:`subscription_evidence` digests what was
read, so a saved plan can tell a subscription that changed since. Pure: the
objects come from ``live.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.invoice_limits import live_charges
from reconciler.model import carries_marker, id_of
from reconciler.plan import fingerprint

__all__ = [
    "LiveSchedule",
    "LiveSubscription",
    "SubscriptionItem",
    "schedule_from_stripe",
    "subscription_evidence",
    "subscription_from_stripe",
]

_PHASE_FIELDS = (
    "collection_method",
    "currency",
    "description",
    "billing_cycle_anchor",
    "trial_end",
)
_PHASE_KEYS_READ = frozenset(
    {
        *_PHASE_FIELDS,
        "application_fee_percent",
        "items",
        "start_date",
        "end_date",
        "discounts",
        "default_tax_rates",
        "metadata",
        "default_payment_method",
        "billing_thresholds",
        "automatic_tax",
        "invoice_settings",
        "on_behalf_of",
        "transfer_data",
        "coupon",  # the deprecated single-coupon view of ``discounts``
    }
)
"""What a schedule phase may hold that :func:`_phase_params` writes back."""
_ITEM_KEYS_READ = frozenset(
    {"price", "plan", "quantity", "tax_rates", "metadata", "billing_thresholds", "discounts"}
)


@dataclass(frozen=True)
class SubscriptionItem:
    """A subscription item as phases need it."""

    price: str
    quantity: int | None = None
    tax_rates: tuple[str, ...] = ()
    metered: bool = False
    period_start: int | None = None
    period_end: int | None = None
    id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    discounts: tuple[Mapping[str, str], ...] = ()
    """The item's own discounts, as phase item parameters."""
    billing_thresholds: Mapping[str, Any] | None = None
    """The item's usage threshold (``usage_gte``), which only a metered price takes."""
    charges: bool = False
    """Licensed, charging above zero up front (see :func:`invoice_limits.live_charges`):
    with one such item the subscription is paid, in Stripe's free/paid sense."""


@dataclass(frozen=True)
class LiveSchedule:
    """A subscription schedule: its phases already in update-parameter form."""

    id: str
    status: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    phases: tuple[Mapping[str, Any], ...] = ()
    current_phase_start: int | None = None
    created: int | None = None
    begun: bool = False
    end_behavior: str = "release"
    """``cancel``: the subscription is canceled when the last phase ends (Stripe shows it
    as the subscription's ``cancel_at``)."""
    uncarried: tuple[str, ...] = ()
    """Settings of its phases that rewriting the phases would drop (see ``_PHASE_KEYS_READ``)."""

    @property
    def ours(self) -> bool:
        return carries_marker(self.metadata)

    @property
    def cancels(self) -> bool:
        return self.end_behavior == "cancel"

    @property
    def ends_at(self) -> int | None:
        """When the last phase ends, if it has an end."""
        end = self.phases[-1].get("end_date") if self.phases else None
        return int(end) if end is not None else None

    @property
    def unfinished(self) -> bool:
        """Created by stripe-reconcile, which a crash stopped before it wrote the phases.

        A schedule made ``from_subscription`` cannot carry metadata, so until the
        second write it is recognised by the account's record of the request that
        created it (``begun``, read from events), never by its looks. It has the one
        phase Stripe made from the subscription: one given more phases since, by
        someone else, is theirs (adopted with those phases, not written over).
        """
        return self.begun and not self.metadata and len(self.phases) <= 1


@dataclass(frozen=True)
class LiveSubscription:
    """A subscription on the legacy price (or already moved), as read."""

    id: str
    customer: str
    status: str
    items: tuple[SubscriptionItem, ...] = ()
    discounts: tuple[Mapping[str, str], ...] = ()
    default_tax_rates: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    collection_method: str | None = None
    schedule: LiveSchedule | None = None
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    trial_end: int | None = None
    billing_mode: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Billing settings carried into every phase written for it, as phase parameters
    (see :func:`_settings_params`)."""
    test_clock: str | None = None

    @functools.cached_property
    def evidence(self) -> str:
        """See :func:`subscription_evidence`; computed once per subscription read."""
        return _evidence_of(self)


def subscription_evidence(sub: LiveSubscription) -> str:
    """A digest of everything read about one subscription (its schedule included).

    A saved plan's rows carry it: a subscription whose status, items, prices or
    schedule changed since the plan shows another digest, and its row is stale.
    """
    return sub.evidence


def _evidence_of(sub: LiveSubscription) -> str:
    """A subscription as read, hashed: the fields as plain values, built by hand because
    planning 20,000 subscriptions is hot."""
    schedule = sub.schedule
    seen = [
        sub.id,
        sub.customer,
        sub.status,
        [
            (
                i.id,
                i.price,
                i.quantity,
                i.tax_rates,
                i.metered,
                i.period_start,
                i.period_end,
                i.metadata,
                *(
                    (i.discounts, i.billing_thresholds)
                    if i.discounts or i.billing_thresholds
                    else ()
                ),
            )
            for i in sub.items
        ],
        sub.discounts,
        sub.default_tax_rates,
        sub.metadata,
        sub.collection_method,
        [sub.cancel_at_period_end, sub.cancel_at, sub.trial_end, sub.billing_mode],
        sub.settings,
        None
        if schedule is None
        else (
            schedule.id,
            schedule.status,
            schedule.metadata,
            schedule.phases,
            schedule.current_phase_start,
            schedule.created,
            schedule.begun,
            schedule.uncarried,
        ),
    ]
    return fingerprint(seen)


def _discount_params(discounts: Any) -> tuple[dict[str, str], ...]:
    """Stripe's discount objects or ids -> phase ``discounts`` parameters."""
    params: list[dict[str, str]] = []
    for entry in discounts or []:
        if isinstance(entry, str):
            params.append({"discount": entry})
            continue
        for key in ("discount", "coupon", "promotion_code"):
            value = id_of(entry.get(key))
            if value:
                params.append({key: value})
                break
        else:
            if entry.get("object") == "discount" and entry.get("id"):
                params.append({"discount": str(entry["id"])})
    return tuple(params)


def _phase_params(phase: Mapping[str, Any]) -> dict[str, Any]:
    """A phase as Stripe returns it -> the parameters that would recreate it."""
    items = []
    for item in phase.get("items") or []:
        entry: dict[str, Any] = {"price": id_of(item.get("price"))}
        if item.get("quantity") is not None:
            entry["quantity"] = item["quantity"]
        tax_rates = [id_of(t) for t in item.get("tax_rates") or []]
        if tax_rates:
            entry["tax_rates"] = tax_rates
        if item.get("metadata"):
            entry["metadata"] = dict(item["metadata"])
        if item.get("billing_thresholds"):
            entry["billing_thresholds"] = _set_fields(item["billing_thresholds"])
        item_discounts = _discount_params(item.get("discounts"))
        if item_discounts:
            entry["discounts"] = list(item_discounts)
        items.append(entry)
    params: dict[str, Any] = {"items": items, **_settings_params(phase)}
    for key in ("start_date", "end_date"):
        if phase.get(key) is not None:
            params[key] = phase[key]
    discounts = _discount_params(phase.get("discounts"))
    if discounts:
        params["discounts"] = list(discounts)
    default_tax_rates = [id_of(t) for t in phase.get("default_tax_rates") or []]
    if default_tax_rates:
        params["default_tax_rates"] = default_tax_rates
    if phase.get("metadata"):
        params["metadata"] = dict(phase["metadata"])
    for key in _PHASE_FIELDS:
        if phase.get(key) is not None:
            params[key] = phase[key]
    return params


def _set_fields(value: Mapping[str, Any]) -> dict[str, Any]:
    return {key: field_value for key, field_value in value.items() if field_value is not None}


def _settings_params(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The billing settings a subscription or a schedule phase has set, as phase parameters.

    On a subscription ``days_until_due`` is top level; on a phase it is in
    ``invoice_settings``. Only what is set is returned.
    """
    params: dict[str, Any] = {}
    if obj.get("application_fee_percent") is not None:
        params["application_fee_percent"] = obj["application_fee_percent"]
    payment_method = id_of(obj.get("default_payment_method"))
    if payment_method:
        params["default_payment_method"] = payment_method
    if obj.get("billing_thresholds"):
        params["billing_thresholds"] = _set_fields(obj["billing_thresholds"])
    automatic_tax = obj.get("automatic_tax") or {}
    if automatic_tax.get("enabled"):
        liability = automatic_tax.get("liability") or {}
        params["automatic_tax"] = {"enabled": True}
        if liability.get("type") not in (None, "self"):
            params["automatic_tax"]["liability"] = {
                "type": liability["type"],
                "account": id_of(liability.get("account")),
            }
    invoice_settings = obj.get("invoice_settings") or {}
    days = obj.get("days_until_due", invoice_settings.get("days_until_due"))
    if days is not None:
        params["invoice_settings"] = {"days_until_due": days}
    on_behalf_of = id_of(obj.get("on_behalf_of"))
    if on_behalf_of:
        params["on_behalf_of"] = on_behalf_of
    transfer = obj.get("transfer_data") or {}
    if transfer.get("destination"):
        params["transfer_data"] = {"destination": id_of(transfer["destination"])}
        if transfer.get("amount_percent") is not None:
            params["transfer_data"]["amount_percent"] = transfer["amount_percent"]
    return params


def _uncarried(phases: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """Settings set on these phases that ``_phase_params`` cannot write back."""
    found: set[str] = set()
    for phase in phases:
        found.update(k for k, v in phase.items() if k not in _PHASE_KEYS_READ and _is_set(k, v))
        for item in phase.get("items") or []:
            found.update(
                f"items.{k}" for k, v in item.items() if k not in _ITEM_KEYS_READ and _is_set(k, v)
            )
        issuer = ((phase.get("invoice_settings") or {}).get("issuer") or {}).get("type")
        if issuer not in (None, "self"):
            found.add("invoice_settings.issuer")
        if (phase.get("invoice_settings") or {}).get("account_tax_ids"):
            found.add("invoice_settings.account_tax_ids")
    return tuple(sorted(found))


def _is_set(key: str, value: Any) -> bool:
    if key == "proration_behavior":  # the default is what a rewritten phase gets
        return value not in (None, "create_prorations")
    if key == "object":
        return False
    return value not in (None, False, "", [], {})


def schedule_from_stripe(obj: Mapping[str, Any]) -> LiveSchedule:
    """Current and future phases of a schedule, in update-parameter form."""
    current = obj.get("current_phase") or {}
    current_start = current.get("start_date")
    read = [
        p
        for p in obj.get("phases") or []
        if current_start is None or (p.get("start_date") or 0) >= current_start
    ]
    return LiveSchedule(
        id=str(obj["id"]),
        status=str(obj.get("status")),
        metadata=dict(obj.get("metadata") or {}),
        phases=tuple(_phase_params(p) for p in read),
        current_phase_start=current_start,
        created=obj.get("created"),
        end_behavior=str(obj.get("end_behavior") or "release"),
        uncarried=_uncarried(read),
    )


def subscription_from_stripe(obj: Mapping[str, Any]) -> LiveSubscription:
    """A subscription read with ``expand[]=data.schedule`` -> LiveSubscription.

    Hot (once per subscription read): the common shapes (an expanded price, a
    plain customer id) are taken directly rather than through ``_id``.
    """
    items = []
    sub_start = obj.get("current_period_start")
    sub_end = obj.get("current_period_end")
    for item in (obj.get("items") or {}).get("data") or []:
        price = item.get("price") or {}
        if isinstance(price, dict):
            recurring = price.get("recurring") or {}
            price_id = str(price.get("id")) if price.get("id") else "None"
        else:
            recurring = {}
            price_id = str(id_of(price))
        items.append(
            SubscriptionItem(
                id=item.get("id"),
                price=price_id,
                quantity=item.get("quantity"),
                tax_rates=tuple(str(id_of(t)) for t in item.get("tax_rates") or ()),
                metered=recurring.get("usage_type") == "metered",
                period_start=item.get("current_period_start", sub_start),
                period_end=item.get("current_period_end", sub_end),
                metadata=dict(item.get("metadata") or {}),
                discounts=_discount_params(item.get("discounts")),
                billing_thresholds=item.get("billing_thresholds") or None,
                charges=isinstance(price, dict) and live_charges(price, item.get("quantity")),
            )
        )
    schedule = obj.get("schedule")
    customer = obj.get("customer")
    return LiveSubscription(
        id=str(obj["id"]),
        customer=customer if isinstance(customer, str) and customer else str(id_of(customer)),
        status=str(obj.get("status")),
        items=tuple(items),
        discounts=_discount_params(obj.get("discounts")),
        default_tax_rates=tuple(str(id_of(t)) for t in obj.get("default_tax_rates") or ()),
        metadata=dict(obj.get("metadata") or {}),
        collection_method=obj.get("collection_method"),
        schedule=schedule_from_stripe(schedule) if isinstance(schedule, Mapping) else None,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        cancel_at=obj.get("cancel_at"),
        trial_end=obj.get("trial_end") if obj.get("status") == "trialing" else None,
        billing_mode=(obj.get("billing_mode") or {}).get("type"),
        settings=_settings_params(obj),
        test_clock=id_of(obj.get("test_clock")),
    )
