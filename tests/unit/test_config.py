"""billing.yaml loading: the example, the invalid corpus and every unreadable-file path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from reconciler.config import (
    MAX_FILE_BYTES,
    billing_schema,
    desired_from_data,
    load_config,
    load_text,
)
from reconciler.errors import ConfigError, ConfigErrors
from reconciler.model import SwitchAt
from reconciler.yamlsource import MAX_DEPTH

REPO = Path(__file__).resolve().parents[2]
INVALID = REPO / "tests" / "data" / "invalid"
INVALID_DOCS = sorted(INVALID.glob("*.yaml"))


def errors_of(path: Path | str) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    return [str(error) for error in caught.value.errors]


def test_example_is_valid() -> None:
    desired = load_config(REPO / "billing.yaml")
    assert [m.event_name for m in desired.meters] == ["video_seconds", "api_requests"]
    per_second = next(p for p in desired.prices if p.lookup_key == "video_seconds_metered")
    assert per_second.unit_amount_decimal == Decimal("0.35")
    assert per_second.meter == "video_seconds"
    pro = next(p for p in desired.prices if p.lookup_key == "pro_video_seconds_overage")
    assert pro.tiers_mode == "graduated"
    assert [t.up_to for t in pro.tiers] == [1000, 10000, None]
    credits = next(p for p in desired.prices if p.lookup_key == "credits_1000")
    assert credits.recurring is None
    migration = desired.migrations[0]
    assert migration.switch_at == SwitchAt("period_end")
    assert migration.require_usage_parity == Decimal("0.5")
    assert migration.subscriptions is None


def test_corpus_is_large_enough() -> None:
    assert len(INVALID_DOCS) >= 25


@pytest.mark.parametrize("document", INVALID_DOCS, ids=lambda p: p.stem)
def test_invalid_document_gives_its_exact_errors(
    document: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = document.with_suffix(".errors").read_text("utf-8").splitlines()
    assert expected, f"{document.name} has no expected errors"
    monkeypatch.chdir(INVALID)
    assert errors_of(document.name) == expected


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert errors_of(missing) == [f"{missing}: file not found"]


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [f"{tmp_path}: is a directory, not a file"]


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"version: 1\nmode: test\n" + b"#" * MAX_FILE_BYTES)
    (message,) = errors_of(big)
    assert message.startswith(f"{big}: file is {MAX_FILE_BYTES + 22} bytes")


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    (message,) = errors_of(bomb)
    assert "expands to more than" in message
    assert message.startswith(f"{bomb}:1:1: ")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    depth = MAX_DEPTH + 5
    deep.write_text("version: 1\nmode: test\nproducts: " + "[" * depth + "]" * depth)
    (message,) = errors_of(deep)
    assert f"nests deeper than {MAX_DEPTH} levels" in message


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    doc = tmp_path / "bom.yaml"
    doc.write_bytes("\ufeffversion: 1\nmode: test\n".encode())
    assert load_config(doc).mode == "test"


def test_merge_keys_are_followed(tmp_path: Path) -> None:
    doc = tmp_path / "merge.yaml"
    doc.write_text(
        "version: 1\nmode: test\n"
        "x-base: &base {currency: usd, product: prod_a}\n"
        "products: [{id: prod_a, name: A}]\n"
        "prices:\n  - <<: *base\n    lookup_key: k\n    unit_amount: 5\n"
    )
    # x-base is not part of the language: the anchor host is refused, the merge is not.
    assert errors_of(doc) == [
        f"{doc}:3:1: x-base: unknown field 'x-base' (expected one of: alerts, coupons, features, "
        "meters, migrations, mode, portal_configurations, prices, products, promotion_codes, "
        "version)"
    ]


def test_all_errors_are_reported_sorted_by_position(tmp_path: Path) -> None:
    doc = tmp_path / "many.yaml"
    doc.write_text("mode: prod\nversion: 3\nextra: 1\n")
    lines = errors_of(doc)
    assert lines == [
        f"{doc}:1:7: mode: must be one of test, live, not 'prod'",
        f"{doc}:2:10: version: must be 1 (the only billing.yaml version), not 3",
        f"{doc}:3:1: extra: unknown field 'extra' (expected one of: alerts, coupons, features, "
        "meters, migrations, mode, portal_configurations, prices, products, promotion_codes, "
        "version)",
    ]


def test_data_without_marks_reports_line_zero() -> None:
    with pytest.raises(ConfigErrors) as caught:
        desired_from_data({"version": 1, "mode": "test", "meters": [{"event_name": "x"}]})
    assert caught.value.errors == [
        ConfigError("<data>", 0, 0, "meters[0]", "missing required field 'aggregation'"),
        ConfigError("<data>", 0, 0, "meters[0]", "missing required field 'display_name'"),
    ]


def _properties_without_description(node: object, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub and "$ref" not in sub:
                found.append(f"{where}.{name}")
        for key, value in node.items():
            found += _properties_without_description(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _properties_without_description(value, f"{where}[{index}]")
    return found


def _objects_without_closed_properties(node: object, where: str) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "object" and "additionalProperties" not in node:
            found.append(where)
        for key, value in node.items():
            found += _objects_without_closed_properties(value, f"{where}.{key}")
    return found


def test_schema_documents_and_closes_every_object() -> None:
    schema = billing_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert _properties_without_description(schema, "$") == []
    assert _objects_without_closed_properties(schema, "$") == []
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object":
            assert definition["additionalProperties"] is False, name


@pytest.mark.parametrize(
    ("currency", "amount", "field", "expected"),
    [
        (
            "usd",
            "99.00",
            "unit_amount",
            "unit_amount: is in minor units (cents) and must be a whole number, not 99.0; "
            'write unit_amount: 9900 for $99.00, or unit_amount_decimal: "99.0" for $0.99',
        ),
        (
            "jpy",
            "99.5",
            "unit_amount",
            "unit_amount: is in minor units and must be a whole number, not 99.5; "
            'write unit_amount_decimal: "99.5" for ¥99.5',
        ),
    ],
)
def test_a_fractional_unit_amount_is_refused_with_the_fix(
    tmp_path: Path, currency: str, amount: str, field: str, expected: str
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "version: 1\nmode: test\nproducts:\n  - {id: prod_a, name: A}\nprices:\n"
        f"  - {{lookup_key: a, product: prod_a, currency: {currency}, {field}: {amount}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigErrors) as raised:
        load_config(path)
    assert [str(e).split(": ", 1)[1] for e in raised.value.errors] == [f"prices[0].{expected}"]
    assert str(raised.value.errors[0]).startswith(f"{path}:6:")


def test_a_fractional_tier_flat_amount_is_refused_once() -> None:
    price = {
        "lookup_key": "t",
        "product": "prod_a",
        "currency": "eur",
        "tiers_mode": "graduated",
        "tiers": [{"up_to": 10, "flat_amount": 27.5, "unit_amount": 1}, {"up_to": "inf"}],
    }
    data = {"version": 1, "mode": "test", "prices": [price]}
    with pytest.raises(ConfigErrors) as raised:
        desired_from_data(data)
    (error,) = raised.value.errors
    assert error.path == "prices[0].tiers[0].flat_amount"
    assert 'flat_amount_decimal: "27.5" for €0.275' in error.message


# --- every stage at once --------------------------------------------------------------------

ONE_SCHEMA_TWO_SEMANTIC = """\
version: 1
mode: test
products:
  - {id: prod_a, name: A}
