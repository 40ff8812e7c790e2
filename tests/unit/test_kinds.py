"""The kind registry: one spec per kind, and a core that names none of them.

The planner, apply's step building, the live reader, the importer, saved-plan
checks and the renders iterate ``REGISTRY``; a kind is known in one module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reconciler.importer import import_account
from reconciler.kinds import Kind
from reconciler.kinds.registry import IMPORT_ORDER, READ_ORDER, REGISTRY, spec_for
from reconciler.live import snapshot_from_objects
from reconciler.model import Desired
from reconciler.plan import Action, ResourceChange
from reconciler.snapshot import Snapshot

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
REGISTERED = {spec.kind.value for spec in REGISTRY}

CORE = [
    "planner.py",
    "apply.py",
    "live.py",
    "importer.py",
    "plan.py",
    "planfile.py",
    "converge.py",
    "snapshot.py",
    "steps.py",
    "writes.py",
    "versions.py",
    "cli.py",
    *(f"render/{p.name}" for p in sorted((PACKAGE / "render").glob("*.py"))),
]
"""Modules that must reach every kind through the registry."""

MIGRATION_READS = {
    "read_migrations",
    "_read_migration",
    "_read_pair",
    "_subscribers",
    "_with_unfinished_schedules",
    "read_legacy_price",
    "_gate_usage",
    "_usage_pair",
}
"""live.py's migration reading: Stripe's subscription and usage fields, named as Stripe
names them (``price``, ``meter``), not kinds."""

NAMED_ON_PURPOSE = {
    ("writes.py", "PRICE"): "a migration's phases name the new price by its lookup key",
    ("render/status.py", "PRICE"): "migration status shows what each price charges",
}
"""The only places outside reconciler/kinds/ that name a registered kind, and why."""


def _scanned(path: Path) -> list[ast.AST]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for top in tree.body
        if isinstance(top, ast.FunctionDef) and top.name in MIGRATION_READS
        for node in ast.walk(top)
    }
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def _kind_mentions(relative: str, root: Path = PACKAGE) -> list[str]:
    """Kind names the module spells out: as a string (``"price"``, an address prefix
    ``"price."``), or as a registered ``Kind`` member not named on purpose."""
    found: list[tuple[int, str]] = []
    for node in _scanned(root / relative):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in REGISTERED or any(text.startswith(f"{k}.") for k in REGISTERED):
                found.append((node.lineno, repr(text)))
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Kind"
            and node.attr.lower() in REGISTERED
            and (relative, node.attr) not in NAMED_ON_PURPOSE
        ):
            found.append((node.lineno, f"Kind.{node.attr}"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("relative", CORE)
def test_the_core_names_no_kind(relative: str) -> None:
    assert _kind_mentions(relative) == []


def test_the_scan_finds_kind_names(tmp_path: Path) -> None:
    source = 'x = "price"\ny = f"meter.{x}"\nz = Kind.ALERT\nw = Kind.MIGRATION\n'
    source += 'def read_migrations():\n    return {"price": 1}\n'
    (tmp_path / "probe.py").write_text(source, encoding="utf-8")
    assert _kind_mentions("probe.py", tmp_path) == [
        "line 1: 'price'",
        "line 2: 'meter.'",
        "line 3: Kind.ALERT",
    ]


def test_every_kind_but_migrations_has_one_spec() -> None:
    kinds = [spec.kind for spec in REGISTRY]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == set(Kind) - {Kind.MIGRATION}
    assert spec_for(Kind.MIGRATION) is None
    assert all(spec_for(spec.kind.value) is spec for spec in REGISTRY)


def test_sections_name_the_model_and_the_snapshot() -> None:
    desired, snapshot = Desired(mode="test"), Snapshot()
    for spec in REGISTRY:
        assert spec.declared(desired) == ()
        assert spec.live(snapshot) == {}
    assert len({spec.section for spec in REGISTRY}) == len(REGISTRY)
    assert len({spec.list_path for spec in REGISTRY}) == len(REGISTRY)


def test_registry_order_is_apply_order() -> None:
    assert [spec.kind for spec in REGISTRY] == [
        Kind.PRODUCT,
        Kind.METER,
        Kind.PRICE,
        Kind.ALERT,
        Kind.FEATURE,
        Kind.PORTAL,
        Kind.PRODUCT_FEATURE,
        Kind.COUPON,
        Kind.PROMOTION_CODE,
    ]


@pytest.mark.parametrize(
    ("order", "edges"),
    [(READ_ORDER, "read_after"), (IMPORT_ORDER, "import_after")],
    ids=["read", "import"],
)
def test_each_kind_comes_after_what_it_needs(order: tuple[object, ...], edges: str) -> None:
    assert sorted(spec.kind for spec in order) == sorted(spec.kind for spec in REGISTRY)
    seen: set[Kind] = set()
    for spec in order:
        assert set(getattr(spec, edges)) <= seen, spec.kind
        seen.add(spec.kind)


@pytest.mark.parametrize(
    ("kind", "in_place", "replaced"),
    [
        (Kind.PRODUCT, ["name", "description", "metadata", "active", "default_price"], []),
        (
            Kind.METER,
            ["display_name", "active"],
            ["aggregation", "customer_key", "value_key", "event_time_window"],
        ),
        (
            Kind.PRICE,
            ["nickname", "metadata", "active", "lookup_key", "tax_behavior", "currency_options"],
            [
                "unit_amount",
                "tiers",
                "tiers_mode",
                "recurring",
                "currency",
                "product",
                "transform_quantity",
                "custom_unit_amount",
            ],
        ),
        (Kind.ALERT, ["active"], ["threshold", "customer", "recurrence"]),
        (Kind.FEATURE, ["name", "metadata", "active"], []),
        (
            Kind.PORTAL,
            [
                "business_profile",
                "default_return_url",
                "login_page",
                "features",
                "metadata",
                "active",
            ],
            [],
        ),
        (Kind.PRODUCT_FEATURE, ["attached"], []),
        (
            Kind.COUPON,
            ["name", "metadata", "currency_options", "active"],
            [
                "percent_off",
                "amount_off",
                "currency",
                "duration",
                "duration_in_months",
                "max_redemptions",
                "redeem_by",
                "applies_to",
            ],
        ),
        (
            Kind.PROMOTION_CODE,
            ["active", "metadata"],
            ["code", "coupon", "customer", "max_redemptions", "expires_at", "restrictions"],
        ),
    ],
)
def test_what_changes_in_place_and_what_replaces(
    kind: Kind, in_place: list[str], replaced: list[str]
) -> None:
    """The README's table, from the specs."""
    spec = spec_for(kind)
    assert spec is not None
    assert [f for f in in_place if spec.forces_replacement(f)] == []
    assert [f for f in replaced if not spec.forces_replacement(f)] == []


