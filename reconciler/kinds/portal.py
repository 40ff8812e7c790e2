"""Customer portal configurations: identified by their name; every setting changes in
place; retired by ``active: false`` (Stripe deletes none).

After docs.stripe.com/api/customer_portal/configurations: ``name`` (API version
2025-08-27.basil and later) is set on create and update, is not shown to
customers and is not unique, so the active, then newest, configuration of a
name is the one declared. A configuration without a name is never claimed: it
cannot be declared, so it is not listed as unmanaged either (the Dashboard's
default configuration is usually one).

Only what billing.yaml states is managed: a setting, feature or key it leaves
out keeps Stripe's value (Stripe's default on create), so nothing flaps against
the defaults Stripe fills in; ``null`` clears a nullable text. The lists of
allowed updates and cancellation reasons are sets (compared in any order); the
products a subscription may switch between, and their prices, are ordered.
Cancelling at the period end is written with ``proration_behavior: none`` when
billing.yaml leaves it out: the only one Stripe takes with that mode.

``features.subscription_update.products`` is includable: the list is read with
``expand[]=data.features.subscription_update.products``. Products are named by id,
prices by lookup key: a live price id reads back as its lookup key, and a write
names each price by its id when it runs, so a price created in the same apply is
named by its new id. A price the same apply replaces is named by its replacement:
a configuration that names it is pointed at the new price once prices exist
(like a product's default price). An add-on kind: read only when billing.yaml
declares one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from reconciler.kinds import Kind
from reconciler.kinds.base import (
    Essence,
    ImportContext,
    KindSpec,
    ReadContext,
    StripeObject,
    archivable,
    by_identity,
    id_of,
    is_managed,
    metadata_entry,
    root,
    unknown_action,
)
from reconciler.model import PORTAL_SETTINGS, Desired, PortalConfiguration, given
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.snapshot import LiveObject, Snapshot
from reconciler.steps import PHASE_DEFAULTS, PHASE_RETIRE, Ids, Resolver, Step, at, const

__all__ = ["PortalSpec", "portal_essence", "portal_essence_from_stripe"]

PATH = "/v1/billing_portal/configurations"
PRODUCTS = "features.subscription_update.products"
_SETS = frozenset(
    {
        ("features", "customer_update", "allowed_updates"),
        ("features", "subscription_update", "default_allowed_updates"),
        ("features", "subscription_cancel", "cancellation_reason", "options"),
    }
)
"""Lists whose order means nothing: compared sorted."""
_LISTS = frozenset({"allowed_updates", "default_allowed_updates", "products"})
"""List parameters Stripe empties with ``""`` (an empty list sends nothing in a form)."""
_PARAM_PART = re.compile(r"[^\[\]]+")
_PROFILE = ("headline", "privacy_policy_url", "terms_of_service_url")


def _sets_sorted(value: Any, path: tuple[str, ...] = ()) -> Any:
    """A copy of ``value`` with the lists of ``_SETS`` sorted."""
    if isinstance(value, Mapping):
        return {key: _sets_sorted(item, (*path, key)) for key, item in value.items()}
    if isinstance(value, list):
        if path in _SETS:
            return sorted(value)
        return [_sets_sorted(item, path) for item in value]
    return value


def portal_essence(config: PortalConfiguration) -> Essence:
    """The declared configuration: its name, the settings billing.yaml states, metadata
    and ``active``."""
    stated = {k: copy.deepcopy(config.settings[k]) for k in PORTAL_SETTINGS if k in config.settings}
    return {
        "name": config.name,
        **_sets_sorted(stated),
        "metadata": dict(config.metadata),
        "active": config.active,
    }


def _products_from_stripe(
    products: Iterable[Mapping[str, Any]], price_names: Mapping[str, str]
) -> list[dict[str, Any]]:
    return [
        {
            "product": id_of(entry.get("product")),
            "prices": [
                price_names.get(str(id_of(p)), str(id_of(p))) for p in entry.get("prices") or []
            ],
        }
        for entry in products
    ]


def portal_essence_from_stripe(obj: Mapping[str, Any], price_names: Mapping[str, str]) -> Essence:
    """Every setting billing.yaml can state, as Stripe holds it; ``price_names`` maps
    price ids to lookup keys (an unknown id stays an id)."""
    features = obj.get("features") or {}
    customer = features.get("customer_update") or {}
    cancel = features.get("subscription_cancel") or {}
    reason = cancel.get("cancellation_reason") or {}
    update = features.get("subscription_update") or {}
    switching: dict[str, Any] = {
        "enabled": bool(update.get("enabled")),
        "default_allowed_updates": list(update.get("default_allowed_updates") or []),
        "proration_behavior": update.get("proration_behavior"),
    }
    if update.get("products") is not None:  # includable: present when it was asked for
        switching["products"] = _products_from_stripe(update["products"], price_names)
    profile = obj.get("business_profile") or {}
    essence: Essence = {
        "name": obj.get("name"),
        "business_profile": {name: profile.get(name) or None for name in _PROFILE},
        "default_return_url": obj.get("default_return_url") or None,
        "login_page": {"enabled": bool((obj.get("login_page") or {}).get("enabled"))},
        "features": {
            "customer_update": {
                "enabled": bool(customer.get("enabled")),
                "allowed_updates": list(customer.get("allowed_updates") or []),
            },
            "invoice_history": {
                "enabled": bool((features.get("invoice_history") or {}).get("enabled"))
            },
            "payment_method_update": {
                "enabled": bool((features.get("payment_method_update") or {}).get("enabled"))
            },
            "subscription_cancel": {
                "enabled": bool(cancel.get("enabled")),
                "mode": cancel.get("mode"),
                "proration_behavior": cancel.get("proration_behavior"),
                "cancellation_reason": {
                    "enabled": bool(reason.get("enabled")),
                    "options": list(reason.get("options") or []),
                },
            },
            "subscription_update": switching,
        },
        "metadata": dict(obj.get("metadata") or {}),
        "active": bool(obj.get("active", True)),
    }
    result: Essence = _sets_sorted(essence)
    return result


def _stated(live: Mapping[str, Any], stated: Mapping[str, Any]) -> dict[str, Any]:
    """The live values of what billing.yaml states: a hash it states is compared on the
    keys it states (metadata whole: it is compared key by key anyway)."""
    out: dict[str, Any] = {}
    for key, wanted in stated.items():
        have = live.get(key)
        if isinstance(wanted, Mapping) and isinstance(have, Mapping) and key != "metadata":
            out[key] = _stated(have, wanted)
        else:
            out[key] = have
    return out


def _feature_params(name: str, stated: Mapping[str, Any], ids: Ids) -> dict[str, Any]:
    """One feature hash as Stripe's parameters: prices by their ids, empty lists as ``""``."""
    params: dict[str, Any] = copy.deepcopy(dict(stated))
    if name == "subscription_update" and params.get("products"):
        params["products"] = [
            {
                "product": entry["product"],
                "prices": [ids.of(Kind.PRICE, key) for key in entry["prices"]],
            }
            for entry in params["products"]
        ]
    if name == "subscription_cancel" and params.get("mode") == "at_period_end":
        # The only proration Stripe takes with that mode: a stored create_prorations (set
        # with mode immediately) would have the update refused.
        params.setdefault("proration_behavior", "none")
    for key in _LISTS:
        if params.get(key) == []:
            params[key] = ""
    return params


