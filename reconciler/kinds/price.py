"""Prices: identified by their lookup key; nickname, metadata and ``active`` change
in place, anything else (amounts, tiers, recurrence, meter, currency, product) only
by replacing: a new price takes the lookup key (``transfer_lookup_key``) and the
default, then the old one is archived. Retired by archiving.

A price stripe-reconcile did not make is taken over only with ``adopt: true`` or
when named by ``id`` (then it gets its lookup key). An active price it made that
has no lookup key is a replace interrupted between the two writes: archived.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from reconciler.kinds import Kind
from reconciler.kinds.base import (
    Essence,
    ImportContext,
    KindSpec,
    ReadContext,
    StripeObject,
    absent,
    amount,
    changed_params,
    existing,
    field_changes,
    id_of,
    is_managed,
    marked,
    metadata_entry,
    preferred,
    root,
    unknown_action,
    update_or_archive,
)
from reconciler.model import (
    Desired,
    Price,
    Recurring,
    Tier,
    TransformQuantity,
    carries_marker,
    decimal_text,
    given,
)
from reconciler.plan import Action, ActionReason, FieldChange, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import (
    PHASE_PRICES,
    PHASE_RETIRE,
    PHASE_UNSET_DEFAULTS,
    Ids,
    Resolver,
    Step,
    at,
    const,
)

__all__ = [
    "PRICE_UPDATABLE",
    "PriceSpec",
    "create_params",
    "price_essence",
    "price_essence_from_stripe",
]

PRICE_UPDATABLE = frozenset({"nickname", "metadata", "active", "lookup_key"})
_TIER_PARAM = re.compile(r"tiers\[(\d+)\]\[(\w+)\]")


def _tier_essence(tier: Tier) -> Essence:
    return {
        "up_to": tier.up_to,
        "unit_amount": amount(tier.unit_amount, tier.unit_amount_decimal),
        "flat_amount": amount(tier.flat_amount, tier.flat_amount_decimal),
    }


def price_essence(price: Price) -> Essence:
    recurring = price.recurring
    transform = price.transform_quantity
    return {
        "product": price.product,
        "currency": price.currency,
        "nickname": price.nickname,
        "metadata": dict(price.metadata),
        "active": price.active,
        "recurring": None
        if recurring is None
        else {
            "interval": recurring.interval,
            "interval_count": recurring.interval_count,
            "usage": recurring.usage,
            "meter": recurring.meter,
        },
        "unit_amount": amount(price.unit_amount, price.unit_amount_decimal),
        "tiers_mode": price.tiers_mode,
        "tiers": [_tier_essence(t) for t in price.tiers] if price.tiers else None,
        "transform_quantity": None
        if transform is None
        else {"divide_by": transform.divide_by, "round": transform.round},
    }


def price_essence_from_stripe(obj: Mapping[str, Any], meter_names: Mapping[str, str]) -> Essence:
    """``meter_names`` maps meter ids to event names (an unknown id stays an id)."""
    recurring = obj.get("recurring")
    transform = obj.get("transform_quantity")
    tiers = obj.get("tiers")
    tiered = obj.get("billing_scheme") == "tiered"
    return {
        "product": id_of(obj.get("product")),
        "currency": obj.get("currency"),
        "nickname": obj.get("nickname") or None,
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
        "recurring": None
        if not recurring
        else {
            "interval": recurring.get("interval"),
            "interval_count": recurring.get("interval_count", 1),
            "usage": recurring.get("usage_type", "licensed"),
            "meter": _meter_name(recurring.get("meter"), meter_names),
        },
        "unit_amount": None
        if tiered
        else amount(obj.get("unit_amount"), obj.get("unit_amount_decimal")),
        "tiers_mode": obj.get("tiers_mode") if tiered else None,
        "tiers": [
            {
                "up_to": t.get("up_to"),
                "unit_amount": amount(t.get("unit_amount"), t.get("unit_amount_decimal")),
                "flat_amount": amount(t.get("flat_amount"), t.get("flat_amount_decimal")),
            }
            for t in tiers
        ]
        if tiered and tiers
        else None,
        "transform_quantity": None
        if not transform
        else {"divide_by": transform.get("divide_by"), "round": transform.get("round")},
    }


def _meter_name(value: Any, meter_names: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return str(value.get("event_name") or value.get("id"))
    return meter_names.get(str(value), str(value))


def amount_params(essence: Mapping[str, Any]) -> dict[str, Any]:
    """The amount parameters of a price essence: tiers, or one unit amount."""
    if not essence.get("tiers"):
        return {"unit_amount_decimal": essence["unit_amount"]}
    return {
        "billing_scheme": "tiered",
        "tiers_mode": essence["tiers_mode"],
        "tiers": [
            {
                "up_to": "inf" if tier["up_to"] is None else tier["up_to"],
                **(
                    {"unit_amount_decimal": tier["unit_amount"]}
                    if tier["unit_amount"] is not None
                    else {}
                ),
                **(
                    {"flat_amount_decimal": tier["flat_amount"]}
                    if tier["flat_amount"] is not None
                    else {}
                ),
            }
            for tier in essence["tiers"]
        ],
    }


def create_params(
    lookup_key: str, after: Mapping[str, Any], ids: Ids, *, transfer: bool
) -> dict[str, Any]:
    """The parameters that create a price of this essence (``transfer``: taking the
    lookup key from the price it replaces)."""
    params: dict[str, Any] = {
        "product": after["product"],
        "currency": after["currency"],
        "lookup_key": lookup_key,
        "metadata": dict(after["metadata"]),
    }
    if transfer:
        params["transfer_lookup_key"] = True
    if after.get("nickname") is not None:
        params["nickname"] = after["nickname"]
    recurring = after.get("recurring")
    if recurring is not None:
        params["recurring"] = {
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "usage_type": recurring["usage"],
        }
        if recurring.get("meter"):
            params["recurring"]["meter"] = ids.of(Kind.METER, recurring["meter"])
    params.update(amount_params(after))
    transform = after.get("transform_quantity")
    if transform is not None:
        params["transform_quantity"] = dict(transform)
    return params


def _create_resolver(lookup_key: str, after: Mapping[str, Any], *, transfer: bool) -> Resolver:
    return lambda ids: create_params(lookup_key, after, ids, transfer=transfer)


def _unset_default(address: str, product: str) -> Step:
    """The price's product lets go of it, so that it can be archived."""
    return Step(
        PHASE_UNSET_DEFAULTS,
        address,
        "unset-default",
        at(f"/v1/products/{product}"),
        const({"default_price": ""}),
    )


