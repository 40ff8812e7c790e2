"""Stripe-shaped JSON for declared objects, as the API would return them.

Used to build snapshots by hand through the same ``*_essence_from_stripe``
functions the live reader uses, with the extra fields Stripe adds, so tests
prove those never show as drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.kinds.alert import alert_essence_from_stripe
from reconciler.kinds.discount import coupon_essence_from_stripe
from reconciler.kinds.feature import feature_essence_from_stripe
from reconciler.kinds.meter import meter_essence_from_stripe
from reconciler.kinds.portal import portal_essence_from_stripe
from reconciler.kinds.price import price_essence_from_stripe
from reconciler.kinds.product import product_essence_from_stripe
from reconciler.kinds.product_feature import attachment_essence
from reconciler.kinds.promotion_code import promotion_code_essence_from_stripe
from reconciler.model import (
    MANAGED_BY_KEY,
    MANAGED_BY_VALUE,
    Alert,
    Coupon,
    CurrencyOption,
    CustomUnitAmount,
    Desired,
    Feature,
    Meter,
    PortalConfiguration,
    Price,
    Product,
    PromotionCode,
    Tier,
    decimal_text,
)
from reconciler.snapshot import LiveObject, Snapshot

MANAGED = {MANAGED_BY_KEY: MANAGED_BY_VALUE}


def meter_json(meter: Meter, meter_id: str) -> dict[str, Any]:
    return {
        "id": meter_id,
        "object": "billing.meter",
        "created": 1700000000,
        "customer_mapping": {"event_payload_key": meter.customer_key, "type": "by_id"},
        "default_aggregation": {"formula": meter.aggregation},
        "display_name": meter.display_name,
        "event_name": meter.event_name,
        "event_time_window": meter.event_time_window,
        "livemode": False,
        "status": "active" if meter.active else "inactive",
        "status_transitions": {"deactivated_at": None},
        "updated": 1700000000,
        "value_settings": {"event_payload_key": meter.value_key},
    }


def product_json(product: Product, default_price: str | None) -> dict[str, Any]:
    return {
        "id": product.id,
        "object": "product",
        "active": product.active,
        "created": 1700000000,
        "default_price": default_price,
        "description": product.description,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {**product.metadata, **MANAGED},
        "name": product.name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "unit_label": None,
        "updated": 1700000000,
        "url": None,
        "type": "service",
    }


def _amount_fields(integer: int | None, decimal: Any) -> tuple[int | None, str | None]:
    if integer is not None:
        return integer, str(integer)
    if decimal is not None:
        text = decimal_text(decimal)
        return (int(text) if "." not in text else None), text
    return None, None


def _tiers_json(tiers: tuple[Tier, ...]) -> list[dict[str, Any]]:
    found = []
    for tier in tiers:
        unit, unit_dec = _amount_fields(tier.unit_amount, tier.unit_amount_decimal)
        flat, flat_dec = _amount_fields(tier.flat_amount, tier.flat_amount_decimal)
        found.append(
            {
                "up_to": tier.up_to,
                "unit_amount": unit,
                "unit_amount_decimal": unit_dec,
                "flat_amount": flat,
                "flat_amount_decimal": flat_dec,
            }
        )
    return found


def _custom_json(custom: CustomUnitAmount | None) -> dict[str, Any] | None:
    if custom is None:
        return None
    return {"maximum": custom.maximum, "minimum": custom.minimum, "preset": custom.preset}


def _option_json(option: CurrencyOption, tiered: bool) -> dict[str, Any]:
    unit, unit_dec = _amount_fields(option.unit_amount, option.unit_amount_decimal)
    found: dict[str, Any] = {
        "custom_unit_amount": _custom_json(option.custom_unit_amount),
        "tax_behavior": option.tax_behavior or "unspecified",
        "unit_amount": unit,
        "unit_amount_decimal": unit_dec,
    }
    if tiered:
        found["tiers"] = _tiers_json(option.tiers)
    return found


def price_json(price: Price, price_id: str, meter_ids: dict[str, str]) -> dict[str, Any]:
    """As a list with ``expand[]=data.tiers`` and ``data.currency_options`` returns it."""
    unit_amount, unit_amount_decimal = _amount_fields(price.unit_amount, price.unit_amount_decimal)
    recurring = price.recurring
    tiers = _tiers_json(price.tiers)
    own = CurrencyOption(
        price.unit_amount,
        price.unit_amount_decimal,
        price.tiers,
        price.custom_unit_amount,
        price.tax_behavior,
    )
    options = {price.currency: own, **price.currency_options}
    return {
        "id": price_id,
        "object": "price",
        "active": price.active,
        "billing_scheme": "tiered" if price.tiers else "per_unit",
        "created": 1700000000,
        "currency": price.currency,
        "currency_options": {
            code: _option_json(option, bool(price.tiers)) for code, option in options.items()
        },
        "custom_unit_amount": _custom_json(price.custom_unit_amount),
        "livemode": False,
        "lookup_key": price.lookup_key,
        "metadata": {**price.metadata, **MANAGED},
        "nickname": price.nickname,
        "product": price.product,
        "recurring": None
        if recurring is None
        else {
            "interval": recurring.interval,
            "interval_count": recurring.interval_count,
            "meter": meter_ids.get(recurring.meter) if recurring.meter else None,
            "usage_type": recurring.usage,
            "trial_period_days": None,
        },
        "tax_behavior": price.tax_behavior or "unspecified",
        "tiers_mode": price.tiers_mode,
        "tiers": tiers or None,
        "transform_quantity": None
        if price.transform_quantity is None
        else {
            "divide_by": price.transform_quantity.divide_by,
            "round": price.transform_quantity.round,
        },
        "type": "recurring" if recurring else "one_time",
        "unit_amount": None if price.tiers else unit_amount,
        "unit_amount_decimal": None if price.tiers else unit_amount_decimal,
    }


def alert_json(alert: Alert, alert_id: str, meter_id: str) -> dict[str, Any]:
    return {
        "id": alert_id,
        "object": "billing.alert",
        "alert_type": "usage_threshold",
        "livemode": False,
        "status": "active" if alert.active else "inactive",
        "title": alert.title,
        "usage_threshold": {
            "filters": [{"type": "customer", "customer": alert.customer}]
            if alert.customer
            else None,
            "gte": alert.threshold,
            "meter": meter_id,
            "recurrence": alert.recurrence,
        },
    }


def feature_json(feature: Feature, feature_id: str) -> dict[str, Any]:
    return {
        "id": feature_id,
        "object": "entitlements.feature",
        "active": feature.active,
        "livemode": False,
        "lookup_key": feature.lookup_key,
        "metadata": {**feature.metadata, **MANAGED},
        "name": feature.name,
    }


def _merged(base: dict[str, Any], stated: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the hashes and values of ``stated`` laid over it."""
    out = dict(base)
    for key, value in stated.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def portal_json(
    config: PortalConfiguration, config_id: str, price_ids: Mapping[str, str]
) -> dict[str, Any]:
    """Stripe's configuration with what ``config`` states over Stripe's defaults, its
    products expanded (``price_ids``: lookup key -> price id)."""
    stated = dict(config.settings)
    switching = stated.get("features", {}).get("subscription_update")
    if switching is not None and "products" in switching:
        products = [
            {
                "adjustable_quantity": {"enabled": False, "maximum": None, "minimum": 1},
                "prices": [price_ids[key] for key in entry["prices"]],
                "product": entry["product"],
            }
            for entry in switching["products"]
        ]
        stated["features"] = {
            **stated["features"],
            "subscription_update": {**switching, "products": products},
        }
    defaults: dict[str, Any] = {
        "id": config_id,
        "object": "billing_portal.configuration",
        "active": config.active,
        "application": None,
        "business_profile": {
            "headline": None,
            "privacy_policy_url": None,
            "terms_of_service_url": None,
        },
        "created": 1700000000,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": [], "enabled": False},
            "invoice_history": {"enabled": False},
            "payment_method_update": {"enabled": False, "payment_method_configuration": None},
            "subscription_cancel": {
                "cancellation_reason": {
                    "enabled": False,
                    "options": ["too_expensive", "missing_features", "switched_service"],
                },
                "enabled": False,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_pause": {"enabled": False},
            "subscription_update": {
                "billing_cycle_anchor": None,
                "default_allowed_updates": [],
                "enabled": False,
                "products": [],
                "proration_behavior": "none",
                "schedule_at_period_end": {"conditions": []},
                "trial_update_behavior": "end_trial",
            },
        },
        "is_default": False,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {**config.metadata, **MANAGED},
        "name": config.name,
        "updated": 1700000000,
    }
    return _merged(defaults, stated)


