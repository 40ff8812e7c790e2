"""The desired state: what billing.yaml declares, as frozen values.

No I/O and no stripe import. Defaults are filled in here, so two documents
that mean the same thing give equal models (and the same config hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "DEFAULT_CUSTOMER_KEY",
    "DEFAULT_VALUE_KEY",
    "MANAGED_BY_KEY",
    "MANAGED_BY_VALUE",
    "PORTAL_SETTINGS",
    "Alert",
    "Coupon",
    "CurrencyOption",
    "CustomUnitAmount",
    "Desired",
    "Feature",
    "Meter",
    "Migration",
    "Moment",
    "PortalConfiguration",
    "Price",
    "Product",
    "ProductFeature",
    "PromotionCode",
    "Recurring",
    "SwitchAt",
    "Terms",
    "Tier",
    "TransformQuantity",
    "alert_address",
    "carries_marker",
    "decimal_text",
    "given",
    "id_of",
    "terms_text",
]

MANAGED_BY_KEY = "managed_by"
MANAGED_BY_VALUE = "stripe-reconcile"
DEFAULT_CUSTOMER_KEY = "stripe_customer_id"
"""The meter event payload key naming the customer, when billing.yaml names none (Stripe's)."""
DEFAULT_VALUE_KEY = "value"
"""The meter event payload key holding the value, when billing.yaml names none (Stripe's)."""


def carries_marker(metadata: Any) -> bool:
    """Whether an object's metadata (any value, absent included) says stripe-reconcile
    made it."""
    return isinstance(metadata, Mapping) and metadata.get(MANAGED_BY_KEY) == MANAGED_BY_VALUE


Mode = Literal["test", "live"]
Aggregation = Literal["sum", "count", "last"]
EventTimeWindow = Literal["day", "hour"]
Interval = Literal["day", "week", "month", "year"]
Usage = Literal["metered", "licensed"]
TiersMode = Literal["graduated", "volume"]
Rounding = Literal["up", "down"]
TaxBehavior = Literal["inclusive", "exclusive", "unspecified"]
ExistingSubscriptions = Literal["grandfather", "migrate"]


def id_of(value: Any) -> str | None:
    """An expandable Stripe field's id, whether it arrived as an id or an expanded
    object; None when it is empty."""
    if isinstance(value, str):  # the common case first: isinstance on an ABC is slow
        return value or None
    if isinstance(value, Mapping):
        return str(value["id"]) if value.get("id") else None
    return str(value) if value else None


def decimal_text(value: Decimal) -> str:
    """Canonical text of a decimal amount: no exponent, no trailing zeros (``0.50`` -> ``0.5``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


Terms = tuple[str, str, int]
"""A recurring price's currency, billing interval and interval count."""


def terms_text(terms: Terms) -> str:
    """``('usd', 'month', 3)`` -> ``USD every 3 months``."""
    currency, interval, count = terms
    every = interval if count == 1 else f"{count} {interval}s"
    return f"{currency.upper()} every {every}"


def given(entry: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The fields of a billing.yaml entry that it states, for a model class whose own
    defaults fill the rest (the one place defaults are written)."""
    return {name: entry[name] for name in names if name in entry}


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        target[key] = value


@dataclass(frozen=True)
class Product:
    """A product, identified by its Stripe id. ``features``: the lookup keys of the
    entitlement features it grants; None (the key absent) leaves its attached features
    as the account has them."""

    id: str
    name: str
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    active: bool = True
    features: tuple[str, ...] | None = None

    @property
    def address(self) -> str:
        return f"product.{self.id}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        _put(out, "description", self.description)
        out["metadata"] = dict(self.metadata)
        out["active"] = self.active
        if self.features is not None:  # absent when not declared: the hash stays
            out["features"] = list(self.features)
        return out


@dataclass(frozen=True)
class Meter:
    """A billing meter, identified by its event name."""

    event_name: str
    display_name: str
    aggregation: Aggregation
    customer_key: str = DEFAULT_CUSTOMER_KEY
    value_key: str = DEFAULT_VALUE_KEY
    active: bool = True
    event_time_window: EventTimeWindow | None = None
    """``hour`` or ``day``: events arrive pre-aggregated per window, and only the latest
    one sent for a window counts; None: every event counts (Stripe's default)."""

    @property
    def address(self) -> str:
        return f"meter.{self.event_name}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_name": self.event_name,
            "display_name": self.display_name,
            "aggregation": self.aggregation,
            "customer_key": self.customer_key,
            "value_key": self.value_key,
            "active": self.active,
        }
        _put(out, "event_time_window", self.event_time_window)  # absent: the hash stays
        return out


@dataclass(frozen=True)
class Tier:
    """One pricing tier; ``up_to`` None is the final, unbounded tier."""

    up_to: int | None
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    flat_amount: int | None = None
    flat_amount_decimal: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"up_to": "inf" if self.up_to is None else self.up_to}
        _put(out, "unit_amount", self.unit_amount)
        if self.unit_amount_decimal is not None:
            out["unit_amount_decimal"] = decimal_text(self.unit_amount_decimal)
        _put(out, "flat_amount", self.flat_amount)
        if self.flat_amount_decimal is not None:
            out["flat_amount_decimal"] = decimal_text(self.flat_amount_decimal)
        return out


@dataclass(frozen=True)
class Recurring:
    """The recurrence of a subscription price."""

    interval: Interval
    interval_count: int = 1
    usage: Usage = "licensed"
    meter: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "interval": self.interval,
            "interval_count": self.interval_count,
            "usage": self.usage,
        }
        _put(out, "meter", self.meter)
        return out


@dataclass(frozen=True)
class TransformQuantity:
    """Divide the quantity before pricing, rounding up or down."""

    divide_by: int
    round: Rounding

    def to_dict(self) -> dict[str, Any]:
        return {"divide_by": self.divide_by, "round": self.round}


@dataclass(frozen=True)
class CustomUnitAmount:
    """Pay what you want: the customer enters the amount at checkout, within these
    bounds (minor units, each optional). Only on a one-time price."""

    minimum: int | None = None
    maximum: int | None = None
    preset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "minimum", self.minimum)
        _put(out, "maximum", self.maximum)
        _put(out, "preset", self.preset)
        return out


@dataclass(frozen=True)
class CurrencyOption:
    """The price in one more currency: an amount of the same kind as the price's own
    (a unit amount, tiers, or pay-what-you-want bounds), in that currency's minor units.
    ``tax_behavior`` None: left as the account has it."""

    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    custom_unit_amount: CustomUnitAmount | None = None
    tax_behavior: TaxBehavior | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _put(out, "unit_amount", self.unit_amount)
        if self.unit_amount_decimal is not None:
            out["unit_amount_decimal"] = decimal_text(self.unit_amount_decimal)
        if self.tiers:
            out["tiers"] = [tier.to_dict() for tier in self.tiers]
        if self.custom_unit_amount is not None:
            out["custom_unit_amount"] = self.custom_unit_amount.to_dict()
        _put(out, "tax_behavior", self.tax_behavior)
        return out


@dataclass(frozen=True)
class Price:
    """A price, identified by its lookup key. ``tax_behavior`` None: left as the
    account has it (one set in the Dashboard is not undone)."""

    lookup_key: str
    product: str
    currency: str
    nickname: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    active: bool = True
    default: bool = False
    adopt: bool = False
    id: str | None = None
    recurring: Recurring | None = None
    unit_amount: int | None = None
    unit_amount_decimal: Decimal | None = None
    tiers_mode: TiersMode | None = None
    tiers: tuple[Tier, ...] = ()
    transform_quantity: TransformQuantity | None = None
    tax_behavior: TaxBehavior | None = None
    currency_options: Mapping[str, CurrencyOption] = field(default_factory=dict)
    """Amounts in other currencies, by lower-case currency code (not the price's own)."""
    custom_unit_amount: CustomUnitAmount | None = None
    existing_subscriptions: ExistingSubscriptions | None = None
    """What becomes of the subscriptions on the account's price when this declaration
    replaces or archives it: ``grandfather`` (they stay on it) or ``migrate`` (moved to
    the new price at their period end). None: they stay, and plan says so."""

    @property
    def address(self) -> str:
        return f"price.{self.lookup_key}"

    @property
    def is_metered(self) -> bool:
        return self.recurring is not None and self.recurring.usage == "metered"

    @property
    def meter(self) -> str | None:
        return self.recurring.meter if self.recurring else None

    @property
    def terms(self) -> Terms | None:
        """(currency, interval, interval count) of a recurring price; None when one-time."""
        if self.recurring is None:
            return None
        return (self.currency, self.recurring.interval, self.recurring.interval_count)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lookup_key": self.lookup_key,
            "product": self.product,
            "currency": self.currency,
        }
        _put(out, "nickname", self.nickname)
        out["metadata"] = dict(self.metadata)
        out["active"] = self.active
        out["default"] = self.default
        out["adopt"] = self.adopt
        _put(out, "id", self.id)
        if self.recurring is not None:
            out["recurring"] = self.recurring.to_dict()
        _put(out, "unit_amount", self.unit_amount)
        if self.unit_amount_decimal is not None:
            out["unit_amount_decimal"] = decimal_text(self.unit_amount_decimal)
        _put(out, "tiers_mode", self.tiers_mode)
        if self.tiers:
            out["tiers"] = [tier.to_dict() for tier in self.tiers]
        if self.transform_quantity is not None:
            out["transform_quantity"] = self.transform_quantity.to_dict()
        _put(out, "tax_behavior", self.tax_behavior)
        _put(out, "existing_subscriptions", self.existing_subscriptions)
        if self.currency_options:
            out["currency_options"] = {
                code: self.currency_options[code].to_dict()
                for code in sorted(self.currency_options)
            }
        if self.custom_unit_amount is not None:
            out["custom_unit_amount"] = self.custom_unit_amount.to_dict()
        return out


