"""GitOps: the sticky plan comment, the one drift issue, and the workflow templates."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.errors import ReconcileError
from reconciler.github import (
    DRIFT_LABEL,
    DRIFT_MARKER,
    GitHub,
    artifact_name,
    download_plan,
    drift_marker,
    find_marked,
    find_reviewed_plan,
    fork_pull_request,
    plan_marker,
    pull_request_number,
    read_event,
    upsert_drift_issue,
    upsert_pr_comment,
)
from reconciler.render.markdown import MARKER

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
TEMPLATES = sorted((REPO / ".github" / "workflows").glob("billing-*.yml"))
ACTION = REPO / "action.yml"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
ACTION_REF = f"stripe-reconcile/stripe-reconcile@v{VERSION}"


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


def test_each_billing_file_has_its_own_comment_and_issue() -> None:
    assert plan_marker() == plan_marker("billing.yaml") == MARKER
    assert drift_marker() == DRIFT_MARKER
    assert plan_marker("envs/live/billing.yaml") == (
        "<!-- stripe-reconcile-plan envs/live/billing.yaml -->"
    )
    assert (
        plan_marker("envs/a-->b/billing.yaml")
        == "<!-- stripe-reconcile-plan envs/a-b/billing.yaml -->"
    )
    assert artifact_name() == "billing-plan"
    assert artifact_name("envs/live/billing.yaml") == "billing-plan-envs-live-billing.yaml"
    fake = FakeGitHub()
    github = GitHub(fake)
    for source in ("envs/test/billing.yaml", "envs/live/billing.yaml", "envs/test/billing.yaml"):
        upsert_pr_comment(
            github, "acme/billing", 7, f"plan of {source}", marker=plan_marker(source)
        )
        upsert_drift_issue(github, "acme/billing", f"drift of {source}", source=source)
    assert [c["body"].split("\n")[1] for c in fake.comments] == [
        "plan of envs/test/billing.yaml",
        "plan of envs/live/billing.yaml",
    ]
    assert [i["title"] for i in fake.issues] == [
        "Stripe billing has drifted from envs/test/billing.yaml",
        "Stripe billing has drifted from envs/live/billing.yaml",
    ]


def test_a_fork_is_a_pull_request_from_another_repository() -> None:
    def event(head: Any, base: Any = "acme/billing") -> dict[str, Any]:
        repo = None if head is None else {"full_name": head, "fork": head != base}
        return {
            "pull_request": {"number": 1, "head": {"repo": repo}},
            "repository": {"full_name": base},
        }

    assert fork_pull_request(event("someone/billing"))
    assert fork_pull_request(event(None))  # the fork was deleted
    assert not fork_pull_request(event("acme/billing"))
    assert not fork_pull_request({"ref": "refs/heads/main"})
    no_base = event("someone/billing")
    del no_base["repository"]
    assert fork_pull_request(no_base)


def test_read_event_outside_a_workflow_is_empty(tmp_path: Path) -> None:
    assert read_event({}) == {}
    path = tmp_path / "event.json"
    path.write_text("[1]")
    with pytest.raises(ReconcileError, match="not a JSON object"):
        read_event({"GITHUB_EVENT_PATH": str(path)})


class FakeActions:
    """Merged pull requests, plan runs and their artifacts, as the REST paths answer."""

    def __init__(self, archive: bytes) -> None:
        self.archive = archive
        self.pulls: list[dict[str, Any]] = [
            {"number": 3, "merged_at": None, "head": {"sha": "c" * 40}},
            {"number": 4, "merged_at": "2026-12-01T00:00:00Z", "head": {"sha": "d" * 40}},
        ]
        self.runs: list[dict[str, Any]] = [{"id": 10}, {"id": 12}, {"id": 11}]
        self.artifacts = [{"id": 99, "name": "billing-plan", "expired": False}]

    def __call__(self, method: str, path: str, payload: Any) -> Any:
        if path.endswith("/pulls"):
            return self.pulls
        if "/runs?" in path:
            assert "head_sha=" + "d" * 40 in path and "status=success" in path
            return {"workflow_runs": self.runs}
        if "/artifacts?" in path:
            return {"artifacts": self.artifacts}
        raise AssertionError(path)

    def fetch(self, path: str) -> bytes:
        assert path == "/repos/acme/billing/actions/artifacts/99/zip"
        return self.archive


def _zip(**files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return buffer.getvalue()


def test_the_reviewed_plan_is_the_merged_pull_requests_newest_run(tmp_path: Path) -> None:
    fake = FakeActions(_zip(**{"plan.json": '{"plan": 1}', "plan.md": "#"}))
    github = GitHub(fake, fake.fetch)
    assert find_reviewed_plan(github, "acme/billing", "a" * 40) == (4, 12)
    download_plan(github, "acme/billing", 12, "billing-plan", tmp_path / "got" / "plan.json")
    assert (tmp_path / "got" / "plan.json").read_text() == '{"plan": 1}'
    fake.archive = _zip(**{"other.json": "{}"})
    download_plan(github, "acme/billing", 12, "billing-plan", tmp_path / "other.json")
    fake.archive = _zip(**{"notes.txt": "x"})
    with pytest.raises(ReconcileError, match=r"holds no plan\.json"):
        download_plan(github, "acme/billing", 12, "billing-plan", tmp_path / "x.json")
    fake.artifacts[0]["expired"] = True
    with pytest.raises(ReconcileError, match="kept no artifact 'billing-plan' \\(or it expired\\)"):
        download_plan(github, "acme/billing", 12, "billing-plan", tmp_path / "x.json")
    fake.runs = []
    with pytest.raises(
        ReconcileError, match=r"no successful billing-plan\.yml run for pull request #4"
    ):
        find_reviewed_plan(github, "acme/billing", "a" * 40)
    fake.pulls = []
    with pytest.raises(ReconcileError, match="no pull request merged commit aaaaaaaaaaaa"):
        find_reviewed_plan(github, "acme/billing", "a" * 40)


def _actionlint() -> str:
    found = shutil.which("actionlint")
    if found is None:
        pytest.skip("actionlint is not installed (the test extra installs it)")
    return found


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_pass_actionlint(workflow: Path) -> None:
    result = subprocess.run(
        [_actionlint(), str(workflow)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _project(tmp_path: Path) -> Path:
    """A repository holding action.yml at its root, as actionlint finds one."""
    root = tmp_path / "project"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".git").mkdir()
    shutil.copy(ACTION, root / "action.yml")
    return root


def test_the_action_steps_pass_actionlint(tmp_path: Path) -> None:
    """The composite action's steps, checked as a reusable workflow's job: expressions,
    contexts, the inputs of the actions it uses, outputs that exist."""
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    workflow = {
        "name": "action.yml",
        "on": {
            "workflow_call": {
                "inputs": {name: {"type": "string", "required": False} for name in action["inputs"]}
            }
        },
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": {name: o["value"] for name, o in action["outputs"].items()},
                "steps": action["runs"]["steps"],
            }
        },
    }
    path = _project(tmp_path) / ".github" / "workflows" / "action.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False))
    result = subprocess.run(
        [_actionlint(), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_templates_use_the_action_with_inputs_it_has(tmp_path: Path) -> None:
    """actionlint reads a local action's metadata: the templates, pointed at this action.yml,
    may only pass inputs it declares and must pass the required ones."""
    root = _project(tmp_path)
    for template in TEMPLATES:
        text = template.read_text().replace(f"uses: {ACTION_REF}", "uses: ./")
        (root / ".github" / "workflows" / template.name).write_text(text)
    bogus = (root / ".github/workflows/billing-plan.yml").read_text()
    (root / ".github/workflows/bogus.yml").write_text(
        bogus.replace("command: plan", "command: plan\n          no-such-input: x")
    )
    result = subprocess.run(
        [_actionlint()], cwd=root, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    complaints = [line for line in result.stdout.splitlines() if "[action]" in line]
    assert len(complaints) == 1 and complaints[0].startswith(".github/workflows/bogus.yml:")
    assert 'input "no-such-input" is not defined in action "stripe-reconcile"' in complaints[0]


def _steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(workflow["jobs"][job]["steps"])


def _uses_action(workflow: dict[str, Any], job: str) -> dict[str, Any]:
    (step,) = [s for s in _steps(workflow, job) if s.get("uses") == ACTION_REF]
    return dict(step["with"])


def test_gitops_workflows_keep_their_promises() -> None:
    plan = yaml.safe_load((REPO / ".github/workflows/billing-plan.yml").read_text())
    apply_ = yaml.safe_load((REPO / ".github/workflows/billing-apply.yml").read_text())
    drift = yaml.safe_load((REPO / ".github/workflows/billing-drift.yml").read_text())
    # "on" is YAML 1.1's true
    assert set(plan[True]) == {"pull_request"}  # never pull_request_target
    assert plan["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert "envs/*/billing.yaml" in plan[True]["pull_request"]["paths"]
    for workflow in (plan, apply_, drift):
        assert _uses_action(workflow, "files") == {
            "command": "envs",
            **({"file": "${{ inputs.files }}"} if workflow is apply_ else {}),
        }
        (job,) = set(workflow["jobs"]) - {"files"}
        assert workflow["jobs"][job]["strategy"]["matrix"] == (
            "${{ fromJSON(needs.files.outputs.matrix) }}"
        )
        assert all("run" not in step for step in _steps(workflow, job))  # all in the action
    assert _uses_action(plan, "plan") == {
        "command": "plan",
        "file": "${{ matrix.file }}",
        "api-key": "${{ secrets[matrix.secret] }}",
    }
    assert apply_["concurrency"] == {"group": "billing-apply", "cancel-in-progress": False}
    assert set(apply_[True]) == {"push", "workflow_dispatch"}
    assert apply_["permissions"] == {
        "contents": "read",
        "actions": "read",
        "pull-requests": "write",
    }
    assert apply_["jobs"]["apply"]["environment"] == "${{ matrix.environment }}"
    assert _uses_action(apply_, "apply") == {
        "command": "apply",
        "file": "${{ matrix.file }}",
        "api-key": "${{ secrets.STRIPE_API_KEY }}",
        "mode": "${{ vars.STRIPE_RECONCILE_LIVE == 'true' && 'live' || 'test' }}",
    }
    assert set(drift[True]) == {"schedule", "workflow_dispatch"}
    assert drift["permissions"] == {"contents": "read", "issues": "write"}
    assert _uses_action(drift, "drift")["command"] == "drift"


def test_the_action_installs_the_pinned_version_and_runs_the_package() -> None:
    action = yaml.safe_load(ACTION.read_text())
    steps = action["runs"]["steps"]
    install = next(s for s in steps if s.get("id") == "install")
    assert (
        'pip install --quiet --disable-pip-version-check "stripe-reconcile==$VERSION"'
        in (install["run"])
    )
    assert install["env"] == {"VERSION": "${{ inputs.version }}"}
    run = next(s for s in steps if s.get("id") == "run")
    assert '"$SR_BIN/stripe-reconcile" github run "$SR_COMMAND"' in run["run"]
    assert "${{" not in run["run"] and "${{" not in install["run"]  # inputs only through env
    assert set(action["outputs"]) == {"changes", "exit-code", "plan-file", "matrix"}
    assert {"command", "file", "format", "mode", "version", "plan-file", "github-token"} <= set(
        action["inputs"]
    )