def coupon_json(coupon: Coupon) -> dict[str, Any]:
    """A coupon as listed with ``applies_to`` and ``currency_options`` expanded."""
    options = {code: {"amount_off": value} for code, value in coupon.currency_options.items()}
    if coupon.amount_off is not None and coupon.currency is not None:
        options[coupon.currency] = {"amount_off": coupon.amount_off}
    return {
        "id": coupon.id,
        "object": "coupon",
        "amount_off": coupon.amount_off,
        "applies_to": {"products": list(coupon.applies_to)} if coupon.applies_to else None,
        "created": 1700000000,
        "currency": coupon.currency,
        "currency_options": options or None,
        "duration": coupon.duration,
        "duration_in_months": coupon.duration_in_months,
        "livemode": False,
        "max_redemptions": coupon.max_redemptions,
        "metadata": {**coupon.metadata, **MANAGED},
        "name": coupon.name,
        "percent_off": float(coupon.percent_off) if coupon.percent_off is not None else None,
        "redeem_by": coupon.redeem_by.at if coupon.redeem_by is not None else None,
        "times_redeemed": 0,
        "valid": True,
    }


def promotion_code_json(code: PromotionCode, code_id: str) -> dict[str, Any]:
    return {
        "id": code_id,
        "object": "promotion_code",
        "active": code.active,
        "code": code.code,
        "created": 1700000000,
        "customer": code.customer,
        "customer_account": None,
        "expires_at": code.expires_at.at if code.expires_at is not None else None,
        "livemode": False,
        "max_redemptions": code.max_redemptions,
        "metadata": {**code.metadata, **MANAGED},
        "promotion": {"coupon": code.coupon, "type": "coupon"},
        "restrictions": {
            "first_time_transaction": code.first_time_transaction,
            "minimum_amount": code.minimum_amount,
            "minimum_amount_currency": code.minimum_amount_currency,
        },
        "times_redeemed": 0,
    }


