"""import: an account with 50+ mixed objects comes back as a billing.yaml that plans clean."""

from __future__ import annotations

from pathlib import Path

from reconciler.apply import apply_plan
from reconciler.config import load_config
from reconciler.emulator import Emulator
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from reconciler.importer import import_account
from reconciler.kinds.registry import REGISTRY
from reconciler.live import read_snapshot
from reconciler.plan import Action, FieldChange
from reconciler.planner import build_plan
from tests.e2e.conftest import API_KEY, stripe_reconcile


def seed_mixed_account(gateway: Gateway) -> int:
    """Objects made the way a dashboard or a script would: none of them by us."""
    made = 0
    meters = []
    for n in range(8):
        meter = gateway.post(
            "/v1/billing/meters",
            {
                "display_name": f"Meter {n}",
                "event_name": f"event_{n}",
                "default_aggregation": {"formula": ["sum", "count", "last"][n % 3]},
                **({"value_settings": {"event_payload_key": "seconds"}} if n == 1 else {}),
            },
        )
        meters.append(meter["id"])
        made += 1
    gateway.post(f"/v1/billing/meters/{meters[7]}/deactivate")
    for n in range(6):
        gateway.post(
            "/v1/products",
            {
                "id": f"prod_mixed_{n}",
                "name": f"Product {n}",
                **({"description": "Has a description"} if n % 2 else {}),
                "metadata": {"tier": str(n)},
            },
        )
        made += 1
    for n in range(30):
        params: dict[str, object] = {"product": f"prod_mixed_{n % 6}", "currency": "usd"}
        if n % 10 != 9:
            params["lookup_key"] = f"mixed_{n}"
        match n % 5:
            case 0:
                params["unit_amount"] = 100 + n
            case 1:
                params["unit_amount_decimal"] = "0.125"
                params["recurring"] = {
                    "interval": "month",
                    "usage_type": "metered",
                    "meter": meters[n % 7],
                }
            case 2:
                params["billing_scheme"] = "tiered"
                params["tiers_mode"] = "graduated" if n % 2 else "volume"
                params["tiers"] = [
                    {"up_to": 100, "unit_amount": 0, "flat_amount": 500},
                    {"up_to": "inf", "unit_amount_decimal": "0.75"},
                ]
                params["recurring"] = {
                    "interval": "month",
                    "usage_type": "metered",
                    "meter": meters[0],
                }
            case 3:
                params["unit_amount"] = 2500
                params["recurring"] = {"interval": "year", "interval_count": 1}
                params["nickname"] = f"Yearly {n}"
            case _:
                params["unit_amount"] = 900
                params["recurring"] = {"interval": "week", "interval_count": 2}
                params["transform_quantity"] = {"divide_by": 60, "round": "up"}
                params["metadata"] = {"source": "dashboard"}
        gateway.post("/v1/prices", params)
        made += 1
    first = next(p for p in gateway.list_all("/v1/prices", {"lookup_keys": ["mixed_0"]}))
    gateway.post("/v1/products/prod_mixed_0", {"default_price": first["id"]})
    for n in range(6):
        usage = {"gte": 1000 * (n + 1), "meter": meters[n % 3], "recurrence": "one_time"}
        alert = gateway.post(
            "/v1/billing/alerts",
            {"alert_type": "usage_threshold", "title": f"Alert {n}", "usage_threshold": usage},
        )
        if n == 5:
            gateway.post(f"/v1/billing/alerts/{alert['id']}/deactivate")
        made += 1
    gateway.post(
        "/v1/prices",
        {
            "product": "prod_mixed_1",
            "currency": "usd",
            "unit_amount_decimal": "0.35",
            "lookup_key": "seconds_legacy",
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
        },
        stripe_version=LEGACY_API_VERSION,
    )
    return made + 1


