"""``show PLANFILE`` and the colour rules every command follows (``--no-color``,
NO_COLOR, FORCE_COLOR)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.mark.parametrize(("fmt", "suffix"), [("text", "txt"), ("markdown", "md"), ("json", "json")])
@pytest.mark.parametrize("name", ["plan", "plan_no_changes", "plan_money"])
def test_show_renders_a_saved_plan_as_plan_did(name: str, fmt: str, suffix: str) -> None:
    result = CliRunner().invoke(main, ["show", str(GOLDEN / f"{name}.json"), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / f"{name}.{suffix}").read_text(encoding="utf-8")


def test_show_refuses_a_tampered_plan_in_one_line_naming_it(tmp_path: Path) -> None:
    data = json.loads((GOLDEN / "plan.json").read_text(encoding="utf-8"))
    data["changes"][0]["action"] = "obliterate"
    tampered = tmp_path / "reviewed.json"
    tampered.write_text(json.dumps(data), encoding="utf-8")
    result = CliRunner().invoke(main, ["show", str(tampered)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: {tampered}: not a stripe-reconcile plan: changes/0/action")


def test_show_refuses_a_kind_this_version_does_not_know(tmp_path: Path) -> None:
    data = json.loads((GOLDEN / "plan.json").read_text(encoding="utf-8"))
    data["changes"][0]["kind"] = "shipping_rate"
    unknown = tmp_path / "newer.json"
    unknown.write_text(json.dumps(data), encoding="utf-8")
    result = CliRunner().invoke(main, ["show", str(unknown)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: {unknown}: not a stripe-reconcile plan: {data['changes'][0]['address']}: "
        "kind 'shipping_rate' is not one this version knows"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{", "not JSON"),
        ("[" * 100 + "]" * 100, "nests deeper than"),
        ('{"format_version": "9"}', "plan format_version '9' is not supported"),
    ],
)
def test_show_refuses_invalid_files(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(main, ["show", str(bad)])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert str(bad) in result.stderr and expected in result.stderr


def test_show_refuses_a_missing_file_or_a_directory(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.json", tmp_path):
        result = CliRunner().invoke(main, ["show", str(path)])
        assert result.exit_code == 1
        assert len(result.stderr.splitlines()) == 1
        assert str(path) in result.stderr


def test_force_color_colours_show_in_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = CliRunner().invoke(main, ["show", str(GOLDEN / "plan.json")])
    assert result.exit_code == 0, result.output
    assert ANSI.search(result.stdout)
    assert ANSI.sub("", result.stdout) == (GOLDEN / "plan.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args",
    [
        ["show", "--no-color", str(GOLDEN / "plan.json")],
        ["--no-color", "show", str(GOLDEN / "plan.json")],
    ],
)
def test_no_color_beats_force_color(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert not ANSI.search(result.stdout)


def test_no_color_environment_beats_force_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    result = CliRunner().invoke(main, ["show", str(GOLDEN / "plan.json")])
    assert not ANSI.search(result.stdout)


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    assert isinstance(group, click.Group)
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(main), ids=" ".join)
def test_every_command_takes_no_color(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--no-color", "--help"])
    assert result.exit_code == 0, result.output
    assert "--no-color" in result.output