def snapshot_matching(desired: Desired) -> Snapshot:
    """The snapshot of an account that already holds exactly what ``desired`` declares."""
    meter_ids = {m.event_name: f"mtr_{i}" for i, m in enumerate(desired.meters)}
    meter_names = {v: k for k, v in meter_ids.items()}
    price_ids = {p.lookup_key: f"price_{i}" for i, p in enumerate(desired.prices)}
    defaults = {p.product: p.lookup_key for p in desired.prices if p.default}
    return Snapshot(
        products={
            p.id: LiveObject(
                p.id, product_essence_from_stripe(product_json(p, None), defaults.get(p.id))
            )
            for p in desired.products
        },
        meters={
            m.event_name: LiveObject(
                meter_ids[m.event_name],
                meter_essence_from_stripe(meter_json(m, meter_ids[m.event_name])),
            )
            for m in desired.meters
        },
        prices={
            p.lookup_key: LiveObject(
                price_ids[p.lookup_key],
                price_essence_from_stripe(
                    price_json(p, price_ids[p.lookup_key], meter_ids), meter_names
                ),
            )
            for p in desired.prices
        },
        alerts={
            (a.meter, a.title): LiveObject(
                f"alrt_{i}",
                alert_essence_from_stripe(alert_json(a, f"alrt_{i}", meter_ids[a.meter])),
            )
            for i, a in enumerate(desired.alerts)
        },
        features={  # the list shows no archived feature: a retired one reads as absent
            f.lookup_key: LiveObject(
                f"feat_{i}", feature_essence_from_stripe(feature_json(f, f"feat_{i}")), True
            )
            for i, f in enumerate(desired.features)
            if f.active
        },
        portal_configurations={
            c.name: LiveObject(
                f"bpc_{i}",
                portal_essence_from_stripe(
                    portal_json(c, f"bpc_{i}", price_ids), {v: k for k, v in price_ids.items()}
                ),
            )
            for i, c in enumerate(desired.portal_configurations)
        },
        product_features={
            f"{p.id}/{key}": LiveObject(f"prodft_{p.id}_{key}", attachment_essence(p.id, key))
            for p in desired.products
            for key in p.features or ()
        },
        coupons={  # a deleted coupon is not listed
            c.id: LiveObject(c.id, coupon_essence_from_stripe(coupon_json(c)), True)
            for c in desired.coupons
            if c.active
        },
        promotion_codes={
            p.identity: LiveObject(
                f"promo_{i}",
                promotion_code_essence_from_stripe(promotion_code_json(p, f"promo_{i}")),
                True,
            )
            for i, p in enumerate(desired.promotion_codes)
        },
    )
