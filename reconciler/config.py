"""Load billing.yaml: parse with marks, validate against the schema, check semantics.

Every problem is reported with file, line, column and YAML path, all of them
at once, and nothing is returned unless the whole document is sound.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path as FilePath
from typing import Any, cast

import jsonschema
from jsonschema.exceptions import ValidationError

from reconciler.errors import ConfigError, ConfigErrors
from reconciler.inputs import InputError, read_text
from reconciler.kinds.registry import REGISTRY
from reconciler.model import (
    DEFER_WITHIN_SECONDS,
    MANAGED_BY_KEY,
    Alert,
    Coupon,
    CurrencyOption,
    CustomUnitAmount,
    Desired,
    Feature,
    Meter,
    Migration,
    PortalConfiguration,
    Price,
    Product,
    PromotionCode,
    SwitchAt,
    Tier,
    duration_seconds,
    duration_text,
    terms_text,
)
from reconciler.money import currency_exponent, format_money
from reconciler.yamlsource import Located, Mark, Path, format_path, parse_yaml, printable

__all__ = [
    "MAX_ERRORS",
    "MAX_FILE_BYTES",
    "billing_schema",
    "desired_from_data",
    "load_config",
    "load_text",
    "locate",
    "locate_field",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_DECIMAL_PLACES = 12
MAX_ERRORS = 100
"""At most this many problems are listed (a hostile file could otherwise yield millions)."""
_INDEX = re.compile(r"\b(products|meters|prices|alerts|coupons|promotion_codes)\[(\d+)\]")
_MAX_INTERVAL_COUNT = {"day": 1095, "week": 156, "month": 36, "year": 3}
_NO_METER_EQUIVALENT = {
    "max": "Billing Meters have no 'max' formula",
    "last_ever": "'last_ever' was a legacy usage-record aggregation with no meter equivalent",
    "last_during_period": "'last_during_period' was a legacy usage-record aggregation; "
    "meters offer 'last'",
}


@cache
def billing_schema() -> dict[str, Any]:
    """The billing.yaml JSON Schema shipped inside the package."""
    text = resources.files("reconciler").joinpath("schemas/billing.schema.json").read_text("utf-8")
    return cast(dict[str, Any], json.loads(text))


def load_config(path: FilePath | str) -> Desired:
    """Read and check a billing.yaml file; raise ConfigErrors listing every problem.

    Reading is bounded (:func:`reconciler.inputs.read_text`): a regular file of
    at most MAX_FILE_BYTES of UTF-8.
    """
    try:
        text = read_text(path, limit=MAX_FILE_BYTES, label="billing.yaml")
    except InputError as exc:
        raise ConfigErrors([exc.problem]) from None
    return load_text(text, str(path))


def locate(path: FilePath | str, yaml_path: Path) -> tuple[int, int] | None:
    """The line and column of ``yaml_path`` (its value) in the billing.yaml at ``path``,
    read as :func:`load_config` reads it; None when the file cannot be read or parsed."""
    try:
        text = read_text(path, limit=MAX_FILE_BYTES, label="billing.yaml")
    except InputError:
        return None
    located = parse_yaml(text.removeprefix("\ufeff"))
    if located.problems or not located.value_marks:
        return None
    mark = located.mark_of(tuple(yaml_path))
    return mark.line, mark.column


def locate_field(
    path: FilePath | str, address: str, field: tuple[str | int, ...] = ()
) -> str | None:
    """``billing.yaml:17:5: alerts[0].customer``: where a field of the object at ``address``
    (``alert.video_seconds["Big customer"]``) is declared; None if the file or the object
    cannot be found."""
    try:
        desired = load_config(path)
    except ConfigErrors:
        return None
    found: Path | None = None
    Declared = Product | Meter | Price | Alert | PortalConfiguration | Coupon | PromotionCode
    sections: list[tuple[str, tuple[Declared, ...]]] = [
        ("products", desired.products),
        ("meters", desired.meters),
        ("prices", desired.prices),
        ("alerts", desired.alerts),
        ("portal_configurations", desired.portal_configurations),
        ("coupons", desired.coupons),
        ("promotion_codes", desired.promotion_codes),
    ]
    for section, items in sections:
        for index, item in enumerate(items):
            if item.address == address:
                found = (section, index, *field)
    for migration in desired.migrations:
        if migration.address == address:
            found = ("migrations", migration.name, *field)
    where = locate(path, found) if found is not None else None
    if found is None or where is None:
        return None
    return f"{path}:{where[0]}:{where[1]}: {printable(format_path(found))}"


def load_text(text: str, source: str = "billing.yaml") -> Desired:
    """Check billing.yaml text; ``source`` names it in error messages."""
    located = parse_yaml(text.removeprefix("\ufeff"))
    if located.problems:
        reporter = _Reporter(Located(data=None), source)
        for problem in located.problems:
            reporter.add_at(problem.mark, problem.path, problem.message)
        raise reporter.failure()
    if located.data is None:
        raise ConfigErrors([ConfigError(source, 1, 1, "", "file is empty; expected a mapping")])
    return _check(located, source)


def desired_from_data(data: Any, source: str = "<data>") -> Desired:
    """Check already-parsed data (no line numbers): the inverse of ``Desired.to_dict``."""
    return _check(Located(data=data), source)


_WholeNumbersValidator: Any = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
"""The schema's validator, but ``integer`` is a whole number as written: JSON Schema
takes ``3.0`` for 3, and Stripe refuses ``quantity=3.0`` only at the write, after
other writes of the same apply."""


def _check(located: Located, source: str) -> Desired:
    reporter = _Reporter(located, source)
    data = located.data
    if not isinstance(data, dict):
        reporter.add((), f"the document must be a mapping, not {_kind(data)}")
        raise reporter.failure()
    _check_strings(data, (), reporter)
    amounts = _check_whole_amounts(data, reporter)
    for error in _WholeNumbersValidator(billing_schema()).iter_errors(data):
        if reporter.full:
            reporter.more = True
            break
        if tuple(error.absolute_path) in amounts:  # already explained with its fix
            continue
        _report_schema_error(error, reporter)
        reporter.paths.append(tuple(error.absolute_path))
    if not reporter.errors:
        desired = _build(data)
        _check_semantics(desired, reporter)
        if reporter.errors:
            raise reporter.failure()
        return desired
    if not reporter.full:  # every stage at once: the semantics of what passed the schema
        _check_what_passed(data, reporter)
    raise reporter.failure()


_SECTIONS = (
    "products",
    "meters",
    "prices",
    "alerts",
    "portal_configurations",
    "coupons",
    "promotion_codes",
    "migrations",
)
_REFERENCES = {
    "products": ("is not declared in products",),
    "meters": ("is not declared in meters",),
    "prices": ("is not the lookup_key of a price declared in prices",),
    "coupons": ("is not declared in coupons",),
}
"""The semantic messages that say a section lacks a name: not said about a section some
of whose entries were set aside for their schema errors (the name may be among them)."""


def _check_what_passed(data: dict[str, Any], reporter: _Reporter) -> None:
    """Semantic checks on the entries with no problem so far, reported at their own
    places: one run shows a schema error and the semantic errors beside it. Entries
    with a problem are set aside, and so is a section that is not a list (a mapping for
    migrations); a reference into a section with entries set aside is not judged."""
    bad: dict[str, set[Any] | None] = {}
    for path in reporter.paths:
        if path and path[0] in _SECTIONS:
            section = str(path[0])
            if len(path) == 1:
                bad[section] = None  # the section itself is wrong: all of it set aside
                continue
            entries = bad.setdefault(section, set())
            if entries is not None:
                entries.add(path[1])
    kept: dict[str, Any] = {
        "mode": data.get("mode") if data.get("mode") in ("test", "live") else "test",
        "version": 1,
    }
    positions: dict[str, list[Any]] = {}
    for section in _SECTIONS:
        value = data.get(section)
        skipped = bad.get(section, set())
        if skipped is None or value is None:
            continue
        if section == "migrations":
            if not isinstance(value, dict):
                bad[section] = None
                continue
            kept[section] = {k: v for k, v in value.items() if k not in skipped}
            continue
        if not isinstance(value, list):
            bad[section] = None
            continue
        positions[section] = [i for i in range(len(value)) if i not in skipped]
        kept[section] = [value[i] for i in positions[section]]
    try:
        desired = _build(kept)
    except (KeyError, TypeError, ValueError, InvalidOperation):  # pragma: no cover - defensive
        return
    unjudged = tuple(
        m for s, found in bad.items() if found != set() for m in _REFERENCES.get(s, ())
    )
    _check_semantics(desired, _Positioned(reporter, positions, unjudged))


class _Reporter:
    """Collects located errors, each once, at most MAX_ERRORS of them, printable."""

    def __init__(self, located: Located, source: str) -> None:
        self.located = located
        self.source = source
        self.errors: list[ConfigError] = []
        self.seen: set[ConfigError] = set()
        self.more = False
        self.paths: list[Path] = []
        """Every path a problem was reported at."""

    @property
    def full(self) -> bool:
        return len(self.errors) >= MAX_ERRORS

    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        self.paths.append(path)
        mark: Mark | None = None
        if self.located.value_marks:
            mark = self.located.mark_of(path, key=key)
        self.add_at(mark, path, message)

    def add_at(self, mark: Mark | None, path: Path, message: str) -> None:
        line, column = (mark.line, mark.column) if mark else (0, 0)
        where = printable(format_path(path))
        error = ConfigError(self.source, line, column, where, printable(message))
        if error in self.seen:  # one schema rule can fail once per offending field
            return
        self.seen.add(error)
        if self.full:
            self.more = True
        else:
            self.errors.append(error)

    def failure(self) -> ConfigErrors:
        """Every error found; past MAX_ERRORS, a first line saying more were left out."""
        errors = list(self.errors)
        if self.more:
            message = f"more than {MAX_ERRORS} problems; the first {MAX_ERRORS} found are listed"
            errors.append(ConfigError(self.source, 0, 0, "", message))
        return ConfigErrors(errors)


class _Positioned(_Reporter):
    """A reporter for checks run on the entries kept: positions mapped back to the
    file's own (``prices[0]`` of the kept is ``prices[2]`` of the file), references into
    sections with entries set aside left unsaid."""

    def __init__(
        self, reporter: _Reporter, positions: dict[str, list[Any]], unjudged: tuple[str, ...]
    ) -> None:
        super().__init__(reporter.located, reporter.source)
        self.reporter = reporter
        self.positions = positions
        self.unjudged = unjudged

    def _position(self, section: str, index: int) -> Any:
        kept = self.positions.get(section)
        return kept[index] if kept is not None and 0 <= index < len(kept) else index

    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        if any(reference in message for reference in self.unjudged):
            return
        if len(path) >= 2 and isinstance(path[1], int):
            path = (path[0], self._position(str(path[0]), path[1]), *path[2:])
        message = _INDEX.sub(
            lambda m: f"{m.group(1)}[{self._position(m.group(1), int(m.group(2)))}]", message
        )
        self.reporter.add(path, message, key=key)


def _kind(value: Any) -> str:
    if isinstance(value, float):
        return f"the decimal number {value!r}" if math.isfinite(value) else f"{value!r}"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "empty (null)",
    }.get(type(value), type(value).__name__)


_SCHEMA_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
    "number": "a number",
}


def _check_strings(value: Any, path: Path, reporter: _Reporter) -> None:
    """Control characters in any string or key are refused before anything else."""
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_control(key):
                reporter.add((*path, key), "key contains control characters", key=True)
            _check_strings(item, (*path, key), reporter)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, (*path, index), reporter)
    elif isinstance(value, str) and _has_control(value):
        reporter.add(path, "contains control characters (tabs, newlines or other invisibles)")


_WHOLE_AMOUNTS = ("unit_amount", "flat_amount")


def _check_whole_amounts(data: dict[str, Any], reporter: _Reporter) -> set[Path]:
    """``unit_amount: 99.00`` (a habit from writing dollars) is refused with both fixes:
    YAML reads it as a number the schema would take as 99, i.e. 99 cents. Returns the
    paths reported, so the schema's own "must be a whole number" is not said twice."""
    found: set[Path] = set()
    prices = data.get("prices")
    for index, price in enumerate(prices if isinstance(prices, list) else []):
        if not isinstance(price, dict):
            continue
        named = price.get("currency")
        currency = named if isinstance(named, str) else "usd"
        places = _amount_places(("prices", index), price, currency)
        options = price.get("currency_options")
        for code, option in options.items() if isinstance(options, dict) else ():
            if isinstance(option, dict):
                where = ("prices", index, "currency_options", code)
                places += _amount_places(where, option, str(code))
        for at, holder, in_currency in places:
            for name in _WHOLE_AMOUNTS:
                value = holder.get(name)
                if isinstance(value, float):
                    path = (*at, name)
                    found.add(path)
                    reporter.add(path, _whole_amount_message(name, value, in_currency))
    return found