def test_import_round_trips_through_plan(emulator: Emulator, tmp_path: Path) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url)
    assert seed_mixed_account(gateway) >= 50
    out = tmp_path / "billing.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    assert "3 prices had no lookup key" in result.stderr
    assert "not imported: legacy usage-record price seconds_legacy" in result.stderr
    text = out.read_text()
    assert "# A migration moves subscriptions off a legacy price" in text
    desired = load_config(out)
    assert len(desired.prices) == 30 and len(desired.alerts) == 6
    # the deactivated meter no price or alert uses is left out, like archived objects
    assert [m.event_name for m in desired.meters] == [f"event_{n}" for n in range(7)]

    snapshot = read_snapshot(gateway)
    plan = build_plan(desired, snapshot)
    # Only the proposed lookup keys are changes: each an update of a price taken over by id.
    assert {c.action for c in plan.actionable} == {Action.UPDATE}
    assert len(plan.actionable) == 3
    for change in plan.actionable:
        assert change.changes[0] == FieldChange(
            "lookup_key", None, change.address.removeprefix("price.")
        )
    apply_plan(plan, snapshot, gateway)
    again = build_plan(desired, read_snapshot(gateway))
    assert not again.has_changes
    assert again.unmanaged == ("price.seconds_legacy",)


def test_import_refuses_to_overwrite(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "billing.yaml"
    out.write_text("keep me\n")
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 1
    assert "exists; pass --force" in result.stderr
    assert out.read_text() == "keep me\n"


def test_import_writes_archived_prices_so_the_plan_has_no_changes(
    emulator: Emulator, tmp_path: Path
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url)
    meter = gateway.post(
        "/v1/billing/meters",
        {
            "display_name": "Seconds",
            "event_name": "seconds",
            "default_aggregation": {"formula": "sum"},
        },
    )
    gateway.post("/v1/products", {"id": "prod_video", "name": "Video"})
    gateway.post("/v1/products", {"id": "prod_retired", "name": "Retired"})
    metered = {"interval": "month", "usage_type": "metered", "meter": meter["id"]}
    made = {
        key: gateway.post(
            "/v1/prices",
            {
                "product": product,
                "currency": "usd",
                "unit_amount_decimal": "0.35",
                "recurring": metered,
            }
            | ({"lookup_key": key} if key != "unnamed" else {}),
        )
        for key, product in [
            ("seconds_now", "prod_video"),
            ("seconds_2024", "prod_video"),
            ("retired_rate", "prod_retired"),
            ("unnamed", "prod_video"),
        ]
    }
    for key in ("seconds_2024", "retired_rate", "unnamed"):
        gateway.post(f"/v1/prices/{made[key]['id']}", {"active": "false"})
    gateway.post("/v1/products/prod_retired", {"active": "false"})

    out = tmp_path / "billing.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    desired = load_config(out)
    states = {p.lookup_key: (p.product, p.active) for p in desired.prices}
    assert states == {
        "seconds_now": ("prod_video", True),
        "seconds_2024": ("prod_video", False),
        "retired_rate": ("prod_retired", False),
    }
    assert {p.id: p.active for p in desired.products} == {
        "prod_video": True,
        "prod_retired": False,
    }
    assert "active: false" in out.read_text()
    plan = stripe_reconcile("plan", "--detailed-exitcode", "-f", str(out), url=emulator.url)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes." in plan.stdout


def test_import_lists_the_products_once_for_them_and_their_features(
    emulator: Emulator, tmp_path: Path
) -> None:
    """120 products (two pages of 100), three with a feature attached: two product list
    requests, not four (once more for their attachments), and the same billing.yaml as
    when each kind lists the products for itself."""
    gateway = Gateway(API_KEY, api_base=emulator.url)
    feature = gateway.post(
        "/v1/entitlements/features", {"lookup_key": "hd_export", "name": "HD export"}
    )
    for n in range(120):
        gateway.post("/v1/products", {"id": f"prod_many_{n:03}", "name": f"Product {n}"})
    for n in (0, 99, 119):
        gateway.post(
            f"/v1/products/prod_many_{n:03}/features", {"entitlement_feature": feature["id"]}
        )
    before = emulator.stats()["by_route"]
    out = tmp_path / "billing.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    after = emulator.stats()["by_route"]

    def made(route: str) -> int:
        return int(after.get(route, 0) - before.get(route, 0))

    assert made("GET /v1/products") == 2
    assert made("GET /v1/products/{product}/features") == 120
    each_on_its_own = {spec.section: spec.listing(gateway.list_all, None) for spec in REGISTRY}
    assert out.read_text() == import_account(mode="test", **each_on_its_own).text
    imported = {p.id: p.features for p in load_config(out).products}
    assert {p for p, keys in imported.items() if keys} == {
        "prod_many_000",
        "prod_many_099",
        "prod_many_119",
    }