def alert_address(meter: str, title: str) -> str:
    """Alerts are named by meter and title: ``alert.video_seconds["Over 50k"]``."""
    return f"alert.{meter}[{json.dumps(title, ensure_ascii=False)}]"


@dataclass(frozen=True)
class Alert:
    """A usage-threshold alert, identified by its title within its meter."""

    title: str
    meter: str
    threshold: int
    recurrence: Literal["one_time"] = "one_time"
    customer: str | None = None
    active: bool = True

    @property
    def address(self) -> str:
        return alert_address(self.meter, self.title)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "meter": self.meter,
            "threshold": self.threshold,
            "recurrence": self.recurrence,
        }
        _put(out, "customer", self.customer)
        out["active"] = self.active
        return out


@dataclass(frozen=True)
class Feature:
    """An entitlement feature (``/v1/entitlements/features``), identified by its lookup
    key: what a customer's subscription entitles them to. Retired by archiving, which
    Stripe makes final."""

    lookup_key: str
    name: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    active: bool = True

    @property
    def address(self) -> str:
        return f"feature.{self.lookup_key}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "lookup_key": self.lookup_key,
            "name": self.name,
            "metadata": dict(self.metadata),
            "active": self.active,
        }


PORTAL_SETTINGS = ("business_profile", "default_return_url", "login_page", "features")
"""A portal configuration's settings other than its name, metadata and ``active``: each
managed only when billing.yaml states it (and, in a hash, only the keys it states)."""