def test_refused_parameters_map_to_billing_yaml_fields() -> None:
    price, alert = spec_for(Kind.PRICE), spec_for(Kind.ALERT)
    assert price is not None and alert is not None
    assert price.param_field("tiers[2][unit_amount_decimal]") == (
        "tiers",
        2,
        "unit_amount_decimal",
    )
    assert price.param_field("recurring[meter]") == ("recurring", "meter")
    assert price.param_field("custom_unit_amount[preset]") == ("custom_unit_amount", "preset")
    assert price.param_field("currency_options[eur][unit_amount]") == (
        "currency_options",
        "eur",
        "unit_amount",
    )
    assert price.param_field("currency_options[eur][tiers][1][flat_amount]") == (
        "currency_options",
        "eur",
        "tiers",
        1,
        "flat_amount",
    )
    assert price.param_field("currency_options[gbp][custom_unit_amount][minimum]") == (
        "currency_options",
        "gbp",
        "custom_unit_amount",
        "minimum",
    )
    assert price.param_field("expand") is None
    assert alert.param_field("usage_threshold[filters][0][customer]") == ("customer",)
    portal = spec_for(Kind.PORTAL)
    assert portal is not None
    assert portal.param_field("features[subscription_update][products][0][prices][1]") == (
        "features",
        "subscription_update",
        "products",
        0,
        "prices",
        1,
    )
    assert portal.param_field("business_profile[headline]") == ("business_profile", "headline")
    assert portal.param_field("expand[0]") is None
    coupon = spec_for(Kind.COUPON)
    assert coupon is not None
    assert coupon.param_field("applies_to[products][0]") == ("applies_to", "products")
    assert coupon.param_field("currency_options[eur][amount_off]") == ("currency_options",)
    assert coupon.param_field("percent_off") == ("percent_off",)
    code = spec_for(Kind.PROMOTION_CODE)
    assert code is not None
    assert code.param_field("promotion[coupon]") == ("coupon",)
    assert code.param_field("restrictions[minimum_amount]") == ("restrictions", "minimum_amount")