def _amount_places(
    at: Path, holder: dict[str, Any], currency: str
) -> list[tuple[Path, dict[str, Any], str]]:
    """A price (or currency option) and its tiers: where whole amounts are written."""
    places: list[tuple[Path, dict[str, Any], str]] = [(at, holder, currency)]
    tiers = holder.get("tiers")
    for number, tier in enumerate(tiers if isinstance(tiers, list) else []):
        if isinstance(tier, dict):
            places.append(((*at, "tiers", number), tier, currency))
    return places


def _whole_amount_message(name: str, value: float, currency: str) -> str:
    """``unit_amount: 9900 for $99.00, or unit_amount_decimal: "99.0" for $0.99``."""
    amount = Decimal(str(value))
    minor = amount.scaleb(currency_exponent(currency))
    fixes = [f'{name}_decimal: "{amount}" for {format_money(amount, currency)}']
    if minor == minor.to_integral_value():
        fixes.insert(0, f"{name}: {minor:.0f} for {format_money(int(minor), currency)}")
    unit = "minor units (cents)" if currency_exponent(currency) == 2 else "minor units"
    return f"is in {unit} and must be a whole number, not {amount}; write " + ", or ".join(fixes)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def _report_schema_error(error: ValidationError, reporter: _Reporter) -> None:
    path: Path = tuple(error.absolute_path)
    instance: Any = error.instance
    expected: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("x-error")
    if "propertyNames" in error.relative_schema_path:
        name = str(instance)
        reporter.add((*path, name), custom or error.message, key=True)
        return
    match error.validator:
        case "additionalProperties":
            allowed = sorted(schema.get("properties", {}))
            for extra in sorted(set(instance) - set(allowed)):
                reporter.add(
                    (*path, extra),
                    f"unknown field '{extra}' (expected one of: {', '.join(allowed)})",
                    key=True,
                )
        case "required":
            for name in cast(list[str], expected):
                if isinstance(instance, dict) and name not in instance:
                    reporter.add(path, f"missing required field '{name}'")
        case "type" if custom:
            reporter.add(path, f"{custom}, not {_kind(instance)}")
        case "type":
            wanted = expected
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            expected = " or ".join(_SCHEMA_TYPES.get(n, n) for n in names)
            reporter.add(path, f"must be {expected}, not {_kind(instance)}")
        case "enum" if path[-1:] == ("aggregation",) and instance in _NO_METER_EQUIVALENT:
            reason = _NO_METER_EQUIVALENT[instance]
            message = f"'{instance}' is not supported: {reason} (use sum, count or last)"
            reporter.add(path, message)
        case "enum":
            options = ", ".join(str(v) for v in expected)
            reporter.add(path, f"must be one of {options}, not {instance!r}")
        case "minimum" | "maximum":
            word = "at least" if error.validator == "minimum" else "at most"
            reporter.add(path, f"must be {word} {expected}, not {instance}")
        case "minLength" if expected == 1:
            reporter.add(path, "must not be empty")
        case "minLength" | "maxLength":
            word = "at least" if error.validator == "minLength" else "at most"
            reporter.add(
                path,
                f"must be {word} {expected} characters (is {len(instance)})",
            )
        case "maxProperties":
            reporter.add(path, f"has {len(instance)} keys; at most {expected} allowed")
        case "minItems":
            reporter.add(path, f"must have at least {expected} item(s)")
        case "maxItems":
            reporter.add(path, f"must have at most {expected} items")
        case "uniqueItems":
            reporter.add(path, "must not repeat an item")
        case _ if custom and isinstance(instance, dict):
            reporter.add(path, custom)
        case _ if custom:
            reporter.add(path, f"{custom}, not {instance!r}")
        case _:
            reporter.add(path, error.message)


