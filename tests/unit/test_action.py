"""The GitHub Action's logic with a fake command line: the branches a workflow rarely takes.

The end-to-end runs (tests/e2e/test_gitops.py) drive the real command line
against the emulator and a fake GitHub over HTTP; these call
:mod:`reconciler.action` directly with a runner that answers as the command
line would, to reach cut comments, Dependabot, failed plans and missing setup.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.action import ActionContext, fit, run_apply, run_drift, run_plan
from reconciler.errors import ReconcileError
from reconciler.github import GitHub
from reconciler.plan import Plan, fingerprint
from reconciler.revenue import MigrationRevenue, RevenuePreview, SubscriptionRevenue
from tests.unit.test_github import FakeGitHub

KEY = "sk_test_e2e_0123456789"


@pytest.fixture(autouse=True)
def _in_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The action writes its plan files where it runs: here, never in the checkout."""
    monkeypatch.chdir(tmp_path)


def _plan(path: Path) -> None:
    made = Plan(config_hash=fingerprint({"c": 1}), snapshot_fingerprint=fingerprint({"s": 1}))
    path.write_text(made.dumps())


class Runner:
    """Answers ``plan`` by writing an empty plan (or failing), ``apply`` with ``answer``."""

    def __init__(self, code: int = 0, answer: str = "", stderr: str = "") -> None:
        self.code, self.answer, self.stderr = code, answer, stderr
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if args[0] == "plan" and self.code in (0, 2):
            _plan(Path(args[args.index("--out") + 1]))
        return subprocess.CompletedProcess(list(args), self.code, self.answer, self.stderr)


def _context(
    tmp_path: Path, runner: Runner, fake: FakeGitHub | None = None, **env: str
) -> tuple[ActionContext, list[str]]:
    said: list[str] = []
    base = {
        "STRIPE_API_KEY": KEY,
        "GITHUB_REPOSITORY": "acme/billing",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
    }
    context = ActionContext(
        env={**base, **env},
        run=runner,
        say=said.append,
        github=None if fake is None else (lambda: GitHub(fake)),
    )
    return context, said


def _event(tmp_path: Path, **event: Any) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return str(path)


def test_fit_cuts_at_a_line_and_closes_what_it_opened() -> None:
    body = "<details><summary>x</summary>\n\n```diff\n" + "+ line\n" * 20000 + "```\n</details>\n"
    cut = fit(body, 1000)
    assert len(cut) <= 1000
    assert cut.count("```") % 2 == 0
    assert cut.count("<details>") == cut.count("</details>")
    assert "**Cut here:** the whole text is in the job summary" in cut
    assert fit("short") == "short"


def test_dependabot_gets_a_note_not_a_failure(tmp_path: Path) -> None:
    fake = FakeGitHub()
    event = _event(
        tmp_path,
        pull_request={"number": 5, "head": {"repo": {"full_name": "a/b"}}},
        repository={"full_name": "a/b"},
    )
    context, said = _context(
        tmp_path,
        Runner(),
        fake,
        STRIPE_API_KEY="",
        GITHUB_ACTOR="dependabot[bot]",
        GITHUB_EVENT_PATH=event,
    )
    assert run_plan(context, source="billing.yaml") == 0
    assert "Dependabot's pull requests get no Actions secrets" in fake.comments[0]["body"]
    assert any(line.startswith("::notice::") for line in said)


def test_a_plan_outside_a_pull_request_comments_nowhere(tmp_path: Path) -> None:
    fake = FakeGitHub()
    runner = Runner(code=2)
    context, said = _context(tmp_path, runner, fake)
    assert run_plan(context, source="envs/a/billing.yaml", output_format="markdown") == 0
    assert fake.calls == []
    assert context.outputs["changes"] == "true" and context.outputs["exit-code"] == "2"
    assert said[0].startswith("<!-- stripe-reconcile-plan -->")  # the markdown in the log
    context.finish()
    written = (tmp_path / "output").read_text().splitlines()
    assert "changes=true" in written and "plan-file=plan.json" in written


