"""Write a billing.yaml from an account: the starting point for managing it as code.

Pure: Stripe's objects in, YAML text out. The text validates and, planned
against the same account, shows no changes, except prices without a lookup
key: each gets one proposed (with its ``id``), which the next plan shows as an
update. What the language cannot express is listed in comments, never
guessed: legacy usage-record prices (move them with ``migrations:``) and
prices with features billing.yaml does not manage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from reconciler.model import MANAGED_BY_KEY, carries_marker, decimal_text

__all__ = ["ImportResult", "import_account"]

HEADER = """\
# yaml-language-server: $schema=billing.schema.json
# (write the schema beside this file: stripe-reconcile schema > billing.schema.json)
#
# Written by `stripe-reconcile import` from the account. Review it, then commit.
"""


@dataclass
class ImportResult:
    """The billing.yaml text and what could not go into it."""

    text: str
    proposed_lookup_keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _amount(integer: Any, decimal: Any) -> dict[str, Any]:
    """``unit_amount`` when whole, else ``unit_amount_decimal`` (quoted) - as Stripe holds it."""
    if decimal not in (None, ""):
        value = Decimal(str(decimal))
        if value == value.to_integral_value():
            return {"amount": int(value)}
        return {"decimal": decimal_text(value)}
    if integer is not None:
        return {"amount": int(integer)}
    return {}


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: str(v) for k, v in sorted((obj.get("metadata") or {}).items()) if k != MANAGED_BY_KEY
    }


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "price"


def _id_of(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return str(value.get("id"))
    return str(value) if value else None


def _price(
    price: Mapping[str, Any], meters: Mapping[str, str], result: ImportResult, default: bool
) -> dict[str, Any] | None:
    recurring = price.get("recurring") or None
    label = price.get("lookup_key") or price["id"]
    if recurring and recurring.get("usage_type") == "metered" and not recurring.get("meter"):
        result.skipped.append(
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
        result.skipped.append(f"price {label} ({price['id']}): uses {', '.join(unsupported)}")
        return None
    out: dict[str, Any] = {}
    key = price.get("lookup_key")
    if not key:
        base = _slug(f"{_id_of(price.get('product'))}_{price.get('nickname') or ''}")
        key = f"{base}_{price['id'][-6:].lower()}"
        out["lookup_key"] = key
        out["id"] = price["id"]
        result.proposed_lookup_keys.append(key)
    else:
        out["lookup_key"] = key
        if not carries_marker(price.get("metadata")):
            out["adopt"] = True
    out["product"] = _id_of(price.get("product"))
    out["currency"] = price.get("currency")
    if price.get("nickname"):
        out["nickname"] = price["nickname"]
    metadata = _metadata(price)
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
            rec["meter"] = meters.get(str(recurring.get("meter")), str(recurring.get("meter")))
        out["recurring"] = rec
    if price.get("billing_scheme") == "tiered":
        out["tiers_mode"] = price.get("tiers_mode")
        tiers = []
        for tier in price.get("tiers") or []:
            entry: dict[str, Any] = {"up_to": "inf" if tier.get("up_to") is None else tier["up_to"]}
            unit = _amount(tier.get("unit_amount"), tier.get("unit_amount_decimal"))
            flat = _amount(tier.get("flat_amount"), tier.get("flat_amount_decimal"))
            if "amount" in unit:
                entry["unit_amount"] = unit["amount"]
            elif "decimal" in unit:
                entry["unit_amount_decimal"] = unit["decimal"]
            if "amount" in flat:
                entry["flat_amount"] = flat["amount"]
            elif "decimal" in flat:
                entry["flat_amount_decimal"] = flat["decimal"]
            tiers.append(entry)
        out["tiers"] = tiers
    else:
        amount = _amount(price.get("unit_amount"), price.get("unit_amount_decimal"))
        if "amount" in amount:
            out["unit_amount"] = amount["amount"]
        elif "decimal" in amount:
            out["unit_amount_decimal"] = amount["decimal"]
    transform = price.get("transform_quantity")
    if transform:
        out["transform_quantity"] = {
            "divide_by": transform["divide_by"],
            "round": transform["round"],
        }
    return out


def import_account(
    *,
    mode: str,
    products: Iterable[Mapping[str, Any]],
    meters: Iterable[Mapping[str, Any]],
    prices: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
) -> ImportResult:
    """billing.yaml text for the objects of an account: archived prices with a lookup key,
    deactivated meters and alerts, and the archived products they need, as ``active:
    false`` (an archived price without a lookup key is left out: nothing can name it)."""
    result = ImportResult(text="")
    all_meters = sorted(meters, key=lambda m: (m["event_name"], m["id"]))
    meter_names = {m["id"]: m["event_name"] for m in all_meters}
    product_list = sorted(products, key=lambda p: p["id"])
    defaults = {_id_of(p.get("default_price")) for p in product_list if p.get("default_price")}
    price_entries = []
    for price in sorted(prices, key=lambda p: (p.get("lookup_key") or "~", p["id"])):
        active = bool(price.get("active", True))
        if not active and not price.get("lookup_key"):
            continue  # archived and unnamed: nothing a billing.yaml could say about it
        default = active and price["id"] in defaults
        entry = _price(price, meter_names, result, default)
        if entry is not None:
            price_entries.append(entry)
    used_products = {e["product"] for e in price_entries}
    used_meters = {
        e["recurring"]["meter"] for e in price_entries if "meter" in e.get("recurring", {})
    }
    alert_entries = []
    for alert in sorted(alerts, key=lambda a: (a.get("title") or "", a["id"])):
        if alert.get("status") == "archived":
            continue
        usage = alert.get("usage_threshold") or {}
        entry = {
            "title": alert.get("title"),
            "meter": meter_names.get(
                str(_id_of(usage.get("meter"))), str(_id_of(usage.get("meter")))
            ),
            "threshold": usage.get("gte"),
        }
        customers = [_id_of(f.get("customer")) for f in usage.get("filters") or []]
        if customers:
            entry["customer"] = customers[0]
        if alert.get("status") != "active":
            entry["active"] = False
        used_meters.add(entry["meter"])
        alert_entries.append(entry)
    meter_entries = []
    for meter in all_meters:
        active = meter.get("status") == "active"
        if not active and meter["event_name"] not in used_meters:
            continue
        entry = {
            "event_name": meter["event_name"],
            "display_name": meter.get("display_name"),
            "aggregation": (meter.get("default_aggregation") or {}).get("formula"),
        }
        customer_key = (meter.get("customer_mapping") or {}).get("event_payload_key")
        if customer_key and customer_key != "stripe_customer_id":
            entry["customer_key"] = customer_key
        value_key = (meter.get("value_settings") or {}).get("event_payload_key")
        if value_key and value_key != "value":
            entry["value_key"] = value_key
        if not active:
            entry["active"] = False
        meter_entries.append(entry)
    product_entries = []
    for product in product_list:
        if not product.get("active", True) and product["id"] not in used_products:
            continue
        entry = {"id": product["id"], "name": product.get("name")}
        if product.get("description"):
            entry["description"] = product["description"]
        metadata = _metadata(product)
        if metadata:
            entry["metadata"] = metadata
        if not product.get("active", True):
            entry["active"] = False
        product_entries.append(entry)
    document: dict[str, Any] = {"version": 1, "mode": mode}
    for name, entries in (
        ("products", product_entries),
        ("meters", meter_entries),
        ("prices", price_entries),
        ("alerts", alert_entries),
    ):
        if entries:
            document[name] = entries
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    notes = ""
    if result.skipped:
        notes = "\n# Not imported (billing.yaml does not manage these):\n" + "".join(
            f"#   - {line}\n" for line in result.skipped
        )
        if any(line.startswith("legacy") for line in result.skipped):
            notes += (
                "#\n# A migration moves subscriptions off a legacy price, for example:\n"
                "# migrations:\n#   to-meters:\n#     from_price: <legacy lookup key or id>\n"
                "#     to_price: <a metered price above>\n#     switch_at: period_end\n"
            )
    result.text = HEADER + "\n" + body + notes
    return result
