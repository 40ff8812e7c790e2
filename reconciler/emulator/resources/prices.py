"""Prices: ``/v1/prices`` create, retrieve, update, list (no delete: archive).

Only Stripe's updatable fields can change (the SDK's ``PriceUpdateParams``
says which; anything else is ``parameter_unknown``). ``lookup_key`` is unique
among active prices; ``transfer_lookup_key=true`` moves it atomically. The
product's default price cannot be archived. ``tiers`` and
``currency_options`` only appear when expanded (the options include the price's
own currency). ``tax_behavior`` changes only while ``unspecified``, on the price
and on each currency option. An update's ``currency_options`` sets each currency
it names whole (keeping its tax behavior unless given), removes one given empty,
and ``currency_options=""`` removes all. ``custom_unit_amount`` (pay what you
want) is only for one-time prices, instead of an amount, and its currency options
give bounds too. Legacy metered prices
(no meter, ``recurring.aggregate_usage``) exist only on API versions up to
``2025-02-24.acacia``: see :mod:`reconciler.emulator.versions`.
"""

from __future__ import annotations

from reconciler.emulator.errors import invalid
from reconciler.emulator.events import emit
from reconciler.emulator.params import ObjectNode, ScalarNode
from reconciler.emulator.render import apply_metadata, matches_created, paginate
from reconciler.emulator.resources.catalog import (
    LEGACY_AGGREGATE_USAGE,
    PRICE,
    PRODUCT,
    build_price,
    check_currency,
    check_lookup_key,
    currency_option,
    make_product,
    move_lookup_key,
    product_for_price,
)
from reconciler.emulator.router import ObjectType, Registry, Request
from reconciler.emulator.store import JSON
from reconciler.emulator.versions import has_legacy_usage_billing

__all__ = ["legacy_price_params", "register"]

MAX_LOOKUP_KEYS = 10


def legacy_price_params(version: str, schema: ObjectNode) -> ObjectNode:
    """On legacy versions, price creation also takes ``recurring[aggregate_usage]``."""
    if not has_legacy_usage_billing(version):
        return schema
    return schema.with_field(
        ("recurring",), "aggregate_usage", ScalarNode("str", frozenset(LEGACY_AGGREGATE_USAGE))
    )


def create(req: Request) -> JSON:
    params = req.params
    product_id = params.get("product")
    product_data = params.get("product_data")
    if product_id is not None and product_data is not None:
        raise invalid(
            "You may only specify one of these parameters: product, product_data.",
            param="product",
        )
    new_product: JSON | None = None
    if product_data is not None:
        new_product = make_product(req, product_data)
        product_id = new_product["id"]
    elif product_id is not None:
        product_for_price(req, product_id)
    else:
        raise invalid(
            "You must specify either `product` or `product_data` when creating a price.",
            param="product",
            code="parameter_missing",
        )
    price, holder = build_price(req, params, str(product_id))
    if new_product is not None:
        req.store.put(PRODUCT, new_product)
        emit(req, "product.created", new_product)
    move_lookup_key(req, holder)
    req.store.put(PRICE, price)
    emit(req, "price.created", price)
    return price


def retrieve(req: Request) -> JSON:
    return req.store.get(PRICE, req.path_params["id"])


def update(req: Request) -> JSON:
    price = req.store.get(PRICE, req.path_params["id"])
    params = req.params
    transfer = bool(params.get("transfer_lookup_key"))
    active = (
        price["active"]
        if "active" in params and params["active"] is None
        else params.get("active", price["active"])
    )
    if not active and price["active"]:
        product = req.store.find(PRODUCT, price["product"])
        if product is not None and product.get("default_price") == price["id"]:
            raise invalid(
                "This price cannot be archived because it is the default price of its product "
                f"({product['id']}). Set another default price on the product first.",
                param="active",
            )
    lookup_key = params["lookup_key"] if "lookup_key" in params else price.get("lookup_key")
    holder = None
    if lookup_key is not None and active:
        holder = check_lookup_key(req, str(lookup_key), price["id"], transfer)
    if "tax_behavior" in params and params["tax_behavior"] is not None:
        current = price["tax_behavior"]
        if current not in ("unspecified", params["tax_behavior"]):
            raise invalid(
                f"tax_behavior cannot be changed once it is {current}.", param="tax_behavior"
            )
        price["tax_behavior"] = params["tax_behavior"]
    if "currency_options" in params:
        price["currency_options"] = _updated_options(price, params["currency_options"])
    if "nickname" in params:
        price["nickname"] = params["nickname"]
    if "metadata" in params:
        price["metadata"] = apply_metadata(price["metadata"], params["metadata"])
    move_lookup_key(req, holder)
    price["active"] = bool(active)
    price["lookup_key"] = lookup_key
    req.store.put(PRICE, price)
    emit(req, "price.updated", price)
    return price


def _updated_options(price: JSON, given: JSON | None) -> JSON:
    """Currency options after an update: ``""`` (None) clears all but the price's own
    currency, a currency given empty is removed, any other is set whole."""
    own = price["currency"]
    current = dict(price.get("currency_options") or {})
    if given is None:
        return {code: option for code, option in current.items() if code == own}
    for code, option in given.items():
        key = check_currency(code, f"currency_options[{code}]")
        if key == own:
            raise invalid(
                "currency_options cannot change the price's own currency.",
                param=f"currency_options[{code}]",
            )
        if option is None:
            current.pop(key, None)
        else:
            current[key] = currency_option(option, str(code), price, current.get(key))
    return current


def list_(req: Request) -> JSON:
    params = req.params
    lookup_keys = params.get("lookup_keys")
    if lookup_keys is not None and len(lookup_keys) > MAX_LOOKUP_KEYS:
        raise invalid(
            f"You may only specify up to {MAX_LOOKUP_KEYS} lookup_keys.", param="lookup_keys"
        )
    recurring = params.get("recurring") or {}
    keys = set(lookup_keys or [])

    def wanted(price: JSON) -> bool:
        if params.get("active") is not None and price["active"] != params["active"]:
            return False
        if params.get("product") and price["product"] != params["product"]:
            return False
        if params.get("type") and price["type"] != params["type"]:
            return False
        if params.get("currency") and price["currency"] != str(params["currency"]).lower():
            return False
        if lookup_keys is not None and price.get("lookup_key") not in keys:
            return False
        if recurring:
            current = price.get("recurring")
            if current is None:
                return False
            for name in ("interval", "usage_type", "meter"):
                if recurring.get(name) is not None and current.get(name) != recurring[name]:
                    return False
        return matches_created(price, params.get("created"))

    items = [price for price in req.store.newest_first(PRICE) if wanted(price)]
    return paginate(req, items, "/v1/prices", label="price")


def _transform(obj: JSON, version: str) -> None:
    recurring = obj.get("recurring")
    if isinstance(recurring, dict):
        if has_legacy_usage_billing(version):
            recurring.setdefault("aggregate_usage", None)
        else:
            recurring.pop("aggregate_usage", None)


def register(registry: Registry) -> None:
    registry.object_type(
        ObjectType(
            "price",
            expandable={"product": PRODUCT},
            hidden=frozenset({"tiers", "currency_options"}),
            transform=_transform,
        )
    )
    registry.route(
        "POST", "/v1/prices", create, params="PriceCreateParams", adjust=legacy_price_params
    )
    registry.route("GET", "/v1/prices", list_, params="PriceListParams")
    registry.route("GET", "/v1/prices/{id}", retrieve, params="PriceRetrieveParams")
    registry.route("POST", "/v1/prices/{id}", update, params="PriceUpdateParams")
