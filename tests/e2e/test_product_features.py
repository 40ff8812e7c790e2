"""The features attached to each product (``features:`` on a product): attached,
detached, left alone where undeclared, detached before an archive, imported,
drift-checked and resumed after a crash, against the emulator."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import apply_plan
from reconciler.config import load_text
from reconciler.emulator import Emulator
from reconciler.errors import ApplyError, StripeCallError
from reconciler.gateway import Gateway
from reconciler.live import read_snapshot
from reconciler.plan import Action, Plan
from reconciler.planfile import resolve_saved_plan
from reconciler.planner import build_plan
from tests.e2e.conftest import API_KEY, converge, kill_at_write, plan_of, stripe_reconcile

FEATURES = """\
features:
  - {lookup_key: hd_export, name: HD export}
  - {lookup_key: api.access, name: API access}
  - {lookup_key: sso, name: Single sign-on}
"""
BOTH = (
    """\
version: 1
mode: test
products:
  - {id: prod_video, name: Video, features: [hd_export, api.access]}
  - {id: prod_team, name: Team}
"""
    + FEATURES
)


def actions(plan: Plan, prefix: str = "product_feature.") -> dict[str, Action]:
    return {c.address: c.action for c in plan.actionable if c.address.startswith(prefix)}


def attached(gateway: Gateway, product: str) -> list[str]:
    """The lookup keys of the features attached to ``product``, sorted."""
    listed = gateway.get(f"/v1/products/{product}/features")["data"]
    return sorted(a["entitlement_feature"]["lookup_key"] for a in listed)


def reads_of(emulator: Emulator, path: str, since: set[str]) -> int:
    """How many GETs of ``path`` the emulator answered, not counting the requests ``since``
    holds (their ids, from its request log)."""
    return sum(
        1
        for entry in emulator.stats()["log"]
        if entry["request_id"] not in since and (entry["method"], entry["path"]) == ("GET", path)
    )


def seen(emulator: Emulator) -> set[str]:
    return {entry["request_id"] for entry in emulator.stats()["log"]}


def feature_id(gateway: Gateway, lookup_key: str) -> str:
    found = gateway.get("/v1/entitlements/features", {"lookup_key": lookup_key})["data"]
    return str(found[0]["id"])


def test_products_and_features_made_in_one_apply_are_attached(gateway: Gateway) -> None:
    _, first = plan_of(BOTH, gateway)
    assert actions(first, "") == {
        "product.prod_video": Action.CREATE,
        "product.prod_team": Action.CREATE,
        "feature.hd_export": Action.CREATE,
        "feature.api.access": Action.CREATE,
        "feature.sso": Action.CREATE,
        "product_feature.prod_video/hd_export": Action.CREATE,
        "product_feature.prod_video/api.access": Action.CREATE,
    }
    assert not converge(BOTH, gateway).has_changes
    assert attached(gateway, "prod_video") == ["api.access", "hd_export"]
    assert attached(gateway, "prod_team") == []


def test_a_feature_taken_out_of_the_list_is_detached(gateway: Gateway) -> None:
    assert not converge(BOTH, gateway).has_changes
    fewer = BOTH.replace("features: [hd_export, api.access]", "features: [hd_export]")
    _, plan = plan_of(fewer, gateway)
    (change,) = [c for c in plan.actionable if c.kind == "product_feature"]
    assert (change.address, change.action) == (
        "product_feature.prod_video/api.access",
        Action.ARCHIVE,
    )
    assert change.reason == "not among product.prod_video's features: detach it"
    assert not converge(fewer, gateway).has_changes
    assert attached(gateway, "prod_video") == ["hd_export"]
    # An empty list detaches the rest.
    none = BOTH.replace("features: [hd_export, api.access]", "features: []")
    assert not converge(none, gateway).has_changes
    assert attached(gateway, "prod_video") == []


def test_a_product_without_the_key_keeps_its_attachments_and_costs_no_read(
    emulator: Emulator, gateway: Gateway
) -> None:
    assert not converge(BOTH, gateway).has_changes
    gateway.post(
        "/v1/products/prod_team/features", {"entitlement_feature": feature_id(gateway, "sso")}
    )
    before = seen(emulator)
    _, plan = plan_of(BOTH, gateway)
    assert not plan.has_changes
    assert plan.unmanaged == ()
    # One list for the product that declares features:, none for the other.
    assert reads_of(emulator, "/v1/products/prod_video/features", before) == 1
    assert reads_of(emulator, "/v1/products/prod_team/features", before) == 0
    assert attached(gateway, "prod_team") == ["sso"]
    # Without the key anywhere (and no feature declared) nothing of entitlements is read.
    bare = "version: 1\nmode: test\nproducts:\n  - {id: prod_team, name: Team}\n"
    before = sum(n for r, n in emulator.stats()["by_route"].items() if "feature" in r)
    plan_of(bare, gateway)
    after = sum(n for r, n in emulator.stats()["by_route"].items() if "feature" in r)
    assert after == before


def test_a_feature_archived_while_attached_is_detached_first(gateway: Gateway) -> None:
    assert not converge(BOTH, gateway).has_changes
    retired = BOTH.replace("features: [hd_export, api.access]", "features: [hd_export]").replace(
        "name: API access}", "name: API access, active: false}"
    )
    snapshot, plan = plan_of(retired, gateway)
    assert actions(plan, "") == {
        "product_feature.prod_video/api.access": Action.ARCHIVE,
        "feature.api.access": Action.ARCHIVE,
    }
    result = apply_plan(plan, snapshot, gateway)
    assert result.done == [
        "product_feature.prod_video/api.access: detach",
        "feature.api.access: archive",
    ]
    assert not plan_of(retired, gateway)[1].has_changes
    assert attached(gateway, "prod_video") == ["hd_export"]


def test_a_feature_archived_behind_the_tools_back_is_made_anew_and_attached(
    gateway: Gateway,
) -> None:
    assert not converge(BOTH, gateway).has_changes
    old = feature_id(gateway, "api.access")
    gateway.post(f"/v1/entitlements/features/{old}", {"active": False})
    _, plan = plan_of(BOTH, gateway)
    # The attachment to the archived feature is not api.access any more: it is named by id.
    assert actions(plan, "") == {
        "feature.api.access": Action.CREATE,
        f"product_feature.prod_video/{old}": Action.ARCHIVE,
        "product_feature.prod_video/api.access": Action.CREATE,
    }
    assert not converge(BOTH, gateway).has_changes
    listed = gateway.get("/v1/products/prod_video/features")["data"]
    assert old not in {a["entitlement_feature"]["id"] for a in listed}
    assert attached(gateway, "prod_video") == ["api.access", "hd_export"]


def test_attachments_changed_behind_the_tools_back_are_put_back(gateway: Gateway) -> None:
    assert not converge(BOTH, gateway).has_changes
    gateway.post(
        "/v1/products/prod_video/features", {"entitlement_feature": feature_id(gateway, "sso")}
    )
    hd = next(
        a
        for a in gateway.get("/v1/products/prod_video/features")["data"]
        if a["entitlement_feature"]["lookup_key"] == "hd_export"
    )
    gateway.delete(f"/v1/products/prod_video/features/{hd['id']}")
    _, drift = plan_of(BOTH, gateway)
    assert actions(drift) == {
        "product_feature.prod_video/sso": Action.ARCHIVE,
        "product_feature.prod_video/hd_export": Action.CREATE,
    }
    assert not converge(BOTH, gateway).has_changes
    assert attached(gateway, "prod_video") == ["api.access", "hd_export"]


def test_an_apply_killed_between_two_attachments_is_finished_by_a_rerun(
    emulator: Emulator, gateway: Gateway, tmp_path: Path
) -> None:
    features_only = BOTH.replace(", features: [hd_export, api.access]", "")
    assert not converge(features_only, gateway).has_changes
    config = tmp_path / "billing.yaml"
    config.write_text(BOTH, encoding="utf-8")
    command = ["apply", "--auto-approve", "--concurrency", "1", "-f", str(config)]
    emulator.set_faults("latency=1.0:0.03")  # 30 ms a request: a clean kill
    killed = kill_at_write(emulator, command, 1, "POST /v1/products/{product}/features")
    assert killed == -signal.SIGKILL, "the apply finished before the kill"
    emulator.set_faults(None)
    assert len(attached(gateway, "prod_video")) == 1
    rerun = stripe_reconcile(*command, url=emulator.url)
    assert rerun.returncode == 0, rerun.stderr
    assert attached(gateway, "prod_video") == ["api.access", "hd_export"]
    again = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert "No changes." in again.stdout


class _CrashAfter:
    """A gateway whose writes and deletes fail after ``n`` successes, as if the process
    died."""

    def __init__(self, gateway: Gateway, n: int) -> None:
        self.gateway = gateway
        self.left = n

    def _spend(self, path: str) -> None:
        if self.left <= 0:
            raise StripeCallError("connection lost", method="post", path=path)
        self.left -= 1

    def write(self, path: str, params: Any = None, **options: Any) -> tuple[Any, bool]:
        self._spend(path)
        return self.gateway.write(path, params, **options)

    def delete(self, path: str, **options: Any) -> tuple[Any, bool]:
        self._spend(path)
        return self.gateway.delete(path, **options)


def test_a_saved_plan_interrupted_between_detaches_resumes(gateway: Gateway) -> None:
    everything = BOTH.replace("[hd_export, api.access]", "[hd_export, api.access, sso]")
    assert not converge(everything, gateway).has_changes
    swapped = BOTH.replace("[hd_export, api.access]", "[hd_export]").replace(
        "{id: prod_team, name: Team}", "{id: prod_team, name: Team, features: [sso]}"
    )
    desired = load_text(swapped, "billing.yaml")
    snapshot = read_snapshot(gateway, desired)
    saved = build_plan(desired, snapshot)
    assert actions(saved) == {
        "product_feature.prod_team/sso": Action.CREATE,
        "product_feature.prod_video/api.access": Action.ARCHIVE,
        "product_feature.prod_video/sso": Action.ARCHIVE,
    }
    with pytest.raises(ApplyError):  # the attach and one detach land, then it dies
        apply_plan(saved, snapshot, _CrashAfter(gateway, 2), concurrency=1)  # type: ignore[arg-type]
    now = read_snapshot(gateway, desired)
    rest = resolve_saved_plan(saved, desired, now)
    assert len(rest.actionable) == 1
    apply_plan(rest, now, gateway)
    assert not build_plan(desired, read_snapshot(gateway, desired)).has_changes
    assert attached(gateway, "prod_video") == ["hd_export"]
    assert attached(gateway, "prod_team") == ["sso"]


def test_import_writes_each_products_features_and_the_plan_is_empty(
    emulator: Emulator, tmp_path: Path
) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    assert not converge(BOTH, gateway).has_changes
    # An archived feature left attached cannot be named: that product gets no features:.
    gateway.post("/v1/products", {"id": "prod_old", "name": "Old"})
    gone = gateway.post("/v1/entitlements/features", {"lookup_key": "beta", "name": "Beta"})
    gateway.post("/v1/products/prod_old/features", {"entitlement_feature": gone["id"]})
    gateway.post(f"/v1/entitlements/features/{gone['id']}", {"active": False})
    out = tmp_path / "imported.yaml"
    result = stripe_reconcile("import", "--out", str(out), url=emulator.url)
    assert result.returncode == 0, result.stderr
    imported = load_text(out.read_text(encoding="utf-8"), str(out))
    products = {p.id: p.features for p in imported.products}
    assert products == {
        "prod_video": ("api.access", "hd_export"),
        "prod_team": None,
        "prod_old": None,
    }
    assert f"archived feature {gone['id']} still attached" in out.read_text(encoding="utf-8")
    again = stripe_reconcile("plan", "-f", str(out), url=emulator.url)
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout


def test_a_product_naming_an_undeclared_or_archived_feature_is_refused_at_validate(
    tmp_path: Path,
) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(
        BOTH.replace("[hd_export, api.access]", "[hd_export, video.4k]").replace(
            "name: Single sign-on}", "name: Single sign-on, active: false}"
        )
        + "  - {lookup_key: extra, name: Extra}\n",
        encoding="utf-8",
    )
    text = config.read_text(encoding="utf-8").replace(
        "{id: prod_team, name: Team}", "{id: prod_team, name: Team, features: [sso]}"
    )
    config.write_text(text, encoding="utf-8")
    result = stripe_reconcile("validate", "-f", str(config))
    assert result.returncode == 1
    out = result.stderr + result.stdout
    assert (
        f"{config}:4:57: products[0].features[1]: feature 'video.4k' is not declared in features"
    ) in out
    assert (
        f"{config}:5:44: products[1].features[0]: feature 'sso' is declared active: false; "
        "an archived feature cannot be attached"
    ) in out
