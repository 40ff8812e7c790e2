"""Plans that tell the truth: a migration with nothing to move is an error, and a new
alert beside an undeclared one on the same meter and customer says it may be a rename."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.config import load_config, locate
from reconciler.errors import PlanError
from reconciler.migrations import MigrationSnapshot
from reconciler.model import Desired
from reconciler.plan import Action
from reconciler.planner import SourcePlanError, build_plan
from reconciler.render import render_markdown, render_text
from reconciler.snapshot import LiveObject, Snapshot
from tests.stripe_shapes import snapshot_matching

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = load_config(REPO / "billing.yaml")
MIGRATION = EXAMPLE.migrations[0]
CATALOG = dataclasses.replace(EXAMPLE, migrations=())


def _with_migration(read: MigrationSnapshot) -> Snapshot:
    return dataclasses.replace(snapshot_matching(CATALOG), migrations={MIGRATION.name: read})


def test_a_missing_migration_source_is_a_plan_error_located_in_the_file() -> None:
    snapshot = _with_migration(MigrationSnapshot(from_price_id=None, to_price_id="price_1New"))
    with pytest.raises(SourcePlanError) as caught:
        build_plan(EXAMPLE, snapshot)
    assert isinstance(caught.value, PlanError)
    assert caught.value.problems == (
        (
            ("migrations", "video-seconds-to-meter", "from_price"),
            "price 'video_seconds_legacy' is not in the account; nothing would migrate. "
            "Check the lookup key, or remove the migration if it is done.",
        ),
    )
    example = REPO / "billing.yaml"
    line = next(
        n
        for n, text in enumerate(example.read_text().splitlines(), 1)
        if "from_price: video_seconds_legacy" in text
    )
    located = caught.value.located(lambda path: locate(example, path))
    assert located.startswith(
        f"billing.yaml:{line}:17: migrations.video-seconds-to-meter.from_price: price "
    )
    assert str(caught.value).startswith("billing.yaml: migrations.video-seconds-to-meter.")


@pytest.mark.parametrize(
    "read",
    [
        MigrationSnapshot(from_price_id="price_1Legacy", to_price_id="price_1New"),
        MigrationSnapshot(
            from_price_id="price_1Legacy", to_price_id="price_1New", from_price_active=False
        ),
        MigrationSnapshot(  # every subscription already moved
            from_price_id="price_1Legacy", to_price_id="price_1New", moved=("sub_1", "sub_2")
        ),
    ],
    ids=["no subscriptions", "archived", "fully migrated"],
)
def test_a_legacy_price_archived_or_done_is_not_missing(read: MigrationSnapshot) -> None:
    plan = build_plan(EXAMPLE, _with_migration(read))
    migration = next(c for c in plan.changes if c.kind == "migration")
    assert migration.action is Action.NOOP
    assert migration.details["from_price"] == "price_1Legacy"


def test_a_migration_not_read_is_not_an_error() -> None:
    plan = build_plan(EXAMPLE, snapshot_matching(CATALOG))
    assert next(c for c in plan.changes if c.kind == "migration").reason == "not read"


# --- alert renames ---------------------------------------------------------------------------

OLD = ("video_seconds", "Video seconds passed 50,000")


def _renamed(desired: Desired = CATALOG, **old_essence: object) -> tuple[Desired, Snapshot]:
    """billing.yaml with the alert's title changed; the account as it was."""
    snapshot = snapshot_matching(desired)
    alert = dataclasses.replace(desired.alerts[0], title="Video seconds over 50k")
    live = snapshot.alerts[OLD]
    old = LiveObject(live.stripe_id, {**live.essence, **old_essence})
    return (
        dataclasses.replace(desired, alerts=(alert,)),
        dataclasses.replace(snapshot, alerts={OLD: old}),
    )


HINT = (
    'is this a rename? alert.video_seconds["Video seconds passed 50,000"] ({id}) on the same '
    "meter and customer is not declared and stays active (alerts are identified by meter and "
    "title); to retire it, declare it with its title and active: false"
)


def test_a_renamed_alert_hints_that_the_old_one_stays_active() -> None:
    desired, snapshot = _renamed()
    plan = build_plan(desired, snapshot)
    created = next(c for c in plan.changes if c.kind == "alert")
    assert created.action is Action.CREATE
    hint = HINT.format(id=snapshot.alerts[OLD].stripe_id)
    assert created.reason == f"not in the account\n{hint}"
    assert f"      # {hint}" in render_text(plan, color=False).splitlines()
    assert f"not in the account; {hint}" in render_markdown(plan)
    assert 'alert.video_seconds["Video seconds passed 50,000"]' in plan.unmanaged


@pytest.mark.parametrize(
    "old",
    [{"customer": "cus_other"}, {"active": False}],
    ids=["another customer", "already inactive"],
)
def test_no_rename_hint_when_the_old_alert_is_not_a_twin(old: dict[str, object]) -> None:
    desired, snapshot = _renamed(**old)
    created = next(c for c in build_plan(desired, snapshot).changes if c.kind == "alert")
    assert created.reason == "not in the account"


def test_retiring_the_old_alert_as_the_hint_says_deactivates_it() -> None:
    desired, snapshot = _renamed()
    old = dataclasses.replace(EXAMPLE.alerts[0], active=False)
    retired = dataclasses.replace(desired, alerts=(*desired.alerts, old))
    plan = build_plan(retired, snapshot)
    actions = {c.address: (c.action, c.reason) for c in plan.changes if c.kind == "alert"}
    assert actions == {
        'alert.video_seconds["Video seconds over 50k"]': (Action.CREATE, "not in the account"),
        'alert.video_seconds["Video seconds passed 50,000"]': (
            Action.DEACTIVATE,
            "declared active: false",
        ),
    }