def _archive(address: str, name: str, old: str | None) -> Step:
    return Step(PHASE_RETIRE, address, name, at(f"/v1/prices/{old}"), const({"active": False}))


def _details(
    product: str,
    lookup_key: str,
    live: LiveObject,
    snapshot: Snapshot,
    defaults: Mapping[str, str],
) -> dict[str, Any]:
    """Default-price bookkeeping apply needs when this price is replaced or archived.

    The product that matters is the one the live price is on: a price moved to
    another product leaves its old product, which may no longer be declared,
    pointing at it, and Stripe refuses to archive a product's default price.
    """
    home = str(live.essence.get("product") or product)
    live_home = snapshot.products.get(home)
    if live_home is None or live_home.essence.get("default_price") != lookup_key:
        return {}
    if home != product:
        if defaults.get(home) is not None:
            return {}  # the old product's declared default moves first
        return {"unset_default_of": home}
    if defaults.get(product) == lookup_key:
        return {"default_of": product}
    return {"default_of": product, "default_moves_to": defaults.get(product)}


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "price"


def _import_amount(integer: Any, decimal: Any) -> dict[str, Any]:
    """``unit_amount`` when whole, else ``unit_amount_decimal`` (quoted) - as Stripe holds it."""
    if decimal not in (None, ""):
        value = Decimal(str(decimal))
        if value == value.to_integral_value():
            return {"amount": int(value)}
        return {"decimal": decimal_text(value)}
    if integer is not None:
        return {"amount": int(integer)}
    return {}


def _put_amount(entry: dict[str, Any], name: str, integer: Any, decimal: Any) -> None:
    """``{name}`` when whole, else ``{name}_decimal``; nothing when absent."""
    found = _import_amount(integer, decimal)
    if "amount" in found:
        entry[name] = found["amount"]
    elif "decimal" in found:
        entry[f"{name}_decimal"] = found["decimal"]