def _features_params(features: Mapping[str, Any], names: Iterable[str], ids: Ids) -> dict[str, Any]:
    return {name: _feature_params(name, features[name], ids) for name in names}


def _write_params(
    after: Mapping[str, Any], fields: frozenset[str], features: tuple[str, ...], *, creating: bool
) -> Resolver:
    """The parameters of a create (every stated setting) or an update (``fields``, and
    of ``features`` the hashes in ``features``), resolved when the write runs."""

    def resolve(ids: Ids) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if creating:
            params["name"] = after["name"]
        if "metadata" in fields:
            params["metadata"] = dict(after["metadata"])
        if "active" in fields and not creating:
            params["active"] = bool(after["active"])
        if "business_profile" in fields:
            profile = after["business_profile"]
            params["business_profile"] = {
                key: ("" if value is None else value)
                for key, value in profile.items()
                if value is not None or not creating
            }
        if "default_return_url" in fields:
            url = after["default_return_url"]
            if url is not None or not creating:
                params["default_return_url"] = "" if url is None else url
        if "login_page" in fields:
            params["login_page"] = {"enabled": bool(after["login_page"]["enabled"])}
        if features:
            params["features"] = _features_params(after["features"], features, ids)
        return {key: value for key, value in params.items() if value != {} or key == "metadata"}

    return resolve