def test_a_change_keeps_its_kind_typed_whether_given_as_text_or_member() -> None:
    as_text = ResourceChange("price.x", "price", Action.NOOP, "matches")
    as_member = ResourceChange("price.x", Kind.PRICE, Action.NOOP, "matches")
    assert as_text.kind is Kind.PRICE
    assert as_text == as_member
    assert as_text.to_json()["kind"] == "price"
    assert ResourceChange.from_json(as_text.to_json()).kind is Kind.PRICE


def test_readers_refuse_a_section_no_kind_has() -> None:
    with pytest.raises(TypeError, match="shipping_rates"):
        snapshot_from_objects(shipping_rates=[])
    with pytest.raises(TypeError, match="shipping_rates"):
        import_account(mode="test", shipping_rates=[])


def test_a_kind_not_listed_reads_as_none() -> None:
    assert snapshot_from_objects() == Snapshot()
    assert "products" not in import_account(mode="test").text


@pytest.mark.parametrize(
    ("field", "before", "after", "replaced"),
    [
        ("tax_behavior", {"tax_behavior": "unspecified"}, {"tax_behavior": "inclusive"}, False),
        ("tax_behavior", {"tax_behavior": "inclusive"}, {"tax_behavior": "exclusive"}, True),
        ("tax_behavior", {"tax_behavior": "exclusive"}, {"tax_behavior": "unspecified"}, True),
        ("currency_options", {}, {"currency_options": {"eur": {}}}, False),
        ("currency_options", {"currency_options": {"eur": {"unit_amount": "1"}}}, {}, False),
        (
            "currency_options.gbp",
            {"currency_options": {"eur": {}, "gbp": {"unit_amount": "1"}}},
            {"currency_options": {"eur": {}}},
            True,
        ),
        (
            "currency_options.gbp",
            {"currency_options": {"eur": {"unit_amount": "1"}}},
            {"currency_options": {"eur": {}, "gbp": {}}},
            False,
        ),
        (
            "currency_options.eur.unit_amount",
            {"currency_options": {"eur": {"tax_behavior": "inclusive"}}},
            {"currency_options": {"eur": {}}},
            False,
        ),
        (
            "currency_options.eur.tax_behavior",
            {"currency_options": {"eur": {"tax_behavior": "unspecified"}}},
            {"currency_options": {"eur": {"tax_behavior": "inclusive"}}},
            False,
        ),
        (
            "currency_options.eur.tax_behavior",
            {"currency_options": {"eur": {"tax_behavior": "inclusive"}}},
            {"currency_options": {"eur": {"tax_behavior": "exclusive"}}},
            True,
        ),
        ("custom_unit_amount.minimum", {}, {}, True),
    ],
)
def test_a_price_field_replaces_only_where_stripe_cannot_update_it(
    field: str, before: dict[str, object], after: dict[str, object], replaced: bool
) -> None:
    """Whether a change to a price's field is a replacement depends on the account's value."""
    price = spec_for(Kind.PRICE)
    assert price is not None
    change = ResourceChange(
        "price.x", Kind.PRICE, Action.REPLACE, "edited", before=before, after=after
    )
    assert price.forces_replacement_of(change, field) is replaced