class PriceSpec(KindSpec):
    kind = Kind.PRICE
    section = "prices"
    list_path = "/v1/prices"
    list_params: ClassVar[Mapping[str, Any]] = {
        "expand": ["data.tiers"]
    }  # without it every tiered price looks changed
    read_after = (Kind.METER,)
    param_fields: ClassVar[Mapping[str, tuple[str | int, ...]]] = {
        "product": ("product",),
        "currency": ("currency",),
        "nickname": ("nickname",),
        "lookup_key": ("lookup_key",),
        "unit_amount": ("unit_amount",),
        "unit_amount_decimal": ("unit_amount_decimal",),
        "tiers_mode": ("tiers_mode",),
        "recurring[interval]": ("recurring", "interval"),
        "recurring[interval_count]": ("recurring", "interval_count"),
        "recurring[usage_type]": ("recurring", "usage"),
        "recurring[meter]": ("recurring", "meter"),
        "transform_quantity[divide_by]": ("transform_quantity", "divide_by"),
        "transform_quantity[round]": ("transform_quantity", "round"),
    }
    amounts = True

    def build(self, entry: Mapping[str, Any]) -> Price:
        recurring = entry.get("recurring")
        transform = entry.get("transform_quantity")
        return Price(
            lookup_key=entry["lookup_key"],
            product=entry["product"],
            currency=entry["currency"],
            metadata=dict(entry.get("metadata", {})),
            **given(entry, "nickname", "active", "default", "adopt", "id"),
            recurring=Recurring(
                interval=recurring["interval"],
                **given(recurring, "interval_count", "usage", "meter"),
            )
            if recurring is not None
            else None,
            unit_amount=entry.get("unit_amount"),
            unit_amount_decimal=_decimal(entry.get("unit_amount_decimal")),
            tiers_mode=entry.get("tiers_mode"),
            tiers=tuple(
                Tier(
                    up_to=None if t["up_to"] == "inf" else t["up_to"],
                    unit_amount=t.get("unit_amount"),
                    unit_amount_decimal=_decimal(t.get("unit_amount_decimal")),
                    flat_amount=t.get("flat_amount"),
                    flat_amount_decimal=_decimal(t.get("flat_amount_decimal")),
                )
                for t in entry.get("tiers", [])
            ),
            transform_quantity=TransformQuantity(transform["divide_by"], transform["round"])
            if transform is not None
            else None,
        )

    def identity(self, declared: Price) -> str:
        return declared.lookup_key

    def forces_replacement(self, root_field: str) -> bool:
        return root_field not in PRICE_UPDATABLE

    def param_field(self, param: str) -> tuple[str | int, ...] | None:
        tier = _TIER_PARAM.fullmatch(param)
        if tier is not None:
            return ("tiers", int(tier.group(1)), tier.group(2))
        return super().param_field(param)

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        meter_names = context.names.get(Kind.METER, {})
        by_key: dict[str, StripeObject] = {}
        anonymous: list[str] = []
        orphans: list[str] = []
        unkeyed: dict[str, LiveObject] = {}
        lookup_key_of: dict[str, str] = {}
        for price in objects:
            key = price.get("lookup_key")
            if not key:
                if price.get("active", True):
                    (orphans if is_managed(price) else anonymous).append(price["id"])
                    unkeyed[price["id"]] = LiveObject(
                        price["id"],
                        price_essence_from_stripe(price, meter_names),
                        is_managed(price),
                    )
                continue
            lookup_key_of[price["id"]] = key
            if preferred(by_key.get(key), price):
                by_key[key] = price
        context.names[self.kind] = lookup_key_of
        return {
            "prices": {
                key: LiveObject(p["id"], price_essence_from_stripe(p, meter_names), is_managed(p))
                for key, p in by_key.items()
            },
            "anonymous_prices": tuple(sorted(anonymous)),
            "orphan_prices": tuple(sorted(orphans)),
            "unkeyed": unkeyed,
        }

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        changes = [
            change
            for price in desired.prices
            if (change := self._plan_one(price, desired, snapshot, conflicts)) is not None
        ]
        adopted = {p.id for p in desired.prices if p.id is not None}
        return changes + [
            ResourceChange(
                self.address_of(price_id),
                self.kind,
                Action.ARCHIVE,
                "left over from an interrupted replace (managed, lost its lookup key)",
                {"active": True},
                {"active": False},
                (FieldChange("active", True, False),),
                price_id,
                because=ActionReason.INTERRUPTED_REPLACE,
            )
            for price_id in snapshot.orphan_prices
            if price_id not in adopted
        ]

    def _plan_one(
        self, price: Price, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> ResourceChange | None:
        after = price_essence(price)
        live = snapshot.prices.get(price.lookup_key)
        address = price.address
        by_id = live is None and price.id is not None and price.id in snapshot.unkeyed
        if by_id and price.id is not None:
            live = snapshot.unkeyed[price.id]
        if live is None:
            return absent(address, self.kind, price.active, after)
        adopted = price.adopt or price.id == live.stripe_id  # named by id: taken over
        if not live.managed and not adopted:
            conflicts.append(
                f"{address}: lookup key '{price.lookup_key}' belongs to {live.stripe_id}, which "
                "stripe-reconcile did not create; set adopt: true on this price to take it over, "
                "or choose another lookup_key"
            )
            return None
        defaults = desired.default_prices()
        details = _details(price.product, price.lookup_key, live, snapshot, defaults)
        diffs = field_changes(live.essence, after, after.keys())
        if by_id:  # taken over by id: it gets its lookup key
            diffs = (FieldChange("lookup_key", None, price.lookup_key), *diffs)
        fixed = [d.field for d in diffs if self.forces_replacement(root(d.field))]
        if price.active and fixed:
            return existing(
                address,
                self.kind,
                Action.REPLACE,
                f"fixed at creation: {', '.join(fixed)}",
                ActionReason.CANNOT_UPDATE,
                live=live,
                after=marked(after),  # the new price is one stripe-reconcile creates
                diffs=diffs,
                details=details,
            )
        if not price.active:
            # An archived price is never replaced: only its updatable fields matter.
            diffs = tuple(d for d in diffs if not self.forces_replacement(root(d.field)))
        return update_or_archive(
            address, self.kind, live=live, after=after, diffs=diffs, details=details
        )

    def unmanaged(self, desired: Desired, snapshot: Snapshot) -> list[str]:
        adopted = {p.id for p in desired.prices if p.id is not None}
        return super().unmanaged(desired, snapshot) + [
            f"price {price_id} (no lookup key)"
            for price_id in snapshot.anonymous_prices
            if price_id not in adopted
        ]

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        after = change.after or {}
        lookup_key = self.named(address)
        details = change.details
        steps: list[Step] = []
        match action:
            case Action.CREATE | Action.REPLACE:
                replace = action is Action.REPLACE
                steps.append(
                    Step(
                        PHASE_PRICES,
                        address,
                        "create",
                        at("/v1/prices"),
                        _create_resolver(lookup_key, after, transfer=replace),
                        (self.kind.value, lookup_key),
                    )
                )
                if replace and details.get("unset_default_of"):
                    steps.append(_unset_default(address, str(details["unset_default_of"])))
                if replace:
                    steps.append(_archive(address, "archive-old", old))
            case Action.UPDATE | Action.ARCHIVE:
                fields = changed_params(change, ("nickname", "active"))
                fields.update({c.field: c.after for c in change.changes if c.field == "lookup_key"})
                if action is Action.ARCHIVE:
                    fields.pop("active", None)
                if fields:
                    steps.append(
                        Step(
                            PHASE_PRICES, address, "update", at(f"/v1/prices/{old}"), const(fields)
                        )
                    )
                if action is Action.ARCHIVE:
                    default_of = details.get("default_of")
                    if default_of and details.get("default_moves_to") is None:
                        steps.append(_unset_default(address, str(default_of)))
                    elif details.get("unset_default_of"):
                        steps.append(_unset_default(address, str(details["unset_default_of"])))
                    steps.append(_archive(address, "archive", old))
            case Action.NOOP:
                pass
            case _:
                return unknown_action(change)
        return steps

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """Archiving a price the saved plan replaced (its replacement made already)."""
        return change.action is Action.ARCHIVE and any(
            c.kind is self.kind and c.action is Action.REPLACE and c.stripe_id == change.stripe_id
            for c in saved.actionable
        )

    def finished(self, planned: ResourceChange, snapshot: Snapshot) -> bool:
        """A left-over price (no lookup key) the saved plan archived: archived already."""
        active = {o.stripe_id for o in snapshot.prices.values() if o.active}
        active |= set(snapshot.unkeyed)
        return (
            planned.action is Action.ARCHIVE
            and planned.stripe_id is not None
            and planned.address == self.address_of(planned.stripe_id)
            and planned.stripe_id not in active
        )

    def known_ids(self, snapshot: Snapshot, plan: Plan) -> dict[str, str]:
        """Prices by lookup key, those taken over by id included (they get theirs now)."""
        known = {key: obj.stripe_id for key, obj in snapshot.prices.items()}
        for change in plan.actionable:
            for field_change in change.changes:
                if field_change.field == "lookup_key" and change.stripe_id is not None:
                    known[str(field_change.after)] = change.stripe_id
        return known

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        defaults = {
            id_of(p.get("default_price"))
            for p in context.listed.get(Kind.PRODUCT, ())
            if p.get("default_price")
        }
        entries: list[dict[str, Any]] = []
        listed = context.listed.get(self.kind, ())
        for price in sorted(listed, key=lambda p: (p.get("lookup_key") or "~", p["id"])):
            active = bool(price.get("active", True))
            if not active and not price.get("lookup_key"):
                continue  # archived and unnamed: nothing a billing.yaml could say about it
            entry = self._import_one(price, context, active and price["id"] in defaults)
            if entry is not None:
                context.use(Kind.PRODUCT, entry["product"])
                if "meter" in entry.get("recurring", {}):
                    context.use(Kind.METER, entry["recurring"]["meter"])
                entries.append(entry)
        return entries

    def _import_one(
        self, price: StripeObject, context: ImportContext, default: bool
    ) -> dict[str, Any] | None:
        recurring = price.get("recurring") or None
        label = price.get("lookup_key") or price["id"]
        if recurring and recurring.get("usage_type") == "metered" and not recurring.get("meter"):
            context.skipped.append(
                f"legacy usage-record price {label} ({price['id']}): move its subscriptions to a "
                "meter-backed price with migrations:"
            )
            return None
        unsupported = []
        custom = price.get("custom_unit_amount")
        if isinstance(custom, Mapping) and any(v is not None for v in custom.values()):
            unsupported.append("custom_unit_amount (pay what you want)")
        if len(price.get("currency_options") or {}) > 1:
            unsupported.append("currency_options")
        if unsupported:
            context.skipped.append(f"price {label} ({price['id']}): uses {', '.join(unsupported)}")
            return None
        product = _text_id(price.get("product"))
        out: dict[str, Any] = {}
        key = price.get("lookup_key")
        if not key:
            base = _slug(f"{product}_{price.get('nickname') or ''}")
            key = f"{base}_{price['id'][-6:].lower()}"
            out["lookup_key"] = key
            out["id"] = price["id"]
            context.proposed_lookup_keys.append(key)
        else:
            out["lookup_key"] = key
            if not carries_marker(price.get("metadata")):
                out["adopt"] = True
        out["product"] = product
        out["currency"] = price.get("currency")
        if price.get("nickname"):
            out["nickname"] = price["nickname"]
        metadata = metadata_entry(price)
        if metadata:
            out["metadata"] = metadata
        if default:
            out["default"] = True
        if not price.get("active", True):
            out["active"] = False
        if recurring:
            rec: dict[str, Any] = {"interval": recurring.get("interval")}
            if recurring.get("interval_count", 1) != 1:
                rec["interval_count"] = recurring["interval_count"]
            if recurring.get("usage_type") == "metered":
                rec["usage"] = "metered"
                rec["meter"] = context.name(Kind.METER, str(recurring.get("meter")))
            out["recurring"] = rec
        if price.get("billing_scheme") == "tiered":
            out["tiers_mode"] = price.get("tiers_mode")
            tiers = []
            for tier in price.get("tiers") or []:
                entry: dict[str, Any] = {
                    "up_to": "inf" if tier.get("up_to") is None else tier["up_to"]
                }
                _put_amount(
                    entry, "unit_amount", tier.get("unit_amount"), tier.get("unit_amount_decimal")
                )
                _put_amount(
                    entry, "flat_amount", tier.get("flat_amount"), tier.get("flat_amount_decimal")
                )
                tiers.append(entry)
            out["tiers"] = tiers
        else:
            _put_amount(
                out, "unit_amount", price.get("unit_amount"), price.get("unit_amount_decimal")
            )
        transform = price.get("transform_quantity")
        if transform:
            out["transform_quantity"] = {
                "divide_by": transform["divide_by"],
                "round": transform["round"],
            }
        return out


def _text_id(value: Any) -> str | None:
    """An expandable field's id as text (None when absent)."""
    found = id_of(value)
    return str(found) if found else None
