"""The release story holds together: one version everywhere a release bump must touch.

pyproject.toml's version is the source; CHANGELOG.md's newest released section,
the action's default version, the tag every workflow template pins the action
to and the README's examples must all say the same, and ``--version`` prints it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from click.testing import CliRunner

import reconciler
from reconciler.cli import main

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
TEMPLATES = sorted((REPO / ".github" / "workflows").glob("billing-*.yml"))
ACTION_USES = re.compile(r"uses:\s*stripe-reconcile/stripe-reconcile@(\S+)")


def test_version_prints_the_version_in_pyproject() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"stripe-reconcile, version {VERSION}\n"
    assert reconciler.__version__ == VERSION


def test_the_changelog_newest_release_is_this_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](.*)$", text, flags=re.MULTILINE)
    assert headings[0] == ("Unreleased", "")
    newest, dated = headings[1]
    assert newest == VERSION
    assert re.fullmatch(r" - \d{4}-\d{2}-\d{2}", dated), dated
    assert f"[{VERSION}]: " in text and "[Unreleased]: " in text
    assert f"compare/v{VERSION}...HEAD" in text


def test_the_action_and_every_template_pin_this_version() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert action["inputs"]["version"]["default"] == VERSION
    for template in TEMPLATES:
        pins = ACTION_USES.findall(template.read_text())
        assert pins, f"{template.name} does not use the action"
        assert set(pins) == {f"v{VERSION}"}, template.name


def test_the_readme_and_hooks_show_this_version() -> None:
    readme = (REPO / "README.md").read_text()
    assert set(ACTION_USES.findall(readme)) == {f"v{VERSION}"}
    assert set(re.findall(r"stripe-reconcile==(\d[\w.]*)", readme)) == {VERSION}
    assert set(re.findall(r"rev: v(\S+)", (REPO / ".pre-commit-hooks.yaml").read_text())) == {
        VERSION
    }


def test_the_release_workflow_checks_the_tag_and_publishes_by_trusted_publishing() -> None:
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    assert release[True] == {"push": {"tags": ["v*"]}}  # "on" is YAML 1.1's true
    assert release["permissions"] == {"contents": "read"}
    build = " ".join(s.get("run", "") for s in release["jobs"]["build"]["steps"])
    assert '"$TAG" != "v$version"' in build and "python -m build" in build
    test = " ".join(s.get("run", "") for s in release["jobs"]["test"]["steps"])
    assert 'stripe-reconcile" demo' in test and "pytest" in test
    publish = release["jobs"]["publish"]
    assert publish["needs"] == "test"
    assert publish["environment"] == {"name": "release"}
    assert publish["permissions"] == {"id-token": "write"}
    uses = [s.get("uses", "") for s in publish["steps"]]
    assert "pypa/gh-action-pypi-publish@release/v1" in uses
    assert all("password" not in (s.get("with") or {}) for s in publish["steps"])
    github_release = release["jobs"]["github-release"]
    assert github_release["permissions"] == {"contents": "write"}
    assert 'gh release create "$TAG" dist/*' in github_release["steps"][-1]["run"]
