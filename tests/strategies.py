"""Hypothesis strategies for valid desired states (billing.yaml documents)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from reconciler.model import (
    Alert,
    Coupon,
    CurrencyOption,
    CustomUnitAmount,
    Desired,
    Feature,
    Meter,
    Migration,
    Moment,
    PortalConfiguration,
    Price,
    Product,
    PromotionCode,
    Recurring,
    SwitchAt,
    Tier,
    TransformQuantity,
)

ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12).map(
    lambda s: "x" + s
)
label = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "Zs", "P"]), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s != "")
metadata = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=40).filter(
        lambda k: k != "managed_by"
    ),
    st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N", "Zs"]), max_size=40),
    max_size=4,
)
decimals = st.decimals(min_value=0, max_value=100000, places=4, allow_nan=False).map(
    lambda d: d.normalize() if d != 0 else Decimal(0)
)

tiers_modes = st.sampled_from(["graduated", "volume"])
roundings = st.sampled_from(["up", "down"])


@st.composite
def tiers(draw: Any) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), min_size=0, max_size=3)))
    result = []
    for up_to in [*bounds, None]:
        if draw(st.booleans()):
            tier = Tier(up_to=up_to, unit_amount_decimal=draw(decimals))
        else:
            tier = Tier(
                up_to=up_to,
                unit_amount=draw(st.integers(0, 10**6)),
                flat_amount=draw(st.none() | st.integers(0, 10**6)),
            )
        result.append(tier)
    return tuple(result)


tax_behaviors = st.none() | st.sampled_from(["inclusive", "exclusive", "unspecified"])


@st.composite
def custom_amounts(draw: Any) -> CustomUnitAmount:
    """Pay-what-you-want bounds with minimum <= preset <= maximum, each optional."""
    low, middle, high = sorted(draw(st.lists(st.integers(0, 10**6), min_size=3, max_size=3)))
    return CustomUnitAmount(
        minimum=draw(st.none() | st.just(low)),
        maximum=draw(st.none() | st.just(high)),
        preset=draw(st.none() | st.just(middle)),
    )


@st.composite
def currency_options(
    draw: Any, own: str, form: str, bounds: tuple[int | None, ...]
) -> dict[str, CurrencyOption]:
    """Other currencies, each priced the way the price is (``form``; tiers keep the
    price's bounds)."""
    codes = draw(st.lists(st.sampled_from(["eur", "gbp", "jpy"]), max_size=2, unique=True))
    options = {}
    for code in (c for c in codes if c != own):
        tax = draw(tax_behaviors)
        if form == "custom":
            option = CurrencyOption(custom_unit_amount=draw(custom_amounts()), tax_behavior=tax)
        elif form == "tiers":
            option = CurrencyOption(
                tiers=tuple(
                    Tier(up_to=up_to, unit_amount=draw(st.integers(0, 10**6))) for up_to in bounds
                ),
                tax_behavior=tax,
            )
        elif form == "decimal":
            option = CurrencyOption(unit_amount_decimal=draw(decimals), tax_behavior=tax)
        else:
            option = CurrencyOption(unit_amount=draw(st.integers(0, 99999999)), tax_behavior=tax)
        options[code] = option
    return options


@st.composite
def desired_states(draw: Any) -> Desired:
    meters = tuple(
        Meter(
            event_name=name,
            display_name=draw(label),
            aggregation=draw(st.sampled_from(["sum", "count", "last"])),
            customer_key=draw(st.sampled_from(["stripe_customer_id", "customer"])),
            value_key=draw(st.sampled_from(["value", "seconds"])),
            active=True,
            event_time_window=draw(st.sampled_from([None, "hour", "day"])),
        )
        for name in draw(st.lists(ident, max_size=3, unique=True))
    )
    products = tuple(
        Product(
            id="prod_" + pid,
            name=draw(label),
            description=draw(st.none() | label),
            metadata=draw(metadata),
            active=draw(st.booleans()),
        )
        for pid in draw(st.lists(ident, min_size=1, max_size=3, unique=True))
    )
    if not any(p.active for p in products):
        products = (dataclasses.replace(products[0], active=True), *products[1:])
    sellable = [p for p in products if p.active]
    prices: list[Price] = []
    has_default: set[str] = set()
    for key in draw(st.lists(ident, max_size=6, unique=True)):
        product = draw(st.sampled_from(sellable)).id
        metered = bool(meters) and draw(st.booleans())
        recurring: Recurring | None = None
        if metered:
            recurring = Recurring(
                interval="month", usage="metered", meter=draw(st.sampled_from(meters)).event_name
            )
        elif draw(st.booleans()):
            interval = draw(st.sampled_from(["day", "week", "month", "year"]))
            recurring = Recurring(interval=interval, interval_count=1)
        forms = ["int", "decimal", "tiers"] if recurring else ["int", "decimal", "custom"]
        form = draw(st.sampled_from(forms))
        currency = draw(st.sampled_from(["usd", "eur"]))
        price_tiers = draw(tiers()) if form == "tiers" else ()
        default = product not in has_default and draw(st.booleans())
        if default:
            has_default.add(product)
        prices.append(
            Price(
                lookup_key=key,
                product=product,
                currency=currency,
                nickname=draw(st.none() | label),
                metadata=draw(metadata),
                active=True,
                default=default,
                adopt=draw(st.booleans()),
                recurring=recurring,
                unit_amount=draw(st.integers(0, 99999999)) if form == "int" else None,
                unit_amount_decimal=draw(decimals) if form == "decimal" else None,
                tiers_mode=draw(tiers_modes) if form == "tiers" else None,
                tiers=price_tiers,
                transform_quantity=draw(
                    st.none() | st.builds(TransformQuantity, st.integers(1, 1000), roundings)
                )
                if form in ("int", "decimal")
                else None,
                tax_behavior=draw(tax_behaviors),
                currency_options=draw(
                    currency_options(currency, form, tuple(t.up_to for t in price_tiers))
                ),
                custom_unit_amount=draw(custom_amounts()) if form == "custom" else None,
            )
        )
    alerts = tuple(
        Alert(
            title=title,
            meter=draw(st.sampled_from(meters)).event_name,
            threshold=draw(st.integers(1, 10**9)),
            customer=draw(st.none() | st.just("cus_Test123")),
            active=draw(st.booleans()),
        )
        for title in (draw(st.lists(label, max_size=2, unique=True)) if meters else [])
    )
    features = tuple(
        Feature(
            lookup_key=key,
            name=draw(label),
            metadata=draw(st.sampled_from([{}, {"tier": "pro"}])),
            active=draw(st.booleans()),
        )
        for key in draw(
            st.lists(st.sampled_from(["hd_export", "api.access", "sso"]), max_size=2, unique=True)
        )
    )
    portal_configurations = tuple(
        draw(portal_configuration_states(name, prices))
        for name in draw(
            st.lists(st.sampled_from(["Self-serve", "Team admins"]), max_size=2, unique=True)
        )
    )
    grantable = [f.lookup_key for f in features if f.active]
    products = tuple(  # each active product may declare the active features it grants
        dataclasses.replace(
            product,
            features=draw(
                st.none() | st.lists(st.sampled_from(grantable), unique=True).map(tuple)
                if grantable and product.active
                else st.none() | st.just(())
            ),
        )
        for product in products
    )
    coupons = tuple(
        draw(coupon_states(coupon_id, tuple(p.id for p in products if p.active)))
        for coupon_id in draw(
            st.lists(st.sampled_from(["SPRING25", "WELCOME", "vip-10"]), max_size=2, unique=True)
        )
    )
    promotion_codes = tuple(
        draw(promotion_code_states(code, draw(st.sampled_from(coupons))))
        for code in (
            draw(
                st.lists(st.sampled_from(["SPRING", "welcome-10", "VIP"]), max_size=2, unique=True)
            )
            if coupons
            else []
        )
    )
    metered = [p for p in prices if p.is_metered]
    migrations = tuple(
        Migration(
            name=f"move-{index}",
            from_price=f"price_legacy{index}",
            to_price=draw(st.sampled_from(metered)).lookup_key,
            switch_at=draw(
                st.sampled_from(
                    [
                        SwitchAt("period_end"),
                        SwitchAt("now"),
                        SwitchAt("at", 1796083200, "2026-12-01T00:00:00Z"),
                    ]
                )
            ),
            subscriptions=draw(st.none() | st.just(("sub_A1", "sub_B2"))),
            exclude=draw(st.sampled_from([(), ("sub_C3",)])),
            batch=draw(st.none() | st.integers(1, 500)),
            require_usage_parity=draw(st.none() | st.sampled_from([Decimal("0.5"), Decimal(2)])),
            paused=draw(st.booleans()),
        )
        for index in range(draw(st.integers(0, 2)) if metered else 0)
    )
    return Desired(
        mode=draw(st.sampled_from(["test", "live"])),
        products=products,
        meters=meters,
        prices=tuple(prices),
        alerts=alerts,
        features=features,
        portal_configurations=portal_configurations,
        coupons=coupons,
        promotion_codes=promotion_codes,
        migrations=migrations,
    )


urls = st.sampled_from(["https://example.com/account", "http://localhost:8000/back"])


@st.composite
def portal_configuration_states(draw: Any, name: str, prices: list[Price]) -> PortalConfiguration:
    """A valid configuration: it offers declared active recurring prices of their own
    products, and states any part of the settings."""
    offerable: dict[str, list[str]] = {}
    for price in prices:
        if price.recurring is not None and price.active:
            offerable.setdefault(price.product, []).append(price.lookup_key)
    features: dict[str, Any] = {}
    if draw(st.booleans()):
        features["invoice_history"] = {"enabled": draw(st.booleans())}
    if draw(st.booleans()):
        features["customer_update"] = {
            "enabled": draw(st.booleans()),
            "allowed_updates": draw(
                st.lists(st.sampled_from(["email", "tax_id", "address"]), unique=True)
            ),
        }
    if draw(st.booleans()):
        features["payment_method_update"] = {"enabled": draw(st.booleans())}
    if draw(st.booleans()):
        cancel: dict[str, Any] = {"enabled": draw(st.booleans())}
        mode = draw(st.sampled_from([None, "at_period_end", "immediately"]))
        if mode is not None:
            cancel["mode"] = mode
        if mode == "immediately":
            cancel["proration_behavior"] = draw(st.sampled_from(["none", "create_prorations"]))
        if draw(st.booleans()):
            cancel["cancellation_reason"] = {
                "enabled": draw(st.booleans()),
                "options": draw(
                    st.lists(
                        st.sampled_from(["other", "too_expensive", "unused"]),
                        min_size=1,
                        unique=True,
                    )
                ),
            }
        features["subscription_cancel"] = cancel
    if offerable and draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(sorted(offerable)), min_size=1, unique=True))
        features["subscription_update"] = {
            "enabled": draw(st.booleans()),
            "default_allowed_updates": draw(
                st.lists(st.sampled_from(["price", "quantity"]), unique=True)
            ),
            "proration_behavior": draw(st.sampled_from(["none", "always_invoice"])),
            "products": [
                {
                    "product": product,
                    "prices": draw(
                        st.lists(st.sampled_from(offerable[product]), min_size=1, unique=True)
                    ),
                }
                for product in chosen
            ],
        }
    elif draw(st.booleans()):
        features["subscription_update"] = {"enabled": False}
    if not features:
        features["invoice_history"] = {"enabled": True}
    settings: dict[str, Any] = {"features": features}
    if draw(st.booleans()):
        settings["business_profile"] = draw(
            st.sampled_from(
                [
                    {"headline": "Manage your plan"},
                    {"headline": None, "privacy_policy_url": "https://example.com/privacy"},
                ]
            )
        )
    if draw(st.booleans()):
        settings["default_return_url"] = draw(st.none() | urls)
    if draw(st.booleans()):
        settings["login_page"] = {"enabled": draw(st.booleans())}
    return PortalConfiguration(
        name=name,
        settings=settings,
        metadata=draw(st.sampled_from([{}, {"team": "growth"}])),
        active=draw(st.booleans()),
    )


