"""GitOps: the sticky plan comment, the one drift issue, and the workflow templates."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.github import (
    DRIFT_LABEL,
    DRIFT_MARKER,
    GitHub,
    find_marked,
    pull_request_number,
    upsert_drift_issue,
    upsert_pr_comment,
)
from reconciler.render.markdown import MARKER

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


class FakeGitHub:
    """Comments and issues in memory, speaking the REST paths the client uses."""

    def __init__(self) -> None:
        self.comments: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []

    def __call__(self, method: str, path: str, payload: Any) -> Any:
        self.calls.append((method, path.split("?", maxsplit=1)[0]))
        if method == "GET" and "/comments" in path:
            page = int(path.rsplit("page=", 1)[1])
            return self.comments[(page - 1) * 100 : page * 100]
        if method == "GET" and "/issues" in path:
            return [i for i in self.issues if i["state"] == "open"]
        if method == "POST" and path.endswith("/comments"):
            self.comments.append({"id": len(self.comments) + 1, "body": payload["body"]})
            return self.comments[-1]
        if method == "PATCH" and "/issues/comments/" in path:
            comment = next(c for c in self.comments if c["id"] == int(path.rsplit("/", 1)[1]))
            comment["body"] = payload["body"]
            return comment
        if method == "POST" and path.endswith("/issues"):
            issue = {"number": len(self.issues) + 1, "state": "open", **payload}
            self.issues.append(issue)
            return issue
        if method == "PATCH" and "/issues/" in path:
            issue = next(i for i in self.issues if i["number"] == int(path.rsplit("/", 1)[1]))
            issue["body"] = payload["body"]
            return issue
        raise AssertionError(f"unexpected {method} {path}")


def test_find_marked_only_takes_comments_that_start_with_the_marker() -> None:
    comments = [
        {"id": 1, "body": f"quoting: {MARKER}"},
        {"id": 2, "body": f"\n{MARKER}\n### plan"},
        {"id": 3, "body": f"{MARKER} later"},
    ]
    assert find_marked(comments, MARKER) == comments[1]
    assert find_marked([{"id": 4, "body": None}], MARKER) is None


def test_plan_comment_is_created_once_then_updated() -> None:
    fake = FakeGitHub()
    fake.comments = [{"id": n, "body": f"review comment {n}"} for n in range(1, 151)]
    github = GitHub(fake)
    assert upsert_pr_comment(github, "acme/billing", 7, f"{MARKER}\nfirst plan") == "created"
    assert upsert_pr_comment(github, "acme/billing", 7, "second plan") == "updated"
    ours = [c for c in fake.comments if c["body"].startswith(MARKER)]
    assert len(ours) == 1
    assert ours[0]["body"] == f"{MARKER}\nsecond plan"
    assert ("GET", "/repos/acme/billing/issues/7/comments") in fake.calls


def test_drift_issue_is_opened_once_then_updated() -> None:
    fake = FakeGitHub()
    github = GitHub(fake)
    assert upsert_drift_issue(github, "acme/billing", "drift one") == "created"
    assert upsert_drift_issue(github, "acme/billing", "drift two") == "updated"
    assert len(fake.issues) == 1
    assert fake.issues[0]["labels"] == [DRIFT_LABEL]
    assert fake.issues[0]["body"] == f"{DRIFT_MARKER}\ndrift two"
    fake.issues[0]["state"] = "closed"
    assert upsert_drift_issue(github, "acme/billing", "drift three") == "created"


def test_pull_request_number_comes_from_the_event(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 42}}))
    assert pull_request_number({"GITHUB_EVENT_PATH": str(event)}) == 42
    event.write_text(json.dumps({"ref": "refs/heads/main"}))
    with pytest.raises(Exception, match="not a pull request"):
        pull_request_number({"GITHUB_EVENT_PATH": str(event)})


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_pass_actionlint(workflow: Path) -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint is not installed (the test extra installs it)")
    result = subprocess.run(
        [actionlint, str(workflow)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitops_workflows_keep_their_promises() -> None:
    plan = yaml.safe_load((REPO / ".github/workflows/billing-plan.yml").read_text())
    apply_ = yaml.safe_load((REPO / ".github/workflows/billing-apply.yml").read_text())
    drift = yaml.safe_load((REPO / ".github/workflows/billing-drift.yml").read_text())
    # "on" is YAML 1.1's true
    assert set(plan[True]) == {"pull_request"}  # never pull_request_target
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    plan_steps = " ".join(s.get("run", "") for s in plan["jobs"]["plan"]["steps"])
    assert "--detailed-exitcode" in plan_steps and "--out plan.json" in plan_steps
    assert "stripe-reconcile github comment plan.md" in plan_steps
    assert apply_["concurrency"] == {"group": "billing-apply", "cancel-in-progress": False}
    assert apply_["jobs"]["apply"]["environment"] == "stripe-billing"
    apply_steps = " ".join(s.get("run", "") for s in apply_["jobs"]["apply"]["steps"])
    assert "stripe-reconcile apply reviewed/plan.json --auto-approve" in apply_steps
    assert set(drift[True]) == {"schedule", "workflow_dispatch"}
    assert drift["permissions"] == {"contents": "read", "issues": "write"}