def _changed_features(change: ResourceChange) -> tuple[str, ...]:
    """The feature hashes an update's changes touch (all stated, when the whole moved)."""
    stated = tuple((change.after or {}).get("features") or {})
    touched: set[str] = set()
    for field_change in change.changes:
        if root(field_change.field) != "features":
            continue
        rest = field_change.field.removeprefix("features").lstrip(".")
        if not rest:
            return stated
        touched.add(re.split(r"[.\[]", rest, maxsplit=1)[0])
    return tuple(name for name in stated if name in touched)


def _declared_prices(after: Mapping[str, Any] | None) -> set[str]:
    update = ((after or {}).get("features") or {}).get("subscription_update") or {}
    return {key for entry in update.get("products") or () for key in entry["prices"]}


def _replaced_prices(plan: Plan) -> set[str]:
    """Lookup keys of the prices ``plan`` replaces (a new price takes each key)."""
    return {
        c.address.removeprefix(f"{c.kind}.")
        for c in plan.actionable
        if c.kind is Kind.PRICE and c.action is Action.REPLACE
    }


def _products_resolver(after: Mapping[str, Any]) -> Resolver:
    switching = after["features"]["subscription_update"]
    return lambda ids: {
        "features": {"subscription_update": _feature_params("subscription_update", switching, ids)}
    }


class PortalSpec(KindSpec):
    kind = Kind.PORTAL
    section = "portal_configurations"
    list_path = PATH
    list_params: ClassVar[Mapping[str, Any]] = {"expand": [f"data.{PRODUCTS}"]}
    read_after = (Kind.PRICE,)
    add_on = True

    def build(self, entry: Mapping[str, Any]) -> PortalConfiguration:
        return PortalConfiguration(
            name=entry["name"],
            settings={k: copy.deepcopy(entry[k]) for k in PORTAL_SETTINGS if k in entry},
            **given(entry, "metadata", "active"),
        )

    def identity(self, declared: PortalConfiguration) -> str:
        return declared.name

    def forces_replacement(self, root_field: str) -> bool:
        return False  # the name is the identity; every setting updates in place

    def param_field(self, param: str) -> tuple[str | int, ...] | None:
        """``features[subscription_update][products][0][prices][1]`` is that very path in
        billing.yaml: its shape is Stripe's."""
        parts = _PARAM_PART.findall(param)
        if not parts or parts[0] not in ("name", "metadata", *PORTAL_SETTINGS):
            return None
        return tuple(int(p) if p.isdigit() else p for p in parts)

    def read(self, objects: Iterable[StripeObject], context: ReadContext) -> dict[str, Any]:
        price_names = context.names.get(Kind.PRICE, {})
        named = by_identity((c for c in objects if c.get("name")), "name")
        return {
            self.section: {
                name: LiveObject(c["id"], portal_essence_from_stripe(c, price_names), is_managed(c))
                for name, c in named.items()
            }
        }

    def plan(
        self, desired: Desired, snapshot: Snapshot, conflicts: list[str]
    ) -> list[ResourceChange]:
        changes: list[ResourceChange] = []
        for config in desired.portal_configurations:
            after = portal_essence(config)
            live = snapshot.portal_configurations.get(config.name)
            if live is not None:  # compared on what billing.yaml states
                live = LiveObject(live.stripe_id, _stated(live.essence, after), live.managed)
            changes.append(archivable(config.address, self.kind, live, after))
        return changes

    def steps(self, change: ResourceChange) -> list[Step]:
        address, action, old = change.address, change.action, change.stripe_id
        after = change.after or {}
        match action:
            case Action.CREATE:
                fields = frozenset(after) - {"name", "active"}
                stated = tuple(after.get("features") or {})
                params = _write_params(after, fields, stated, creating=True)
                return [Step(PHASE_DEFAULTS, address, "create", at(PATH), params)]
            case Action.UPDATE | Action.ARCHIVE:
                path = f"{PATH}/{old}"
                fields = frozenset(root(c.field) for c in change.changes) - {"features"}
                if action is Action.ARCHIVE:
                    fields -= {"active"}  # the archive step sends it
                features = _changed_features(change)
                steps: list[Step] = []
                if fields or features:
                    params = _write_params(after, fields, features, creating=False)
                    steps.append(Step(PHASE_DEFAULTS, address, "update", at(path), params))
                if action is Action.ARCHIVE:
                    steps.append(
                        Step(PHASE_RETIRE, address, "archive", at(path), const({"active": False}))
                    )
                return steps
            case Action.NOOP:
                return []
            case _:
                return unknown_action(change)

    def plan_steps(self, plan: Plan) -> list[Step]:
        """Point each configuration that names a price the plan replaces at the new price,
        unless its own update sends its products anyway (a create names the new one)."""
        replaced = _replaced_prices(plan)
        steps: list[Step] = []
        for change in plan.changes:
            if change.kind is not self.kind or change.stripe_id is None:
                continue
            if change.action is Action.CREATE or "subscription_update" in _changed_features(change):
                continue
            if _declared_prices(change.after) & replaced:
                steps.append(
                    Step(
                        PHASE_DEFAULTS,
                        change.address,
                        "switch-prices",
                        at(f"{PATH}/{change.stripe_id}"),
                        _products_resolver(change.after or {}),
                    )
                )
        return steps

    def owed(self, planned: ResourceChange | None, change: ResourceChange, saved: Plan) -> bool:
        """Pointing a configuration at the replacement of a price the saved plan replaced
        (the replacement made already, the configuration not yet pointed at it)."""
        return (
            change.action is Action.UPDATE
            and bool(change.changes)
            and all(c.field.startswith(PRODUCTS) for c in change.changes)
            and bool(_declared_prices(change.after) & _replaced_prices(saved))
        )

    def import_entries(self, context: ImportContext) -> list[dict[str, Any]]:
        prices = context.listed.get(Kind.PRICE, ())
        keys = {p["id"]: p["lookup_key"] for p in prices if p.get("lookup_key")}
        active = {p["id"] for p in prices if p.get("active", True)}
        listed = [c for c in context.listed.get(self.kind, ()) if c.get("active", True)]
        entries: list[dict[str, Any]] = []
        for name, config in sorted(
            by_identity((c for c in listed if c.get("name")), "name").items()
        ):
            entry, problem = _import_one(config, keys, active)
            if entry is None:
                context.skipped.append(f"portal configuration {name} ({config['id']}): {problem}")
            else:
                entries.append(entry)
        return entries