def test_drift_needs_a_key_and_reports_a_failed_plan(tmp_path: Path) -> None:
    context, said = _context(tmp_path, Runner(), STRIPE_API_KEY=" ")
    assert run_drift(context, source="envs/live/billing.yaml") == 1
    assert "STRIPE_READ_ONLY_KEY_LIVE" in said[0]
    failing = Runner(code=1, stderr="Error: STRIPE_API_BASE unreachable")
    context, said = _context(tmp_path, failing)
    assert run_drift(context) == 1
    assert "STRIPE_API_BASE unreachable" in (tmp_path / "summary.md").read_text()
    clean, _ = _context(tmp_path, Runner(code=0), FakeGitHub())
    assert run_drift(clean, output_format="json") == 0
    assert clean.outputs["changes"] == "false"


def test_a_dispatched_apply_whose_plan_fails_applies_nothing(tmp_path: Path) -> None:
    runner = Runner(code=1, stderr="Error: billing.yaml: file not found")
    context, _ = _context(tmp_path, runner, GITHUB_EVENT_NAME="workflow_dispatch")
    assert run_apply(context) == 1
    assert [call[0] for call in runner.calls] == ["plan"]
    assert "file not found" in (tmp_path / "summary.md").read_text()


def test_apply_without_a_key_or_outside_a_workflow_says_so(tmp_path: Path) -> None:
    context, said = _context(tmp_path, Runner(), STRIPE_API_KEY="")
    assert run_apply(context, source="envs/live/billing.yaml") == 1
    assert "secret of envs/live/billing.yaml's environment" in said[0]
    said_bare: list[str] = []
    bare = ActionContext(env={"STRIPE_API_KEY": KEY}, run=Runner(), say=said_bare.append)
    assert run_apply(bare) == 1
    assert said_bare == ["::error::no reviewed plan to apply: GITHUB_TOKEN is not set"]
    with pytest.raises(ReconcileError, match="GITHUB_REPOSITORY is not set"):
        _ = bare.repo


class RevenueRunner(Runner):
    """Answers ``plan`` as the command line does: with ``--revenue``, the plan file carries
    a revenue preview (one migration, 3 seats from $10.00 to $12.00)."""

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        result = super().__call__(args)
        if args[0] == "plan" and "--revenue" in args:
            out = Path(args[args.index("--out") + 1])
            rows = (SubscriptionRevenue("sub_1", "cus_1", 3000, 3600),)
            preview = RevenuePreview(200, (MigrationRevenue("migration.raise", "usd", 1, 1, rows),))
            made = Plan.from_json(json.loads(out.read_text()))
            out.write_text(dataclasses.replace(made, revenue=preview.to_json()).dumps())
        return result


def test_plan_with_revenue_asks_for_it_and_comments_it(tmp_path: Path) -> None:
    fake = FakeGitHub()
    runner = RevenueRunner(code=2)
    event = _event(tmp_path, pull_request={"number": 9, "head": {"repo": {"full_name": "a/b"}}})
    context, _ = _context(tmp_path, runner, fake, GITHUB_EVENT_PATH=event)
    assert run_plan(context, source="billing.yaml", revenue=True) == 0
    assert runner.calls[0][-1] == "--revenue"
    body = fake.comments[0]["body"]
    assert "#### Revenue preview" in body
    assert "| `migration.raise` | 1 | 1 | \\$30.00 | \\$36.00 | +\\$6.00 |" in body
    assert "#### Revenue preview" in (tmp_path / "summary.md").read_text()

    plain_runner = RevenueRunner(code=2)
    plain, _ = _context(tmp_path, plain_runner, fake, GITHUB_EVENT_PATH=event)
    assert run_plan(plain, source="billing.yaml") == 0
    assert "--revenue" not in plain_runner.calls[0]
    assert "Revenue preview" not in fake.comments[0]["body"]  # the sticky comment, updated
