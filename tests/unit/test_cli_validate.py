"""The validate command and the command group's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main

REPO = Path(__file__).resolve().parents[2]
CONTRACT = [
    "validate",
    "plan",
    "apply",
    "status",
    "import",
    "simulate",
    "emulator",
    "demo",
    "github",
    "schema",
    "show",
]


def test_validate_example_exits_zero_with_summary() -> None:
    result = CliRunner().invoke(main, ["validate", "-f", str(REPO / "billing.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith(
        "valid (3 products, 2 meters, 5 prices, 1 alert, 1 migration)"
    )


def test_validate_defaults_to_billing_yaml_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0
    assert result.output.startswith("billing.yaml: valid")


def test_validate_reports_every_error_and_exits_one(tmp_path: Path) -> None:
    doc = tmp_path / "billing.yaml"
    doc.write_text("version: 1\nmode: staging\nprices: 3\n")
    result = CliRunner().invoke(main, ["validate", "-f", str(doc)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{doc}:2:7: mode: must be one of test, live, not 'staging'",
        f"{doc}:3:9: prices: must be a list, not an integer",
        f"{doc}: 2 errors",
    ]


def test_validate_missing_file_exits_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "-f", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert "absent.yaml: file not found" in result.output


def test_help_lists_the_whole_contract() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line]
    assert sorted(listed) == sorted(CONTRACT)


@pytest.mark.parametrize(("args", "name"), [([], "billing"), (["--plan"], "plan")])
def test_schema_prints_the_shipped_schema(args: list[str], name: str) -> None:
    result = CliRunner().invoke(main, ["schema", *args])
    assert result.exit_code == 0, result.output
    shipped = REPO / "reconciler" / "schemas" / f"{name}.schema.json"
    assert result.output == shipped.read_text(encoding="utf-8")


def test_import_header_points_at_a_schema_the_user_can_write() -> None:
    from reconciler.importer import HEADER

    first, second = HEADER.splitlines()[:2]
    assert first == "# yaml-language-server: $schema=billing.schema.json"
    assert "stripe-reconcile schema > billing.schema.json" in second


def test_validate_reports_schema_and_semantic_errors_in_one_run(tmp_path: Path) -> None:
    from tests.unit.test_config import ONE_SCHEMA_TWO_SEMANTIC

    doc = tmp_path / "envs-test.yaml"
    doc.write_text(ONE_SCHEMA_TWO_SEMANTIC)
    result = CliRunner().invoke(main, ["validate", "-f", str(doc)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{doc}:12:57: prices[0].recurring.meter: meter 'video_second' is not declared in meters",
        f"{doc}:16:18: prices[1].unit_amount: must be a whole number, not a string",
        f"{doc}:18:23: alerts[0].meter: meter 'nowhere' is not declared in meters",
        f"{doc}: 3 errors",
    ]