meters:
  - {event_name: video_seconds, display_name: Video seconds, aggregation: sum}
prices:
  - lookup_key: p1
    product: prod_a
    currency: usd
    unit_amount_decimal: "0.35"
    recurring: {interval: month, usage: metered, meter: video_second}
  - lookup_key: p2
    product: prod_a
    currency: usd
    unit_amount: "many"
alerts:
  - {title: t, meter: nowhere, threshold: 5}
"""


def _errors_of_text(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "billing.yaml"
    path.write_text(text, encoding="utf-8")
    return [line.replace(f"{path}:", "") for line in errors_of(path)]


def test_schema_and_semantic_errors_are_reported_together_by_line(tmp_path: Path) -> None:
    assert _errors_of_text(ONE_SCHEMA_TWO_SEMANTIC, tmp_path) == [
        "12:57: prices[0].recurring.meter: meter 'video_second' is not declared in meters",
        "16:18: prices[1].unit_amount: must be a whole number, not a string",
        "18:23: alerts[0].meter: meter 'nowhere' is not declared in meters",
    ]


def test_semantic_errors_keep_the_files_own_positions(tmp_path: Path) -> None:
    text = ONE_SCHEMA_TWO_SEMANTIC.replace("lookup_key: p2", "lookup_key: p0").replace(
        "alerts:", "  - {lookup_key: p1, product: prod_a, currency: usd, unit_amount: 5}\nalerts:"
    )
    assert _errors_of_text(text, tmp_path)[2] == (
        "17:18: prices[2].lookup_key: duplicate lookup_key 'p1' (also prices[0])"
    )


def test_entries_set_aside_are_not_reported_missing(tmp_path: Path) -> None:
    # The meter has a schema error; the price naming it must not say it is undeclared.
    text = ONE_SCHEMA_TWO_SEMANTIC.replace("aggregation: sum", "aggregation: median").replace(
        "meter: video_second}", "meter: video_seconds}"
    )
    errors = _errors_of_text(text, tmp_path)
    assert errors[0].startswith("6:75: meters[0].aggregation: must be one of")
    assert not any("video_seconds' is not declared" in e for e in errors)
    assert "alerts[0].meter: meter 'nowhere'" not in " ".join(errors)  # meters set aside


def test_a_section_of_the_wrong_type_is_set_aside(tmp_path: Path) -> None:
    text = "version: 1\nmode: test\nproducts: 3\nprices:\n" + (
        "  - {lookup_key: p, product: prod_a, currency: usd, unit_amount: 5}\n"
        "  - {lookup_key: p, product: prod_a, currency: usd, unit_amount: 5}\n"
    )
    assert _errors_of_text(text, tmp_path) == [
        "3:11: products: must be a list, not an integer",
        "6:18: prices[1].lookup_key: duplicate lookup_key 'p' (also prices[0])",
    ]


def test_a_wrong_mode_still_checks_the_rest(tmp_path: Path) -> None:
    text = ONE_SCHEMA_TWO_SEMANTIC.replace("mode: test", "mode: staging").replace(
        '    unit_amount: "many"\n', "    unit_amount: 5\n"
    )
    errors = _errors_of_text(text, tmp_path)
    assert [e.split(": ")[1] for e in errors] == [
        "mode",
        "prices[0].recurring.meter",
        "alerts[0].meter",
    ]


def test_the_catalog_example_is_the_example_without_its_migrations() -> None:
    """tests/data/billing-catalog.yaml: what an account without the legacy price can plan.
    Regenerate it from billing.yaml (everything before ``migrations:``) when this fails."""
    example = (REPO / "billing.yaml").read_text(encoding="utf-8")
    catalog = (REPO / "tests" / "data" / "billing-catalog.yaml").read_text(encoding="utf-8")
    assert catalog == example.partition("\nmigrations:\n")[0].rstrip("\n") + "\n"
    assert load_config(REPO / "tests" / "data" / "billing-catalog.yaml").migrations == ()


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("90s", 90), ("45m", 2700), ("1h", 3600), ("2d", 172800)]
)
def test_defer_within_reads_a_number_and_a_unit(text: str, seconds: int) -> None:
    document = (
        "version: 1\nmode: test\nproducts: [{id: prod_a, name: A}]\n"
        "prices: [{lookup_key: seat, product: prod_a, currency: usd, unit_amount: 900,"
        " recurring: {interval: month}}]\n"
        f"migrations:\n  m:\n    from_price: price_1Old\n    to_price: seat\n"
        f"    defer_within: '{text}'\n"
    )
    (migration,) = load_text(document, "billing.yaml").migrations
    assert migration.defer_within == seconds
    assert migration.to_dict().get("defer_within", "1h") == text


def test_defer_within_refuses_a_duration_without_a_unit() -> None:
    document = (
        "version: 1\nmode: test\nproducts: [{id: prod_a, name: A}]\n"
        "prices: [{lookup_key: seat, product: prod_a, currency: usd, unit_amount: 900,"
        " recurring: {interval: month}}]\n"
        "migrations:\n  m:\n    from_price: price_1Old\n    to_price: seat\n"
        "    defer_within: 1 hour\n"
    )
    with pytest.raises(ConfigErrors) as refused:
        load_text(document, "billing.yaml")
    assert (
        "billing.yaml:9:19: migrations.m.defer_within: must be 0 or a number and a unit "
        "(s, m, h or d) such as 1h, not '1 hour'"
    ) in str(refused.value)


def test_a_migration_of_thousands_of_prices_is_refused_in_one_line(tmp_path: Path) -> None:
    pairs = "".join(f"      price_{n}: seat\n" for n in range(5000))
    text = (
        "version: 1\nmode: test\nproducts: [{id: prod_a, name: A}]\n"
        "prices:\n  - {lookup_key: seat, product: prod_a, currency: usd, unit_amount: 900,"
        " recurring: {interval: month}}\n"
        f"migrations:\n  everything:\n    prices:\n{pairs}"
    )
    assert _errors_of_text(text, tmp_path) == [
        "9:7: migrations.everything.prices: has 5000 keys; at most 20 allowed"
    ]


@pytest.mark.parametrize("count", [101, 5000])
def test_more_migrations_than_a_plan_reads_are_refused_at_once(tmp_path: Path, count: int) -> None:
    """Each migration costs reads in every plan: 5,000 would take an hour at Stripe's
    pace, so the file is refused before anything is read."""
    entries = "".join(
        f"  m{i}:\n    from_price: price_1L{i}\n    to_price: team\n" for i in range(count)
    )
    path = tmp_path / "billing.yaml"
    path.write_text(
        "version: 1\nmode: test\nproducts:\n  - {id: prod_a, name: A}\nprices:\n"
        "  - {lookup_key: team, product: prod_a, currency: usd, unit_amount: 1100,"
        " recurring: {interval: month}}\nmigrations:\n" + entries,
        encoding="utf-8",
    )
    with pytest.raises(ConfigErrors) as raised:
        load_config(path)
    assert [str(e) for e in raised.value.errors] == [
        f"{path}:8:3: migrations: has {count} keys; at most 100 allowed"
    ]


def test_a_finished_migration_kept_before_the_next_one_is_valid() -> None:
    """A chain settles (2024 -> 2025 done, then 2025 -> 2026): only a circle is refused."""
    prices = "".join(
        f"  - {{lookup_key: seat_{year}, product: prod_a, currency: usd, unit_amount: {year},"
        " recurring: {interval: month}}\n"
        for year in (2024, 2025, 2026)
    )
    text = (
        "version: 1\nmode: test\nproducts:\n  - {id: prod_a, name: A}\nprices:\n"
        + prices
        + "migrations:\n"
        "  raise-2025: {from_price: seat_2024, to_price: seat_2025}\n"
        "  raise-2026: {from_price: seat_2025, to_price: seat_2026}\n"
    )
    assert [m.name for m in load_text(text).migrations] == ["raise-2025", "raise-2026"]