def _build(data: dict[str, Any]) -> Desired:
    """Turn schema-valid data into the model, filling defaults."""
    catalog = {
        spec.section: tuple(spec.build(entry) for entry in data.get(spec.section, []))
        for spec in REGISTRY
        if not spec.nested
    }
    migrations = tuple(_build_migration(name, m) for name, m in data.get("migrations", {}).items())
    return Desired(mode=data["mode"], **catalog, migrations=migrations, version=data["version"])


def _parse_switch_at(text: str) -> SwitchAt:
    if text in ("period_end", "now"):
        return SwitchAt(kind=cast(Any, text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return SwitchAt(kind="at", at=None, text=text)
    return SwitchAt(kind="at", at=int(moment.timestamp()), text=text)


def _build_migration(name: str, m: dict[str, Any]) -> Migration:
    subscriptions = m.get("subscriptions", "all")
    parity = m.get("require_usage_parity")
    pairs = list(m["prices"].items()) if "prices" in m else [(m["from_price"], m["to_price"])]
    return Migration(
        name=name,
        from_price=pairs[0][0],
        to_price=pairs[0][1],
        also=tuple(pairs[1:]),
        switch_at=_parse_switch_at(m.get("switch_at", "period_end")),
        subscriptions=None if subscriptions == "all" else tuple(subscriptions),
        exclude=tuple(m.get("exclude", [])),
        batch=m.get("batch"),
        require_usage_parity=Decimal(parity[:-1]) if parity is not None else None,
        paused=m.get("paused", False),
        quantity=m.get("quantity"),
        allow_tax_behavior_change=m.get("allow_tax_behavior_change", False),
        defer_within=duration_seconds(m.get("defer_within", duration_text(DEFER_WITHIN_SECONDS))),
    )


def _duplicates(items: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any, int]]:
    """(index, key, first index) for every key seen before."""
    first: dict[Any, int] = {}
    for index, key in items:
        if key in first:
            yield index, key, first[key]
        else:
            first[key] = index


def _check_semantics(desired: Desired, reporter: _Reporter) -> None:
    for check in _SEMANTIC_CHECKS:
        check(desired, reporter)


def _check_identities(desired: Desired, reporter: _Reporter) -> None:
    for i, key, first in _duplicates(enumerate(p.id for p in desired.products)):
        reporter.add(
            ("products", i, "id"), f"duplicate product id '{key}' (also products[{first}])"
        )
    for i, key, first in _duplicates(enumerate(m.event_name for m in desired.meters)):
        reporter.add(
            ("meters", i, "event_name"), f"duplicate event_name '{key}' (also meters[{first}])"
        )
    for i, key, first in _duplicates(enumerate(p.lookup_key for p in desired.prices)):
        reporter.add(
            ("prices", i, "lookup_key"), f"duplicate lookup_key '{key}' (also prices[{first}])"
        )
    for i, key, first in _duplicates(enumerate(f.lookup_key for f in desired.features)):
        reporter.add(
            ("features", i, "lookup_key"),
            f"duplicate feature lookup_key '{key}' (also features[{first}])",
        )
    for i, key, first in _duplicates(enumerate(c.name for c in desired.portal_configurations)):
        reporter.add(
            ("portal_configurations", i, "name"),
            f"duplicate portal configuration name '{key}' (also portal_configurations[{first}])",
        )
    for i, key, first in _duplicates(enumerate(c.id for c in desired.coupons)):
        reporter.add(("coupons", i, "id"), f"duplicate coupon id '{key}' (also coupons[{first}])")
    for i, _code, first in _duplicates(enumerate(p.identity for p in desired.promotion_codes)):
        reporter.add(
            ("promotion_codes", i, "code"),
            f"duplicate promotion code '{desired.promotion_codes[i].code}' (codes are unique "
            f"regardless of case; also promotion_codes[{first}])",
        )
    for i, key, first in _duplicates(enumerate((a.meter, a.title) for a in desired.alerts)):
        reporter.add(
            ("alerts", i, "title"),
            f"duplicate alert title '{key[1]}' on meter '{key[0]}' (also alerts[{first}])",
        )


def _check_metadata(desired: Desired, reporter: _Reporter) -> None:
    Owner = Product | Price | Feature | PortalConfiguration | Coupon | PromotionCode
    owners: list[tuple[str, int, Owner]] = [
        ("products", i, p) for i, p in enumerate(desired.products)
    ]
    owners += [("prices", i, p) for i, p in enumerate(desired.prices)]
    owners += [("features", i, f) for i, f in enumerate(desired.features)]
    owners += [("portal_configurations", i, c) for i, c in enumerate(desired.portal_configurations)]
    owners += [("coupons", i, c) for i, c in enumerate(desired.coupons)]
    owners += [("promotion_codes", i, p) for i, p in enumerate(desired.promotion_codes)]
    for section, index, owner in owners:
        if MANAGED_BY_KEY in owner.metadata:
            reporter.add(
                (section, index, "metadata", MANAGED_BY_KEY),
                f"'{MANAGED_BY_KEY}' is reserved: stripe-reconcile sets it on what it manages",
                key=True,
            )


def _decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_decimal(value: Decimal | None, path: Path, reporter: _Reporter) -> None:
    if value is None:
        return
    try:
        places = _decimal_places(value)
    except InvalidOperation:  # pragma: no cover - the schema pattern admits only plain decimals
        places = MAX_DECIMAL_PLACES + 1
    if places > MAX_DECIMAL_PLACES:
        reporter.add(
            path,
            f"has {places} decimal places; Stripe accepts at most {MAX_DECIMAL_PLACES}",
        )


def _check_prices(desired: Desired, reporter: _Reporter) -> None:
    products = {p.id: p for p in desired.products}
    meters = {m.event_name: m for m in desired.meters}
    defaults: dict[str, int] = {}
    for i, price in enumerate(desired.prices):
        at: Path = ("prices", i)
        if price.product not in products:
            reporter.add((*at, "product"), f"product '{price.product}' is not declared in products")
        elif price.active and not products[price.product].active:
            reporter.add(
                (*at, "product"),
                f"an active price cannot belong to product '{price.product}', "
                "which is declared inactive",
            )
        _check_price_recurring(price, at, meters, reporter)
        _check_price_amounts(price, at, reporter)
        _check_pay_what_you_want(price, at, reporter)
        _check_currency_options(price, at, reporter)
        if price.existing_subscriptions == "migrate" and not price.active:
            reporter.add(
                (*at, "existing_subscriptions"),
                "migrate moves subscriptions to this price, which is declared archived: "
                "use grandfather, or declare the price that takes them",
            )
        elif price.existing_subscriptions == "migrate" and price.recurring is None:
            reporter.add(
                (*at, "existing_subscriptions"),
                "migrate moves subscriptions, and a one-time price has none",
            )
        if price.default:
            if price.product in defaults:
                reporter.add(
                    (*at, "default"),
                    f"product '{price.product}' already has a default price "
                    f"(prices[{defaults[price.product]}])",
                )
            else:
                defaults[price.product] = i
            if not price.active:
                reporter.add((*at, "default"), "an archived price cannot be the default price")


def _check_price_recurring(
    price: Price, at: Path, meters: dict[str, Meter], reporter: _Reporter
) -> None:
    recurring = price.recurring
    if recurring is None:
        if price.tiers:
            reporter.add((*at, "tiers"), "tiered prices must be recurring (add recurring)")
        return
    limit = _MAX_INTERVAL_COUNT[recurring.interval]
    if recurring.interval_count > limit:
        reporter.add(
            (*at, "recurring", "interval_count"),
            f"at most {limit} for interval '{recurring.interval}' "
            "(Stripe bills at least every three years)",
        )
    if recurring.usage == "metered":
        if recurring.meter is None:
            reporter.add(
                (*at, "recurring"),
                "a metered price needs recurring.meter: metered prices without a meter "
                "(legacy usage records) were removed in API version 2025-03-31.basil",
            )
        elif recurring.meter not in meters:
            reporter.add(
                (*at, "recurring", "meter"), f"meter '{recurring.meter}' is not declared in meters"
            )
        elif price.active and not meters[recurring.meter].active:
            reporter.add(
                (*at, "recurring", "meter"),
                f"an active price cannot bill meter '{recurring.meter}', "
                "which is declared inactive",
            )
    elif recurring.meter is not None:
        reporter.add(
            (*at, "recurring", "meter"),
            "a licensed price cannot have a meter (set usage: metered)",
        )


def _check_price_amounts(price: Price, at: Path, reporter: _Reporter) -> None:
    given = [
        name
        for name, value in (
            ("unit_amount", price.unit_amount),
            ("unit_amount_decimal", price.unit_amount_decimal),
            ("tiers", price.tiers or None),
            ("custom_unit_amount", price.custom_unit_amount),
        )
        if value is not None
    ]
    if not given:
        reporter.add(
            at, "needs one of unit_amount, unit_amount_decimal, tiers or custom_unit_amount"
        )
    elif len(given) > 1:
        reporter.add((*at, given[1]), f"give only one of {' and '.join(given)}")
    _check_decimal(price.unit_amount_decimal, (*at, "unit_amount_decimal"), reporter)
    if price.tiers and price.tiers_mode is None:
        reporter.add((*at, "tiers"), "tiers need tiers_mode (graduated or volume)")
    if price.tiers_mode is not None and not price.tiers:
        reporter.add((*at, "tiers_mode"), "tiers_mode is only meaningful with tiers")
    if price.tiers and price.transform_quantity is not None:
        reporter.add((*at, "transform_quantity"), "cannot be combined with tiers")
    _check_tiers(price.tiers, (*at, "tiers"), reporter)


def _check_pay_what_you_want(price: Price, at: Path, reporter: _Reporter) -> None:
    """Stripe lets the customer choose the amount only on a one-time price."""
    if price.custom_unit_amount is None:
        return
    if price.recurring is not None:
        reporter.add(
            (*at, "custom_unit_amount"),
            "pay what you want is only for one-time prices: Stripe refuses it on a recurring "
            "price (remove recurring, or give unit_amount instead)",
        )
    _check_bounds(price.custom_unit_amount, (*at, "custom_unit_amount"), reporter)


def _check_bounds(custom: CustomUnitAmount, at: Path, reporter: _Reporter) -> None:
    low, high, preset = custom.minimum, custom.maximum, custom.preset
    if low is not None and high is not None and low > high:
        reporter.add((*at, "maximum"), f"maximum {high} is below minimum {low}")
    if preset is not None and low is not None and preset < low:
        reporter.add((*at, "preset"), f"preset {preset} is below minimum {low}")
    if preset is not None and high is not None and preset > high:
        reporter.add((*at, "preset"), f"preset {preset} is above maximum {high}")


def _option_kind(price: Price) -> str:
    """The amount a currency option of this price gives: the same kind as the price's."""
    if price.custom_unit_amount is not None:
        return "custom_unit_amount"
    return "tiers" if price.tiers else "unit_amount"


def _check_currency_options(price: Price, at: Path, reporter: _Reporter) -> None:
    """Each option is another currency, with an amount of the price's own kind."""
    wanted = _option_kind(price)
    for code, option in price.currency_options.items():
        here: Path = (*at, "currency_options", code)
        if code == price.currency:
            reporter.add(
                here,
                f"repeats the price's own currency ({price.currency}); currency_options "
                "holds the amounts in other currencies",
                key=True,
            )
            continue
        given = _option_amounts(option)
        if wanted == "unit_amount" and len(given) > 1 and set(given) <= _UNIT_FORMS:
            reporter.add((*here, given[1]), f"give only one of {' and '.join(given)}")
        elif any(name not in _FORMS[wanted] for name in given):
            extra = next(name for name in given if name not in _FORMS[wanted])
            reporter.add(
                (*here, extra),
                f"the price is priced by {_FORM_WORDS[wanted]}, so each currency option is too "
                f"(give {_FORM_NAMES[wanted]}, not {extra})",
            )
        elif not given:
            reporter.add(here, f"needs an amount ({_FORM_NAMES[wanted]}), like the price's own")
        _check_decimal(option.unit_amount_decimal, (*here, "unit_amount_decimal"), reporter)
        _check_tiers(option.tiers, (*here, "tiers"), reporter)
        if option.custom_unit_amount is not None:
            _check_bounds(option.custom_unit_amount, (*here, "custom_unit_amount"), reporter)


_UNIT_FORMS = frozenset({"unit_amount", "unit_amount_decimal"})
_FORMS = {
    "unit_amount": _UNIT_FORMS,
    "tiers": frozenset({"tiers"}),
    "custom_unit_amount": frozenset({"custom_unit_amount"}),
}
_FORM_WORDS = {
    "unit_amount": "a unit amount",
    "tiers": "tiers",
    "custom_unit_amount": "pay what you want",
}
_FORM_NAMES = {
    "unit_amount": "unit_amount or unit_amount_decimal",
    "tiers": "tiers",
    "custom_unit_amount": "custom_unit_amount",
}


def _option_amounts(option: CurrencyOption) -> list[str]:
    return [
        name
        for name, value in (
            ("unit_amount", option.unit_amount),
            ("unit_amount_decimal", option.unit_amount_decimal),
            ("tiers", option.tiers or None),
            ("custom_unit_amount", option.custom_unit_amount),
        )
        if value is not None
    ]


def _check_tiers(tiers: tuple[Tier, ...], at: Path, reporter: _Reporter) -> None:
    previous = 0
    for j, tier in enumerate(tiers):
        here: Path = (*at, j)
        last = j == len(tiers) - 1
        if tier.up_to is None and not last:
            reporter.add((*here, "up_to"), "only the last tier can be up_to: inf")
        if last and tier.up_to is not None:
            reporter.add((*here, "up_to"), "the last tier must be up_to: inf")
        if tier.up_to is not None:
            if tier.up_to <= previous:
                reporter.add(
                    (*here, "up_to"),
                    f"tiers must increase: {tier.up_to} is not above the previous {previous}",
                )
            previous = max(previous, tier.up_to)
        if tier.unit_amount is not None and tier.unit_amount_decimal is not None:
            reporter.add((*here, "unit_amount_decimal"), "give unit_amount or unit_amount_decimal")
        if tier.flat_amount is not None and tier.flat_amount_decimal is not None:
            reporter.add((*here, "flat_amount_decimal"), "give flat_amount or flat_amount_decimal")
        if all(
            v is None
            for v in (
                tier.unit_amount,
                tier.unit_amount_decimal,
                tier.flat_amount,
                tier.flat_amount_decimal,
            )
        ):
            reporter.add(here, "a tier needs a unit amount, a flat amount or both")
        _check_decimal(tier.unit_amount_decimal, (*here, "unit_amount_decimal"), reporter)
        _check_decimal(tier.flat_amount_decimal, (*here, "flat_amount_decimal"), reporter)


def _check_alerts(desired: Desired, reporter: _Reporter) -> None:
    meters = {m.event_name: m for m in desired.meters}
    for i, alert in enumerate(desired.alerts):
        meter = meters.get(alert.meter)
        if meter is None:
            reporter.add(("alerts", i, "meter"), f"meter '{alert.meter}' is not declared in meters")
        elif alert.active and not meter.active:
            reporter.add(
                ("alerts", i, "meter"),
                f"an active alert cannot watch meter '{alert.meter}', which is declared inactive",
            )


EARLIEST_SWITCH = 0
LATEST_SWITCH = 4_102_444_800
"""2100-01-01T00:00:00Z: a fixed ``switch_at`` is a time in this century (and its next
period still a date Python and Stripe can write)."""


def _check_cycles(desired: Desired, reporter: _Reporter) -> None:
    """Migrations moving subscriptions round in a circle (a -> b and b -> a, or longer):
    each switch would bring them back, for ever. A chain (a -> b, then b -> c, one
    finished and kept as history) settles, and is allowed."""
    moves_to: dict[str, tuple[str, Migration]] = {}
    for migration in desired.migrations:
        for from_price, to_price in migration.pairs:
            moves_to.setdefault(from_price, (to_price, migration))
    reported: set[str] = set()
    for start, (first_target, migration) in moves_to.items():
        path = [start]
        while path[-1] in moves_to:
            following = moves_to[path[-1]][0]
            if following in path:
                if following == start and not reported & set(path):
                    reported.update(path)
                    ends = _Ends(
                        ("migrations", migration.name), start, first_target, bool(migration.also)
                    )
                    circle = " -> ".join(f"'{price}'" for price in [*path, start])
                    reporter.add(
                        ends.source,
                        f"{circle}: these migrations move subscriptions round in a circle, and "
                        "each switch would bring them back; remove one of them",
                    )
                break
            path.append(following)


def _check_migrations(desired: Desired, reporter: _Reporter) -> None:
    prices = {p.lookup_key: p for p in desired.prices}
    claimed: dict[str, str] = {}
    _check_cycles(desired, reporter)
    for migration in desired.migrations:
        at: Path = ("migrations", migration.name)
        for from_price, to_price in migration.pairs:
            ends = _Ends(at, from_price, to_price, several=bool(migration.also))
            _check_pair(migration, ends, prices, claimed, reporter)
        if migration.also and migration.require_usage_parity is not None:
            reporter.add(
                (*at, "require_usage_parity"),
                "usage parity compares one legacy price with one meter: it needs from_price "
                "and to_price, not prices (give each pair its own migration to gate it)",
            )
        moment = migration.switch_at.at
        if migration.switch_at.kind == "at" and moment is None:
            reporter.add((*at, "switch_at"), f"'{migration.switch_at.text}' is not a real time")
        elif moment is not None and not EARLIEST_SWITCH <= moment < LATEST_SWITCH:
            reporter.add(
                (*at, "switch_at"),
                f"'{migration.switch_at.text}' is outside 1970-01-01 to 2099-12-31 (UTC), the "
                "times a switch may be set to",
            )
        _check_defer_within(migration, prices, at, reporter)
        parity = migration.require_usage_parity
        if parity is not None and parity > 100:
            reporter.add((*at, "require_usage_parity"), "must be at most 100%")
        both = sorted(set(migration.subscriptions or ()) & set(migration.exclude))
        if both:
            reporter.add((*at, "exclude"), f"{', '.join(both)} both listed and excluded")


_SHORTEST_PERIOD = {"day": 86_400, "week": 7 * 86_400, "month": 28 * 86_400, "year": 365 * 86_400}
"""The shortest period of each interval, in seconds (February; a year without 29 Feb)."""


def _check_defer_within(
    migration: Migration, prices: Mapping[str, Price], at: Path, reporter: _Reporter
) -> None:
    """A window as long as a billing period holds every subscription: each renewal would
    defer the switch to the next, for ever."""
    for _from, to_price in migration.pairs:
        terms = prices[to_price].terms if to_price in prices else None
        if terms is None or terms[1] not in _SHORTEST_PERIOD:
            continue
        period = _SHORTEST_PERIOD[terms[1]] * terms[2]
        if migration.defer_within >= period:
            reporter.add(
                (*at, "defer_within"),
                f"{duration_text(migration.defer_within)} is as long as a billing period of "
                f"'{to_price}' ({terms_text(terms)}): every renewal would defer the switch "
                "to the next; make it shorter",
            )
            return


@dataclass(frozen=True)
class _Ends:
    """One ``from -> to`` pair of a migration and where billing.yaml states each end: the
    ``from_price`` and ``to_price`` fields, or the pair's key in ``prices``."""

    at: Path
    from_price: str
    to_price: str
    several: bool

    @property
    def source(self) -> Path:
        return (*self.at, "prices", self.from_price) if self.several else (*self.at, "from_price")

    @property
    def target(self) -> Path:
        return (*self.at, "prices", self.from_price) if self.several else (*self.at, "to_price")


def _check_pair(
    migration: Migration,
    ends: _Ends,
    prices: Mapping[str, Price],
    claimed: dict[str, str],
    reporter: _Reporter,
) -> None:
    """One pair: a declared, active, recurring target; not the price it leaves; a legacy
    price no other pair or migration moves."""
    target = prices.get(ends.to_price)
    if target is None:
        reporter.add(
            ends.target,
            f"'{ends.to_price}' is not the lookup_key of a price declared in prices",
        )
    elif target.recurring is None:
        reporter.add(
            ends.target,
            f"'{ends.to_price}' is a one-time price; subscriptions move to a recurring price",
        )
    elif not target.active:
        reporter.add(ends.target, f"'{ends.to_price}' is declared archived")
    if ends.from_price == ends.to_price:
        reporter.add(ends.source, "from_price and to_price are the same price")
    _check_migration_ends(migration, ends, prices.get(ends.from_price), target, reporter)
    if ends.from_price in claimed:
        reporter.add(
            ends.source,
            f"'{ends.from_price}' is already migrated by '{claimed[ends.from_price]}'",
        )
    claimed.setdefault(ends.from_price, migration.name)


def _check_migration_ends(
    migration: Migration,
    ends: _Ends,
    source: Price | None,
    target: Price | None,
    reporter: _Reporter,
) -> None:
    """What the two prices allow: any recurring price may move to any other with the same
    currency and interval; usage parity and quantities depend on which are metered."""
    at = ends.at
    if source is not None and source.recurring is None:
        reporter.add(
            ends.source,
            f"'{ends.from_price}' is a one-time price; no subscription holds one",
        )
    if target is not None and target.is_metered and migration.quantity is not None:
        reporter.add(
            (*at, "quantity"),
            f"'{ends.to_price}' is metered: Stripe bills its usage, and a metered item "
            "carries no quantity; remove quantity",
        )
    parity_possible = (target is None or target.is_metered) and (
        source is None or source.is_metered
    )
    if migration.require_usage_parity is not None and not parity_possible:
        reporter.add(
            (*at, "require_usage_parity"),
            "usage parity compares usage records with meter events: it needs a metered "
            "from_price and a to_price on a meter",
        )
    before = source.terms if source is not None else None
    after = target.terms if target is not None else None
    if before is not None and after is not None and before != after:
        reporter.add(
            ends.target,
            f"'{ends.to_price}' bills {terms_text(after)} but from_price "
            f"'{ends.from_price}' {terms_text(before)}; a migration keeps the currency "
            "and the billing interval",
        )


def _check_portal_configurations(desired: Desired, reporter: _Reporter) -> None:
    """What a portal configuration may offer: declared products, and of each its own active
    recurring prices; and the settings Stripe requires together."""
    for i, config in enumerate(desired.portal_configurations):
        at: Path = ("portal_configurations", i, "features")
        features = config.settings["features"]
        _check_portal_switching(desired, config, (*at, "subscription_update"), reporter)
        cancel = features.get("subscription_cancel") or {}
        if cancel.get("proration_behavior") == "create_prorations" and (
            cancel.get("mode") != "immediately"
        ):
            reporter.add(
                (*at, "subscription_cancel", "proration_behavior"),
                "create_prorations needs mode: immediately (Stripe prorates only a cancellation "
                "made at once)",
            )


def _check_portal_switching(
    desired: Desired, config: PortalConfiguration, at: Path, reporter: _Reporter
) -> None:
    switching = config.settings["features"].get("subscription_update")
    if switching is None:
        return
    if switching["enabled"]:  # Stripe refuses either left out (parameter_missing)
        if "default_allowed_updates" not in switching:
            reporter.add(at, "enabled subscription updates need default_allowed_updates")
        if not switching.get("products"):
            reporter.add(at, "enabled subscription updates need products to switch between")
    products = {p.id: p for p in desired.products}
    prices = {p.lookup_key: p for p in desired.prices}
    offered: dict[str, int] = {}
    for j, (product_id, keys) in enumerate(config.products):
        here: Path = (*at, "products", j)
        product = products.get(product_id)
        if product_id in offered:
            reporter.add(
                (*here, "product"),
                f"product '{product_id}' is offered twice (also products[{offered[product_id]}])",
            )
        offered.setdefault(product_id, j)
        if product is None:
            reporter.add((*here, "product"), f"product '{product_id}' is not declared in products")
        elif not product.active:
            reporter.add((*here, "product"), f"product '{product_id}' is declared inactive")
        for k, key in enumerate(keys):
            price = prices.get(key)
            where: Path = (*here, "prices", k)
            if price is None:
                reporter.add(where, f"'{key}' is not the lookup_key of a price declared in prices")
            elif product is not None and price.product != product_id:
                reporter.add(
                    where, f"'{key}' is a price of product '{price.product}', not '{product_id}'"
                )
            elif price.recurring is None:
                reporter.add(
                    where,
                    f"'{key}' is a one-time price; the portal switches subscriptions between "
                    "recurring prices",
                )
            elif not price.active:
                reporter.add(
                    where, f"'{key}' is declared archived; the portal offers active prices"
                )


def _check_product_features(desired: Desired, reporter: _Reporter) -> None:
    """A product's ``features:`` name declared features, active ones: Stripe attaches no
    archived feature, and one being archived is detached first. An archived product
    grants nothing new (``features: []`` still detaches what it has)."""
    features = {f.lookup_key: f for f in desired.features}
    for i, product in enumerate(desired.products):
        for j, key in enumerate(product.features or ()):
            at: Path = ("products", i, "features", j)
            if not product.active:
                reporter.add(
                    at,
                    f"product '{product.id}' is declared inactive: a feature cannot be "
                    "attached to it (an empty list detaches what it has)",
                )
            elif key not in features:
                reporter.add(at, f"feature '{key}' is not declared in features")
            elif not features[key].active:
                reporter.add(
                    at,
                    f"feature '{key}' is declared active: false; an archived feature cannot "
                    "be attached (take it out of this list: it is detached before the archive)",
                )


def _check_coupons(desired: Desired, reporter: _Reporter) -> None:
    """What Stripe refuses of a coupon, said before any request: one of percent_off and
    amount_off, a currency with (and only with) an amount, months only when repeating,
    products that billing.yaml declares, a real redeem_by."""
    products = {p.id: p for p in desired.products}
    for i, coupon in enumerate(desired.coupons):
        at: Path = ("coupons", i)
        if coupon.percent_off is not None and coupon.amount_off is not None:
            reporter.add((*at, "amount_off"), "give percent_off or amount_off, not both")
        elif coupon.percent_off is None and coupon.amount_off is None:
            reporter.add(at, "needs percent_off or amount_off (with currency)")
        if coupon.amount_off is not None and coupon.currency is None:
            reporter.add(
                (*at, "amount_off"), "needs currency: the currency the amount is taken off in"
            )
        if coupon.amount_off is None and coupon.currency is not None:
            reporter.add((*at, "currency"), "only goes with amount_off")
        if coupon.currency_options and coupon.amount_off is None:
            reporter.add((*at, "currency_options"), "only goes with amount_off")
        elif coupon.currency is not None and coupon.currency in coupon.currency_options:
            reporter.add(
                (*at, "currency_options", coupon.currency),
                f"'{coupon.currency}' is the coupon's own currency (its amount is amount_off)",
                key=True,
            )
        if coupon.duration == "repeating" and coupon.duration_in_months is None:
            reporter.add((*at, "duration"), "repeating needs duration_in_months")
        if coupon.duration != "repeating" and coupon.duration_in_months is not None:
            reporter.add(
                (*at, "duration_in_months"),
                f"only goes with duration: repeating (this coupon is '{coupon.duration}')",
            )
        if coupon.redeem_by is not None and coupon.redeem_by.at is None:
            reporter.add((*at, "redeem_by"), f"'{coupon.redeem_by.text}' is not a real time")
        for j, product in enumerate(coupon.applies_to or ()):
            if product not in products:
                reporter.add(
                    (*at, "applies_to", "products", j),
                    f"product '{product}' is not declared in products",
                )
            elif coupon.active and not products[product].active:
                reporter.add(
                    (*at, "applies_to", "products", j),
                    f"an active coupon cannot apply to product '{product}', which is declared "
                    "inactive",
                )


def _check_promotion_codes(desired: Desired, reporter: _Reporter) -> None:
    """What Stripe refuses of a promotion code: a coupon that exists (a declared one,
    not deleted while the code is active), limits within the coupon's, a minimum amount
    with its currency, a real expires_at."""
    coupons = {c.id: c for c in desired.coupons}
    for i, code in enumerate(desired.promotion_codes):
        at: Path = ("promotion_codes", i)
        coupon = coupons.get(code.coupon)
        if coupon is None:
            reporter.add((*at, "coupon"), f"coupon '{code.coupon}' is not declared in coupons")
        elif code.active and not coupon.active:
            reporter.add(
                (*at, "coupon"),
                f"an active promotion code cannot redeem coupon '{code.coupon}', which is "
                "declared inactive (deleted)",
            )
        if (code.minimum_amount is None) != (code.minimum_amount_currency is None):
            missing = "minimum_amount" if code.minimum_amount is None else "minimum_amount_currency"
            given = "minimum_amount_currency" if missing == "minimum_amount" else "minimum_amount"
            reporter.add((*at, "restrictions", given), f"goes with {missing}: give both or neither")
        if code.expires_at is not None and code.expires_at.at is None:
            reporter.add((*at, "expires_at"), f"'{code.expires_at.text}' is not a real time")
        if coupon is None:
            continue
        if (
            code.max_redemptions is not None
            and coupon.max_redemptions is not None
            and code.max_redemptions > coupon.max_redemptions
        ):
            reporter.add(
                (*at, "max_redemptions"),
                f"cannot be more than coupon '{coupon.id}' allows ({coupon.max_redemptions})",
            )
        ends = code.expires_at.at if code.expires_at is not None else None
        deadline = coupon.redeem_by
        last = deadline.at if deadline is not None else None
        if ends is not None and last is not None and ends > last and deadline is not None:
            reporter.add(
                (*at, "expires_at"),
                f"cannot be after the redeem_by of coupon '{coupon.id}' ({deadline.text})",
            )


_SEMANTIC_CHECKS: tuple[Callable[[Desired, _Reporter], None], ...] = (
    _check_identities,
    _check_metadata,
    _check_prices,
    _check_alerts,
    _check_portal_configurations,
    _check_product_features,
    _check_coupons,
    _check_promotion_codes,
    _check_migrations,
)
