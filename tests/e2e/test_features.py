"""Entitlement features, the first kind added through the registry: declared, planned,
applied, renamed, archived, imported and drift-checked against the emulator."""

from __future__ import annotations

from pathlib import Path

from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.plan import Action, Plan
from tests.e2e.conftest import converge, plan_of, stripe_reconcile

BASE = """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video}
features:
"""
FEATURES = (
    BASE
    + """\
  - {lookup_key: hd_export, name: HD export}
  - {lookup_key: api.access, name: API access, metadata: {tier: pro}}
"""
)


def actions(plan: Plan) -> dict[str, Action]:
    return {c.address: c.action for c in plan.changes if c.address.startswith("feature.")}


def test_features_are_created_renamed_and_archived(emulator: Emulator, gateway: Gateway) -> None:
    _, first = plan_of(FEATURES, gateway)
    assert actions(first) == {
        "feature.hd_export": Action.CREATE,
        "feature.api.access": Action.CREATE,
    }
    assert not converge(FEATURES, gateway).has_changes
    listed = {f["lookup_key"]: f for f in gateway.get("/v1/entitlements/features")["data"]}
    assert listed["api.access"]["metadata"] == {"tier": "pro", "managed_by": "stripe-reconcile"}

    renamed = FEATURES.replace("name: HD export", "name: HD and 4K export")
    _, rename = plan_of(renamed, gateway)
    change = next(c for c in rename.changes if c.address == "feature.hd_export")
    assert (change.action, [c.field for c in change.changes]) == (Action.UPDATE, ["name"])
    assert not converge(renamed, gateway).has_changes

    retired = renamed.replace("name: API access,", "name: API access, active: false,")
    _, retire = plan_of(retired, gateway)
    assert actions(retire)["feature.api.access"] is Action.ARCHIVE
    assert not converge(retired, gateway).has_changes
    active = {f["lookup_key"] for f in gateway.get("/v1/entitlements/features")["data"]}
    assert active == {"hd_export"}

    # Archiving is final in Stripe: declared active again, a new feature takes the key.
    back = converge(renamed, gateway)
    assert not back.has_changes
    archived = gateway.get("/v1/entitlements/features", {"archived": True})["data"]
    assert [f["lookup_key"] for f in archived] == ["api.access"]


def test_a_feature_someone_else_made_is_unmanaged_until_declared(
    emulator: Emulator, gateway: Gateway
) -> None:
    gateway.post("/v1/entitlements/features", {"lookup_key": "sso", "name": "SSO"})
    _, plan = plan_of(BASE + "  - {lookup_key: hd_export, name: HD export}\n", gateway)
    assert "feature.sso" in plan.unmanaged
    adopted = BASE + "  - {lookup_key: sso, name: Single sign-on}\n"
    _, adopt = plan_of(adopted, gateway)
    change = next(c for c in adopt.changes if c.address == "feature.sso")
    assert change.action is Action.UPDATE
    assert "adopted" in change.reason


def test_duplicate_feature_lookup_keys_are_refused_at_validate(tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(
        BASE + "  - {lookup_key: sso, name: SSO}\n  - {lookup_key: sso, name: SSO again}\n",
        encoding="utf-8",
    )
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    assert (
        f"{config}:7:18: features[1].lookup_key: duplicate feature lookup_key 'sso' "
        "(also features[0])"
    ) in result.stderr + result.stdout


def test_import_writes_features_and_the_plan_is_empty(emulator: Emulator, tmp_path: Path) -> None:
    gateway = Gateway("sk_test_e2e_0123456789", api_base=emulator.url, max_retries=0)
    assert not converge(FEATURES, gateway).has_changes
    gateway.post("/v1/entitlements/features", {"lookup_key": "sso", "name": "SSO"})
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = out.read_text(encoding="utf-8")
    assert "lookup_key: sso" in imported and "lookup_key: api.access" in imported
    again = stripe_reconcile("plan", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout
