"""Prices: identified by their lookup key; nickname, metadata and ``active`` change
in place, anything else (amounts, tiers, recurrence, meter, currency, product,
pay-what-you-want bounds) only by replacing: a new price takes the lookup key
(``transfer_lookup_key``) and the default, then the old one is archived. Retired by
archiving.

A price stripe-reconcile did not make is taken over only with ``adopt: true`` or
when named by ``id`` (then it gets its lookup key). An active price it made that
has no lookup key is a replace interrupted between the two writes: archived (unless
it is marked as kept for its subscriptions, see ``replaced_prices``). What is
compared, and what replaces, is :mod:`reconciler.kinds.price_terms`'s; what becomes
of the subscriptions on a price a plan retires, :mod:`reconciler.kinds.replaced_prices`'s.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from reconciler.kinds import Kind
from reconciler.kinds.base import (
    ImportContext,
    KindSpec,
    ReadContext,
    StripeObject,
    absent,
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
from reconciler.kinds.price_terms import (
    BOUNDS,
    OPTION_PARAM,
    PRICE_UPDATABLE,
    TIER_PARAM,
    UNSPECIFIED,
    amount_params,
    carried,
    changed_options,
    compared,
    create_params,
    custom_from_stripe,
    price_essence,
    price_essence_from_stripe,
    replaces,
    why_replaced,
)
from reconciler.kinds.replaced_prices import (
    REPLACED_BY_KEY,
    existing_migration,
    predecessor_change,
    unmarked_evidence,
    with_subscribers,
)
from reconciler.model import (
    CurrencyOption,
    CustomUnitAmount,
    Desired,
    Migration,
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
    Resolver,
    Step,
    at,
    const,
)

__all__ = [
    "PRICE_UPDATABLE",
    "PriceSpec",
    "amount_params",
    "create_params",
    "existing_migration",
    "price_essence",
    "price_essence_from_stripe",
]


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
        "expand": ["data.tiers", "data.currency_options"]
    }  # includable: without them every tiered or multi-currency price looks changed
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
        "tax_behavior": ("tax_behavior",),
        "custom_unit_amount": ("custom_unit_amount",),
        "custom_unit_amount[minimum]": ("custom_unit_amount", "minimum"),
        "custom_unit_amount[maximum]": ("custom_unit_amount", "maximum"),
        "custom_unit_amount[preset]": ("custom_unit_amount", "preset"),
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
            tiers=_build_tiers(entry.get("tiers", [])),
            transform_quantity=TransformQuantity(transform["divide_by"], transform["round"])
            if transform is not None
            else None,
            **given(entry, "tax_behavior", "existing_subscriptions"),
            currency_options={
                code: _build_option(option)
                for code, option in sorted((entry.get("currency_options") or {}).items())
            },
            custom_unit_amount=_build_custom(entry.get("custom_unit_amount")),
        )

    def identity(self, declared: Price) -> str:
        return declared.lookup_key

    def forces_replacement(self, root_field: str) -> bool:
        return root_field not in PRICE_UPDATABLE

    def forces_replacement_of(self, change: ResourceChange, field_path: str) -> bool:
        return replaces(field_path, change.before or {}, change.after or {})

    def param_field(self, param: str) -> tuple[str | int, ...] | None:
        option = OPTION_PARAM.fullmatch(param)
        if option is not None:
            inner = self.param_field(option.group(2).removeprefix("[").replace("]", "", 1))
            return ("currency_options", option.group(1), *(inner or ()))
        tier = TIER_PARAM.fullmatch(param)
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
        predecessors: dict[str, list[str]] = {}
        for price in objects:
            key = price.get("lookup_key")
            successor = (price.get("metadata") or {}).get(REPLACED_BY_KEY)
            if not key and successor and price.get("active", True) and is_managed(price):
                predecessors.setdefault(str(successor), []).append(price["id"])
                continue
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
            "predecessors": {key: tuple(sorted(ids)) for key, ids in sorted(predecessors.items())},
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
        changes += [
            predecessor_change(self.address_of(old), old, price, snapshot)
            for price in desired.prices
            for old in snapshot.predecessors.get(price.lookup_key, ())
        ]
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
        # Options and bounds the account has are compared even when none are declared.
        held = [k for k in ("currency_options", "custom_unit_amount") if k not in after]
        seen = compared(live.essence, after)
        diffs = field_changes(seen, after, [*after.keys(), *held])
        if by_id:  # taken over by id: it gets its lookup key
            diffs = (FieldChange("lookup_key", None, price.lookup_key), *diffs)
        fixed = [d.field for d in diffs if replaces(d.field, live.essence, after)]
        if price.active and fixed:
            replace = existing(
                address,
                self.kind,
                Action.REPLACE,
                why_replaced(fixed),
                ActionReason.CANNOT_UPDATE,
                live=live,
                # the new price is one stripe-reconcile creates
                after=marked(carried(after, live.essence)),
                diffs=diffs,
                details=details,
            )
            return with_subscribers(replace, price, snapshot)
        if not price.active:
            # An archived price is never replaced: only what changes in place matters.
            diffs = tuple(d for d in diffs if d.field not in fixed)
        change = update_or_archive(
            address, self.kind, live=live, after=after, diffs=diffs, details=details
        )
        return with_subscribers(change, price, snapshot)

    def unmanaged(self, desired: Desired, snapshot: Snapshot) -> list[str]:
        adopted = {p.id for p in desired.prices if p.id is not None}
        declared = {p.lookup_key for p in desired.prices}
        return (
            super().unmanaged(desired, snapshot)
            + [
                f"price {price_id} (no lookup key)"
                for price_id in snapshot.anonymous_prices
                if price_id not in adopted
            ]
            + [
                f"price {price_id} (replaced by {key}, which billing.yaml no longer declares)"
                for key, ids in snapshot.predecessors.items()
                if key not in declared
                for price_id in ids
            ]
        )

    def subscribed_ids(self, desired: Desired, snapshot: Snapshot) -> tuple[str, ...]:
        """Prices whose subscriptions a plan must count: those it would replace or archive,
        and replaced ones kept active while their subscriptions move."""
        retiring = [
            change.stripe_id
            for price in desired.prices
            if (change := self._plan_one(price, desired, snapshot, [])) is not None
            and change.action in (Action.REPLACE, Action.ARCHIVE)
            and change.stripe_id is not None
        ]
        kept = [
            old
            for price in desired.prices
            for old in snapshot.predecessors.get(price.lookup_key, ())
        ]
        return tuple(dict.fromkeys([*retiring, *kept]))

    def migrations(self, desired: Desired, snapshot: Snapshot) -> tuple[Migration, ...]:
        """For each price declaring ``existing_subscriptions: migrate``: one migration
        (``<lookup key>.existing``) moving the subscriptions of every price it replaces now
        or replaced earlier, at their period end.

        A price no longer migrating whose replaced prices are still kept for their
        subscriptions gets the same migration paused: the schedules it wrote are
        released (or given back) before those prices are archived, in the same apply,
        so the subscriptions stay where the plan says they stay.
        """
        found: list[Migration] = []
        for index, price in enumerate(desired.prices):
            migrating = price.existing_subscriptions == "migrate" and price.active
            olds = list(snapshot.predecessors.get(price.lookup_key, ()))
            change = self._plan_one(price, desired, snapshot, []) if migrating else None
            if change is not None and change.action is Action.REPLACE and change.stripe_id:
                olds.append(change.stripe_id)
            olds = [old for old in dict.fromkeys(olds) if snapshot.subscribers.get(old)]
            if olds:
                found.append(
                    Migration(
                        name=existing_migration(price.lookup_key),
                        from_price=olds[0],
                        to_price=price.lookup_key,
                        also=tuple((old, price.lookup_key) for old in olds[1:]),
                        paused=not migrating,
                        declared_by=("prices", index, "existing_subscriptions"),
                    )
                )
        return tuple(found)

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
                if replace and details.get("keep_old"):
                    # Marked before the key moves: a crash in between leaves no orphan.
                    marker = {"metadata": {REPLACED_BY_KEY: lookup_key}}
                    mark = Step(
                        PHASE_PRICES, address, "mark-old", at(f"/v1/prices/{old}"), const(marker)
                    )
                    evidence = unmarked_evidence(change, lookup_key)
                    steps = [dataclasses.replace(s, evidence=evidence) for s in [mark, *steps]]
                elif replace:
                    if details.get("unset_default_of"):
                        steps.append(_unset_default(address, str(details["unset_default_of"])))
                    steps.append(_archive(address, "archive-old", old))
            case Action.UPDATE | Action.ARCHIVE:
                fields = changed_params(change, ("nickname", "active", "tax_behavior"))
                fields.update({c.field: c.after for c in change.changes if c.field == "lookup_key"})
                if any(root(c.field) == "currency_options" for c in change.changes):
                    fields["currency_options"] = changed_options(change)
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
        tiered = price.get("billing_scheme") == "tiered"
        if tiered:
            out["tiers_mode"] = price.get("tiers_mode")
        _import_amounts(out, price, tiered)
        transform = price.get("transform_quantity")
        if transform:
            out["transform_quantity"] = {
                "divide_by": transform["divide_by"],
                "round": transform["round"],
            }
        if price.get("tax_behavior") not in (None, UNSPECIFIED):
            out["tax_behavior"] = price["tax_behavior"]
        options = {
            code: option
            for code, option in sorted((price.get("currency_options") or {}).items())
            if code != price.get("currency") and isinstance(option, Mapping)
        }
        if options:
            out["currency_options"] = {}
            for code, option in options.items():
                entry: dict[str, Any] = {}
                _import_amounts(entry, option, tiered)
                if option.get("tax_behavior") not in (None, UNSPECIFIED):
                    entry["tax_behavior"] = option["tax_behavior"]
                out["currency_options"][code] = entry
        return out


def _import_amounts(out: dict[str, Any], obj: Mapping[str, Any], tiered: bool) -> None:
    """The amount of a price or currency option as billing.yaml writes it: pay-what-you-want
    bounds, tiers, or a unit amount."""
    custom = custom_from_stripe(obj, tiered=tiered)
    if custom is not None:
        out["custom_unit_amount"] = {k: custom[k] for k in BOUNDS if custom[k] is not None}
    elif tiered:
        tiers = []
        for tier in obj.get("tiers") or []:
            entry: dict[str, Any] = {"up_to": "inf" if tier.get("up_to") is None else tier["up_to"]}
            _put_amount(
                entry, "unit_amount", tier.get("unit_amount"), tier.get("unit_amount_decimal")
            )
            _put_amount(
                entry, "flat_amount", tier.get("flat_amount"), tier.get("flat_amount_decimal")
            )
            tiers.append(entry)
        out["tiers"] = tiers
    else:
        _put_amount(out, "unit_amount", obj.get("unit_amount"), obj.get("unit_amount_decimal"))


def _build_tiers(entries: Iterable[Mapping[str, Any]]) -> tuple[Tier, ...]:
    return tuple(
        Tier(
            up_to=None if t["up_to"] == "inf" else t["up_to"],
            unit_amount=t.get("unit_amount"),
            unit_amount_decimal=_decimal(t.get("unit_amount_decimal")),
            flat_amount=t.get("flat_amount"),
            flat_amount_decimal=_decimal(t.get("flat_amount_decimal")),
        )
        for t in entries
    )


def _build_custom(entry: Mapping[str, Any] | None) -> CustomUnitAmount | None:
    return None if entry is None else CustomUnitAmount(**given(entry, *BOUNDS))


def _build_option(entry: Mapping[str, Any]) -> CurrencyOption:
    return CurrencyOption(
        unit_amount=entry.get("unit_amount"),
        unit_amount_decimal=_decimal(entry.get("unit_amount_decimal")),
        tiers=_build_tiers(entry.get("tiers", [])),
        custom_unit_amount=_build_custom(entry.get("custom_unit_amount")),
        **given(entry, "tax_behavior"),
    )


def _text_id(value: Any) -> str | None:
    """An expandable field's id as text (None when absent)."""
    found = id_of(value)
    return str(found) if found else None