@dataclass(frozen=True)
class PortalConfiguration:
    """A customer portal configuration (``/v1/billing_portal/configurations``), identified
    by its name. ``settings`` holds the settings billing.yaml states, as stated (the
    keys of ``PORTAL_SETTINGS``; ``features`` always): what it leaves out keeps Stripe's
    value. Subscription updates name products by id and prices by lookup key."""

    name: str
    settings: Mapping[str, Any]
    metadata: Mapping[str, str] = field(default_factory=dict)
    active: bool = True

    @property
    def address(self) -> str:
        return f"portal.{self.name}"

    @property
    def products(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(product id, price lookup keys) a customer may switch between, as declared."""
        update = self.settings.get("features", {}).get("subscription_update") or {}
        return tuple(
            (entry["product"], tuple(entry["prices"])) for entry in update.get("products") or ()
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        out.update({k: self.settings[k] for k in PORTAL_SETTINGS if k in self.settings})
        out["metadata"] = dict(self.metadata)
        out["active"] = self.active
        return out


@dataclass(frozen=True)
class ProductFeature:
    """An entitlement feature attached to a product (``/v1/products/{id}/features``),
    declared by the product's ``features:``; identified by the two."""

    product: str
    feature: str
    """The feature's lookup key."""

    @property
    def identity(self) -> str:
        return f"{self.product}/{self.feature}"

    @property
    def address(self) -> str:
        return f"product_feature.{self.identity}"


@dataclass(frozen=True)
class Moment:
    """A point in time billing.yaml states as RFC 3339 text (``2026-06-30T23:59:59Z``) and
    Stripe as a Unix time. ``at`` is None for text that names no real time (refused at
    validate); ``text`` is then what was written, else the canonical UTC text."""

    at: int | None
    text: str

    @classmethod
    def parse(cls, text: str) -> Moment:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return cls(None, text)
        return cls.of(int(moment.timestamp()))

    @classmethod
    def of(cls, at: int) -> Moment:
        """The moment of a Unix time, in its canonical text."""
        return cls(at, datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


CouponDuration = Literal["once", "repeating", "forever"]


@dataclass(frozen=True)
class Coupon:
    """A coupon (``/v1/coupons``), identified by the id billing.yaml gives it (the code a
    customer may type, ``SPRING25``). Only its name, metadata and currency options change
    in place; it cannot be archived, only deleted (``active: false``)."""

    id: str
    duration: CouponDuration = "once"
    name: str | None = None
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    currency_options: Mapping[str, int] = field(default_factory=dict)
    """Amounts off in other currencies than ``currency``, by currency."""
    duration_in_months: int | None = None
    max_redemptions: int | None = None
    redeem_by: Moment | None = None
    applies_to: tuple[str, ...] | None = None
    """The product ids it is restricted to; None: every product."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    active: bool = True

    @property
    def address(self) -> str:
        return f"coupon.{self.id}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "name", self.name)
        if self.percent_off is not None:  # a number, as billing.yaml writes it
            whole = self.percent_off == self.percent_off.to_integral_value()
            out["percent_off"] = int(self.percent_off) if whole else float(self.percent_off)
        _put(out, "amount_off", self.amount_off)
        _put(out, "currency", self.currency)
        if self.currency_options:
            out["currency_options"] = {
                currency: {"amount_off": amount}
                for currency, amount in sorted(self.currency_options.items())
            }
        out["duration"] = self.duration
        _put(out, "duration_in_months", self.duration_in_months)
        _put(out, "max_redemptions", self.max_redemptions)
        if self.redeem_by is not None:
            out["redeem_by"] = self.redeem_by.text
        if self.applies_to is not None:
            out["applies_to"] = {"products": list(self.applies_to)}
        out["metadata"] = dict(self.metadata)
        out["active"] = self.active
        return out


@dataclass(frozen=True)
class PromotionCode:
    """A promotion code (``/v1/promotion_codes``): a code customers type to redeem a
    coupon, identified by its code (Stripe keeps codes unique, regardless of case, among
    active codes). Only ``active`` and metadata change; anything else needs a new code
    object, so the old one is deactivated and a new one takes the code."""

    code: str
    coupon: str
    active: bool = True
    customer: str | None = None
    max_redemptions: int | None = None
    expires_at: Moment | None = None
    first_time_transaction: bool = False
    minimum_amount: int | None = None
    minimum_amount_currency: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"promotion_code.{self.code}"

    @property
    def identity(self) -> str:
        """The code as Stripe compares codes: regardless of case."""
        return self.code.lower()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "coupon": self.coupon}
        _put(out, "customer", self.customer)
        _put(out, "max_redemptions", self.max_redemptions)
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at.text
        restrictions: dict[str, Any] = {}
        if self.first_time_transaction:
            restrictions["first_time_transaction"] = True
        _put(restrictions, "minimum_amount", self.minimum_amount)
        _put(restrictions, "minimum_amount_currency", self.minimum_amount_currency)
        if restrictions:
            out["restrictions"] = restrictions
        out["metadata"] = dict(self.metadata)
        out["active"] = self.active
        return out


@dataclass(frozen=True)
class SwitchAt:
    """When a subscription switches price: ``period_end``, ``now`` or a fixed epoch time."""

    kind: Literal["period_end", "now", "at"]
    at: int | None = None
    text: str | None = None

    def to_value(self) -> str:
        if self.kind == "at":
            assert self.text is not None
            return self.text
        return self.kind


DEFER_WITHIN_SECONDS = 3600
_DURATION_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_text(seconds: int) -> str:
    """``3600`` -> ``1h``: the largest unit that divides it exactly (``0`` for none)."""
    if seconds == 0:
        return "0"
    unit, size = next((u, n) for u, n in _DURATION_UNITS if seconds % n == 0)
    return f"{seconds // size}{unit}"


def duration_seconds(text: str) -> int:
    """``90m`` -> ``5400``; the inverse of :func:`duration_text`."""
    if text == "0":
        return 0
    return int(text[:-1]) * dict(_DURATION_UNITS)[text[-1]]


@dataclass(frozen=True)
class Migration:
    """Move subscriptions from one recurring price to another (usually from a legacy
    usage-record price to a meter-backed one), or several prices to others at once
    (``also``). ``quantity``: the moved item's, on a licensed ``to_price`` (default: the
    old item's; the sum of those merged into one)."""

    name: str
    from_price: str
    to_price: str
    switch_at: SwitchAt = SwitchAt("period_end")
    subscriptions: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    batch: int | None = None
    require_usage_parity: Decimal | None = None
    paused: bool = False
    quantity: int | None = None
    defer_within: int = DEFER_WITHIN_SECONDS
    """Seconds before a renewal within which a subscription is not scheduled to switch at
    that renewal (it waits for the next one): a schedule written as Stripe renews the
    subscription would race it."""
    allow_tax_behavior_change: bool = False
    """Move subscriptions between prices whose tax behaviours differ (inclusive and
    exclusive): what the customer pays changes with the tax, so it is blocked unless
    declared."""
    also: tuple[tuple[str, str], ...] = ()
    """Further ``(from_price, to_price)`` pairs moved in the same schedule write as the
    first (billing.yaml's ``prices:``): a subscription holding items on several of the
    ``from`` prices has them all moved together, and items moving to one price become
    one item (plan consolidation)."""

    declared_by: tuple[str | int, ...] | None = None
    """Where billing.yaml asks for a migration it does not declare (a price's
    ``existing_subscriptions``): its errors are reported there. None when declared."""

    @property
    def address(self) -> str:
        return f"migration.{self.name}"

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every ``(from_price, to_price)`` pair, the first one first."""
        return ((self.from_price, self.to_price), *self.also)

    def to_dict(self) -> dict[str, Any]:
        ends: dict[str, Any] = (
            {"prices": dict(self.pairs)}
            if self.also
            else {"from_price": self.from_price, "to_price": self.to_price}
        )
        out: dict[str, Any] = {
            **ends,
            "switch_at": self.switch_at.to_value(),
            "subscriptions": "all" if self.subscriptions is None else list(self.subscriptions),
            "exclude": list(self.exclude),
        }
        _put(out, "batch", self.batch)
        if self.require_usage_parity is not None:
            out["require_usage_parity"] = f"{decimal_text(self.require_usage_parity)}%"
        out["paused"] = self.paused
        _put(out, "quantity", self.quantity)
        if self.defer_within != DEFER_WITHIN_SECONDS:
            out["defer_within"] = duration_text(self.defer_within)
        if self.allow_tax_behavior_change:
            out["allow_tax_behavior_change"] = True
        return out


@dataclass(frozen=True)
class Desired:
    """Everything billing.yaml declares, in declaration order."""

    mode: Mode
    products: tuple[Product, ...] = ()
    meters: tuple[Meter, ...] = ()
    prices: tuple[Price, ...] = ()
    alerts: tuple[Alert, ...] = ()
    features: tuple[Feature, ...] = ()
    portal_configurations: tuple[PortalConfiguration, ...] = ()
    coupons: tuple[Coupon, ...] = ()
    promotion_codes: tuple[PromotionCode, ...] = ()
    migrations: tuple[Migration, ...] = ()
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """The canonical billing.yaml document for this state (every default spelled out)."""
        out: dict[str, Any] = {"version": self.version, "mode": self.mode}
        out["products"] = [p.to_dict() for p in self.products]
        out["meters"] = [m.to_dict() for m in self.meters]
        out["prices"] = [p.to_dict() for p in self.prices]
        out["alerts"] = [a.to_dict() for a in self.alerts]
        if self.features:  # absent when empty: a file without features keeps its hash
            out["features"] = [f.to_dict() for f in self.features]
        if self.portal_configurations:  # likewise
            out["portal_configurations"] = [c.to_dict() for c in self.portal_configurations]
        if self.coupons:  # absent when empty, as features
            out["coupons"] = [c.to_dict() for c in self.coupons]
        if self.promotion_codes:  # likewise
            out["promotion_codes"] = [p.to_dict() for p in self.promotion_codes]
        out["migrations"] = {m.name: m.to_dict() for m in self.migrations}
        return out

    def default_prices(self) -> dict[str, str]:
        """Each product's declared default price: product id -> lookup key."""
        return {p.product: p.lookup_key for p in self.prices if p.default}

    def config_hash(self) -> str:
        """A hash of the meaning of the config: formatting and comments do not change it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def summary(self) -> str:
        parts = [
            (len(self.products), "product"),
            (len(self.meters), "meter"),
            (len(self.prices), "price"),
            (len(self.alerts), "alert"),
            (len(self.migrations), "migration"),
        ]
        if self.features:
            parts.insert(4, (len(self.features), "feature"))
        if self.portal_configurations:
            parts.insert(-1, (len(self.portal_configurations), "portal configuration"))
        if self.coupons:
            parts.insert(len(parts) - 1, (len(self.coupons), "coupon"))
        if self.promotion_codes:
            parts.insert(len(parts) - 1, (len(self.promotion_codes), "promotion code"))
        return ", ".join(f"{n} {word}{'s' if n != 1 else ''}" for n, word in parts)
