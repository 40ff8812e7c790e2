"""first_difference names where a plan file departs from the derived plan."""

from __future__ import annotations

from reconciler.planfile import first_difference


def plan(*changes: dict[str, object]) -> dict[str, object]:
    return {"format_version": "1", "changes": list(changes)}


def test_equal_plans_have_no_difference() -> None:
    same = plan({"address": "price.a", "after": {"unit_amount": "4900"}})
    assert (
        first_difference(same, plan({"address": "price.a", "after": {"unit_amount": "4900"}}))
        is None
    )


def test_a_changed_leaf_is_named_by_entry_address_and_field() -> None:
    found = first_difference(
        plan({"address": "price.a", "after": {"unit_amount": "1"}}),
        plan({"address": "price.a", "after": {"unit_amount": "4900"}}),
    )
    assert found == "changes[0] (price.a).after.unit_amount: the plan file says '1', derived '4900'"


def test_an_added_entry_is_counted() -> None:
    found = first_difference(
        plan({"address": "price.a"}, {"address": "price.extra"}), plan({"address": "price.a"})
    )
    assert found == "changes: the plan file has 2 entries, the derived plan 1"


def test_an_added_field_is_named() -> None:
    found = first_difference(
        plan(
            {
                "address": "migration.m",
                "details": {
                    "subscriptions": [
                        {"subscription": "sub_1", "params": {"end_behavior": "cancel"}}
                    ]
                },
            }
        ),
        plan(
            {
                "address": "migration.m",
                "details": {"subscriptions": [{"subscription": "sub_1", "params": {}}]},
            }
        ),
    )
    assert found == (
        "changes[0] (migration.m).details.subscriptions[0] (sub_1).params.end_behavior: "
        "only the plan file has it"
    )


def test_a_type_change_is_a_difference() -> None:
    found = first_difference(
        plan({"address": "p", "after": {"x": 1}}), plan({"address": "p", "after": {"x": True}})
    )
    assert found is not None and "after.x" in found