def _import_one(
    config: StripeObject, keys: Mapping[str, str], active: set[str]
) -> tuple[dict[str, Any] | None, str]:
    """billing.yaml's entry for a named, active configuration (every setting it can state,
    as Stripe holds it), or None and why billing.yaml cannot state it."""
    switching = (config.get("features") or {}).get("subscription_update") or {}
    offered = [
        str(id_of(price))
        for entry in switching.get("products") or []
        for price in entry.get("prices") or []
    ]
    unnamed = sorted({price for price in offered if price not in keys})
    if unnamed:
        return None, (
            f"offers {', '.join(unnamed)} without a lookup key: apply this file (it gives such "
            "prices the lookup key it proposes), then import again"
        )
    archived = sorted({price for price in offered if price not in active})
    if archived:
        return None, (
            f"offers archived {', '.join(archived)}: billing.yaml offers active prices only; "
            "take it out of the configuration, then import again"
        )
    essence = portal_essence_from_stripe(config, keys)
    features = essence["features"]
    if features["subscription_update"]["enabled"] and not offered:
        return None, "lets customers switch subscriptions without naming a product to switch to"
    if not offered:
        features["subscription_update"].pop("products", None)  # said by leaving it out
    cancel = features["subscription_cancel"]
    if not cancel["cancellation_reason"]["options"]:
        del cancel["cancellation_reason"]  # billing.yaml offers at least one reason
    entry: dict[str, Any] = {"name": essence["name"]}
    profile = {k: v for k, v in essence["business_profile"].items() if v is not None}
    if profile:
        entry["business_profile"] = profile
    if essence["default_return_url"] is not None:
        entry["default_return_url"] = essence["default_return_url"]
    if essence["login_page"]["enabled"]:
        entry["login_page"] = {"enabled": True}
    entry["features"] = features
    metadata = metadata_entry(config)
    if metadata:
        entry["metadata"] = metadata
    return entry, ""