@st.composite
def promotion_code_states(draw: Any, code: str, coupon: Coupon) -> PromotionCode:
    """A valid code for ``coupon``: within its limits, active only when it is."""
    minimum = draw(st.booleans())
    return PromotionCode(
        code=code,
        coupon=coupon.id,
        active=coupon.active and draw(st.booleans()),
        max_redemptions=draw(st.none() | st.just(10)),
        expires_at=draw(st.none() | st.just(Moment.of(1893455999))),
        first_time_transaction=draw(st.booleans()),
        minimum_amount=1000 if minimum else None,
        minimum_amount_currency="usd" if minimum else None,
        metadata=draw(st.sampled_from([{}, {"channel": "blog"}])),
    )


@st.composite
def coupon_states(draw: Any, coupon_id: str, products: tuple[str, ...]) -> Coupon:
    """A valid coupon: a percentage or an amount (with currency options), a duration, and
    limits in the future; restricted, maybe, to some of ``products``."""
    by_amount = draw(st.booleans())
    duration = draw(st.sampled_from(["once", "repeating", "forever"]))
    restricted = draw(st.lists(st.sampled_from(products), unique=True)) if products else []
    return Coupon(
        id=coupon_id,
        name=draw(st.none() | st.sampled_from(["Spring sale", "Welcome"])),
        percent_off=None if by_amount else draw(st.sampled_from([Decimal(10), Decimal("12.5")])),
        amount_off=draw(st.sampled_from([500, 1000])) if by_amount else None,
        currency="usd" if by_amount else None,
        currency_options=draw(st.sampled_from([{}, {"eur": 450}])) if by_amount else {},
        duration=duration,
        duration_in_months=draw(st.sampled_from([3, 12])) if duration == "repeating" else None,
        max_redemptions=draw(st.none() | st.just(100)),
        redeem_by=draw(st.none() | st.just(Moment.of(1924991999))),
        applies_to=tuple(restricted) or None,
        metadata=draw(st.sampled_from([{}, {"campaign": "spring"}])),
        active=draw(st.booleans()),
    )
