"""The GitHub Action's steps as a workflow runs them, against a fake GitHub and the emulator.

``stripe-reconcile github run COMMAND`` is what ``action.yml`` calls: each test
runs it as a subprocess with the environment a workflow gives (``GITHUB_*``, an
event file, ``GITHUB_OUTPUT``, ``GITHUB_STEP_SUMMARY``), GitHub's API served by
a fake on 127.0.0.1 (a free port) and Stripe by the emulator. Also here:
``apply --format markdown``, and the pre-commit hook's entry over several files.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from reconciler.render.markdown import MARKER
from tests.e2e.conftest import API_KEY, EXAMPLE_CATALOG, stripe_reconcile

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = EXAMPLE_CATALOG  # the example without its migration: an empty account plans it
TOKEN = "ghs_fake_token_for_the_tests_0001"
OWNER_REPO = "acme/billing"
MERGE_SHA = "a" * 40
HEAD_SHA = "b" * 40


class FakeGitHub:
    """Comments, issues, merged pull requests, workflow runs and artifacts, over HTTP."""

    def __init__(self) -> None:
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.issues: list[dict[str, Any]] = []
        self.pulls: dict[str, list[dict[str, Any]]] = {}
        self.runs: dict[str, list[int]] = {}
        self.artifacts: dict[int, dict[str, bytes]] = {}
        self.blobs: dict[int, bytes] = {}
        self.read_only = False
        self.requests: list[tuple[str, str, str | None]] = []
        self._ids = iter(range(1000, 10**6))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def comment_bodies(self, pr: int) -> list[str]:
        return [c["body"] for c in self.comments.get(pr, [])]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _payload(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def _route(self, method: str) -> None:
                split = urlsplit(self.path)
                parts = split.path.strip("/").split("/")
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                auth = self.headers.get("Authorization")
                fake.requests.append((method, split.path, auth))
                if parts[0] == "blob":  # signed storage: no token expected, none accepted
                    if auth is not None:
                        self._reply(400, {"message": "unexpected Authorization header"})
                        return
                    self._reply(200, fake.blobs[int(parts[1])])
                    return
                if auth != f"Bearer {TOKEN}":
                    self._reply(401, {"message": "Bad credentials"})
                    return
                if method != "GET" and fake.read_only:
                    self._reply(403, {"message": "Resource not accessible by integration"})
                    return
                self._reply(*fake.answer(method, parts[3:], query, self._payload()))

        return Handler

    def answer(
        self, method: str, parts: list[str], query: dict[str, str], payload: Any
    ) -> tuple[int, Any] | tuple[int, Any, dict[str, str]]:
        match method, parts:
            case "GET", ["issues", pr, "comments"]:
                page = int(query.get("page", "1"))
                return 200, self.comments.get(int(pr), [])[(page - 1) * 100 : page * 100]
            case "POST", ["issues", pr, "comments"]:
                comment = {"id": next(self._ids), "body": payload["body"]}
                self.comments.setdefault(int(pr), []).append(comment)
                return 201, comment
            case "PATCH", ["issues", "comments", comment_id]:
                for comments in self.comments.values():
                    for comment in comments:
                        if comment["id"] == int(comment_id):
                            comment["body"] = payload["body"]
                            return 200, comment
                return 404, {"message": "Not Found"}
            case "GET", ["issues"]:
                return 200, [i for i in self.issues if i["state"] == "open"]
            case "POST", ["issues"]:
                issue = {"number": next(self._ids), "state": "open", **payload}
                self.issues.append(issue)
                return 201, issue
            case "PATCH", ["issues", number]:
                issue = next(i for i in self.issues if i["number"] == int(number))
                issue["body"] = payload["body"]
                return 200, issue
            case "GET", ["commits", sha, "pulls"]:
                return 200, self.pulls.get(sha, [])
            case "GET", ["actions", "workflows", _workflow, "runs"]:
                ids = self.runs.get(query.get("head_sha", ""), [])
                return 200, {"total_count": len(ids), "workflow_runs": [{"id": i} for i in ids]}
            case "GET", ["actions", "runs", run_id, "artifacts"]:
                kept = self.artifacts.get(int(run_id), {})
                listed = [
                    {"id": int(run_id) * 100 + n, "name": name, "expired": False}
                    for n, name in enumerate(sorted(kept))
                    if name == query.get("name", name)
                ]
                return 200, {"total_count": len(listed), "artifacts": listed}
            case "GET", ["actions", "artifacts", artifact_id, "zip"]:
                run_id, n = divmod(int(artifact_id), 100)
                name = sorted(self.artifacts[run_id])[n]
                self.blobs[int(artifact_id)] = self.artifacts[run_id][name]
                return 302, b"", {"Location": f"{self.url}/blob/{artifact_id}"}
        return 404, {"message": f"Not Found: {method} {'/'.join(parts)}"}

    def keep_artifact(self, run_id: int, name: str, plan_file: Path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.write(plan_file, "plan.json")
        self.artifacts.setdefault(run_id, {})[name] = buffer.getvalue()

    def __enter__(self) -> FakeGitHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A repository checkout with two environments' billing files."""
    root = tmp_path / "checkout"
    for name in ("staging", "test"):
        (root / "envs" / name).mkdir(parents=True)
        shutil.copy(EXAMPLE, root / "envs" / name / "billing.yaml")
    return root


def pr_event(tmp_path: Path, number: int = 7, *, fork: bool = False) -> Path:
    head_repo = "someone/billing" if fork else OWNER_REPO
    event = tmp_path / f"event-{number}-{fork}.json"
    event.write_text(
        json.dumps(
            {
                "number": number,
                "pull_request": {
                    "number": number,
                    "head": {"sha": HEAD_SHA, "repo": {"full_name": head_repo, "fork": fork}},
                },
                "repository": {"full_name": OWNER_REPO},
            }
        )
    )
    return event


class Step:
    """One run of the action's command: its process, outputs and job summary."""

    def __init__(self, process: subprocess.CompletedProcess[str], outputs: Path, summary: Path):
        self.process = process
        self.code = process.returncode
        self.log = process.stdout + process.stderr
        self.outputs = (
            dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
            if outputs.exists()
            else {}
        )
        self.summary = summary.read_text() if summary.exists() else ""


def action(
    github: FakeGitHub,
    emulator: Emulator | None,
    cwd: Path,
    *args: str,
    event: Path | None = None,
    event_name: str = "pull_request",
    key: str = API_KEY,
    extra: dict[str, str] | None = None,
) -> Step:
    """``stripe-reconcile github run ARGS`` as the action's step runs it."""
    scratch = cwd.parent / "runner"
    scratch.mkdir(exist_ok=True)
    outputs = scratch / f"output-{len(list(scratch.iterdir()))}"
    summary = scratch / f"summary-{len(list(scratch.iterdir()))}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "GITHUB_"))}
    env.update(
        NO_COLOR="1",
        STRIPE_API_KEY=key,
        GITHUB_TOKEN=TOKEN,
        GITHUB_API_URL=github.url,
        GITHUB_REPOSITORY=OWNER_REPO,
        GITHUB_EVENT_NAME=event_name,
        GITHUB_SHA=MERGE_SHA,
        GITHUB_WORKFLOW="billing apply",
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    if emulator is not None:
        env["STRIPE_API_BASE"] = emulator.url
    if event is not None:
        env["GITHUB_EVENT_PATH"] = str(event)
    env.update(extra or {})
    process = subprocess.run(
        [sys.executable, "-m", "reconciler", "github", "run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    step = Step(process, outputs, summary)
    assert TOKEN not in step.log
    assert not key or key not in step.log
    return step


# -- the action's own run step -------------------------------------------------------------


def _expression(text: str, inputs: dict[str, str], env: dict[str, str], bin_dir: str) -> str:
    """The few expressions action.yml's run step uses: ``a || b`` over inputs, env and the
    install step's output."""
    match = re.fullmatch(r"\$\{\{ (.+) \}\}", text)
    if match is None:
        return text
    for operand in match.group(1).split("||"):
        name = operand.strip()
        if name.startswith("inputs."):
            value = inputs[name.removeprefix("inputs.")]
        elif name.startswith("env."):
            value = env.get(name.removeprefix("env."), "")
        elif name == "steps.install.outputs.bin":
            value = bin_dir
        else:
            raise AssertionError(f"action.yml uses an expression this test cannot read: {name}")
        if value:
            return value
    return ""


def action_step(
    github: FakeGitHub, emulator: Emulator | None, cwd: Path, event: Path, **given: str
) -> Step:
    """action.yml's ``run`` step, its shell script run by bash with the env it declares,
    the inputs' defaults filled in as the runner does."""
    action = yaml.safe_load((REPO / "action.yml").read_text())
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    inputs["github-token"] = TOKEN  # the default, ${{ github.token }}
    inputs.update(given)
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "run"]
    assert step["shell"] == "bash"
    scratch = cwd.parent / "runner"
    scratch.mkdir(exist_ok=True)
    outputs, summary = scratch / "step-output", scratch / "step-summary"
    job_env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "GITHUB_"))}
    job_env.update(
        NO_COLOR="1",
        GITHUB_API_URL=github.url,
        GITHUB_REPOSITORY=OWNER_REPO,
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_OUTPUT=str(outputs),
        GITHUB_STEP_SUMMARY=str(summary),
    )
    if emulator is not None:
        job_env.update(STRIPE_API_KEY=API_KEY, STRIPE_API_BASE=emulator.url)
    bin_dir = str(Path(sys.executable).parent)
    declared = {
        name: _expression(str(value), inputs, job_env, bin_dir)
        for name, value in step["env"].items()
    }
    process = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=cwd,
        env={**job_env, **declared},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Step(process, outputs, summary)


def test_the_action_run_step_lists_files_and_plans(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path
) -> None:
    if not (Path(sys.executable).parent / "stripe-reconcile").exists():
        pytest.skip("the stripe-reconcile script is not installed beside this Python")
    event = pr_event(tmp_path)
    envs = action_step(github, None, workspace, event, command="envs")
    assert envs.code == 0, envs.log
    files = [e["file"] for e in json.loads(envs.outputs["matrix"])["include"]]
    assert files == ["envs/staging/billing.yaml", "envs/test/billing.yaml"]
    plan = action_step(github, emulator, workspace, event, command="plan", file=files[1])
    assert plan.code == 0, plan.log
    assert plan.outputs["changes"] == "true" and plan.outputs["plan-file"] == "plan.json"
    assert github.comment_bodies(7)[0].startswith(
        "<!-- stripe-reconcile-plan envs/test/billing.yaml -->"
    )
    fork = pr_event(tmp_path, 8, fork=True)
    keyless = action_step(github, None, workspace, fork, command="plan", file=files[0])
    assert keyless.code == 0, keyless.log
    assert "could not run" in github.comment_bodies(8)[0]


# -- envs ---------------------------------------------------------------------------------


def test_envs_lists_each_environment_with_its_secret(github: FakeGitHub, workspace: Path) -> None:
    step = action(github, None, workspace, "envs", key="")
    assert step.code == 0, step.log
    entries = json.loads(step.outputs["matrix"])["include"]
    assert entries == [
        {
            "file": "envs/staging/billing.yaml",
            "name": "staging",
            "secret": "STRIPE_READ_ONLY_KEY_STAGING",
            "environment": "stripe-billing-staging",
            "artifact": "billing-plan-envs-staging-billing.yaml",
        },
        {
            "file": "envs/test/billing.yaml",
            "name": "test",
            "secret": "STRIPE_READ_ONLY_KEY_TEST",
            "environment": "stripe-billing-test",
            "artifact": "billing-plan-envs-test-billing.yaml",
        },
    ]
    one = action(github, None, workspace, "envs", "--file", "envs/test/billing.yaml", key="")
    assert [e["file"] for e in json.loads(one.outputs["matrix"])["include"]] == [
        "envs/test/billing.yaml"
    ]


def test_envs_falls_back_to_the_root_billing_file(github: FakeGitHub, tmp_path: Path) -> None:
    root = tmp_path / "single"
    root.mkdir()
    none = action(github, None, root, "envs", key="")
    assert none.code == 1
    assert "no billing file matches envs/*/billing.yaml or billing.yaml" in none.log
    shutil.copy(EXAMPLE, root / "billing.yaml")
    step = action(github, None, root, "envs", key="")
    assert json.loads(step.outputs["matrix"])["include"] == [
        {
            "file": "billing.yaml",
            "name": "billing",
            "secret": "STRIPE_READ_ONLY_KEY",
            "environment": "stripe-billing",
            "artifact": "billing-plan",
        }
    ]


# -- plan ---------------------------------------------------------------------------------


def test_plan_posts_one_sticky_comment_per_file(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path
) -> None:
    event = pr_event(tmp_path)
    for source in ("envs/staging/billing.yaml", "envs/test/billing.yaml"):
        step = action(github, emulator, workspace, "plan", "-f", source, event=event)
        assert step.code == 0, step.log
        assert step.outputs["changes"] == "true"
        assert step.outputs["exit-code"] == "2"
        assert step.outputs["plan-file"] == "plan.json"
        assert step.outputs["artifact"] == "billing-plan-" + source.replace("/", "-")
        assert f"### stripe-reconcile plan: `{source}`" in step.summary
        assert "+ price.video_seconds_metered will be created" in step.log  # text in the log
    again = action(github, emulator, workspace, "plan", "-f", "envs/test/billing.yaml", event=event)
    assert again.code == 0 and "plan comment updated on pull request #7" in again.log
    bodies = github.comment_bodies(7)
    assert len(bodies) == 2
    assert bodies[0].startswith("<!-- stripe-reconcile-plan envs/staging/billing.yaml -->\n")
    assert bodies[1].startswith("<!-- stripe-reconcile-plan envs/test/billing.yaml -->\n")
    assert all(f"\n{MARKER}\n" in body for body in bodies)
    plan = json.loads((workspace / "plan.json").read_text())
    assert plan["summary"]["create"] == 11


def test_plan_of_the_root_file_keeps_the_plain_marker(
    github: FakeGitHub, emulator: Emulator, tmp_path: Path
) -> None:
    root = tmp_path / "single"
    root.mkdir()
    shutil.copy(EXAMPLE, root / "billing.yaml")
    step = action(github, emulator, root, "plan", "--format", "json", event=pr_event(tmp_path))
    assert step.code == 0, step.log
    assert json.loads(step.process.stdout.split("plan comment")[0])["summary"]["create"] == 11
    (body,) = github.comment_bodies(7)
    assert body.startswith(f"{MARKER}\n### stripe-reconcile plan\n")


def test_the_revenue_input_adds_the_preview_to_the_plan_and_its_comment(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path
) -> None:
    if not (Path(sys.executable).parent / "stripe-reconcile").exists():
        pytest.skip("the stripe-reconcile script is not installed beside this Python")
    event = pr_event(tmp_path)
    source = "envs/test/billing.yaml"
    plain = action_step(github, emulator, workspace, event, command="plan", file=source)
    assert plain.code == 0, plain.log
    assert "revenue" not in json.loads((workspace / "plan.json").read_text())
    assert "Revenue preview" not in github.comment_bodies(7)[0]
    step = action_step(
        github, emulator, workspace, event, command="plan", file=source, revenue="true"
    )
    assert step.code == 0, step.log
    # The example declares no migration: the preview says so, and costs no request.
    assert json.loads((workspace / "plan.json").read_text())["revenue"] == {
        "limit": 200,
        "migrations": [],
    }
    (body,) = github.comment_bodies(7)
    assert "#### Revenue preview\n\nNo migration to preview.\n" in body
    assert "#### Revenue preview" in step.summary


def test_plan_from_a_fork_says_why_instead_of_failing(
    github: FakeGitHub, workspace: Path, tmp_path: Path
) -> None:
    github.read_only = True  # a fork's token cannot comment either
    step = action(
        github,
        None,
        workspace,
        "plan",
        "-f",
        "envs/test/billing.yaml",
        event=pr_event(tmp_path, fork=True),
        key="",
    )
    assert step.code == 0, step.log
    assert "comes from a fork" in step.summary and "no secrets" in step.summary
    assert "::notice::" in step.log and "::warning::could not comment" in step.log
    assert step.outputs["changes"] == "false" and step.outputs["plan-file"] == ""
    github.read_only = False
    action(
        github,
        None,
        workspace,
        "plan",
        "-f",
        "envs/test/billing.yaml",
        key="",
        event=pr_event(tmp_path, fork=True),
    )
    (body,) = github.comment_bodies(7)
    assert body.startswith("<!-- stripe-reconcile-plan envs/test/billing.yaml -->")
    assert "could not run" in body


def test_plan_without_a_key_outside_a_fork_fails_naming_the_secret(
    github: FakeGitHub, workspace: Path, tmp_path: Path
) -> None:
    step = action(
        github,
        None,
        workspace,
        "plan",
        "-f",
        "envs/test/billing.yaml",
        event=pr_event(tmp_path),
        key="",
    )
    assert step.code == 1
    assert "STRIPE_READ_ONLY_KEY_TEST" in step.log
    assert github.comment_bodies(7) == []


def test_a_failing_plan_is_shown_on_the_pull_request(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path
) -> None:
    bad = workspace / "envs" / "test" / "billing.yaml"
    bad.write_text("version: 1\nmode: test\nmeters: [{event_name: x}]\n")
    step = action(
        github,
        emulator,
        workspace,
        "plan",
        "-f",
        "envs/test/billing.yaml",
        event=pr_event(tmp_path),
    )
    assert step.code == 1
    assert step.outputs["exit-code"] == "1"
    (body,) = github.comment_bodies(7)
    assert "The plan failed." in body
    assert "envs/test/billing.yaml:3:10: meters[0]: missing required field" in body


# -- apply --------------------------------------------------------------------------------


def _reviewed(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path, source: str
) -> None:
    """Plan ``source`` on pull request #7, keep it as the run's artifact, merge."""
    planned = action(github, emulator, workspace, "plan", "-f", source, event=pr_event(tmp_path))
    assert planned.code == 0, planned.log
    github.keep_artifact(555, planned.outputs["artifact"], workspace / "plan.json")
    (workspace / "plan.json").unlink()
    github.runs[HEAD_SHA] = [554, 555]
    github.pulls[MERGE_SHA] = [
        {"number": 7, "merged_at": "2026-12-02T10:00:00Z", "head": {"sha": HEAD_SHA}}
    ]


def test_apply_on_merge_applies_the_reviewed_plan_and_reports_it(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path
) -> None:
    source = "envs/test/billing.yaml"
    _reviewed(github, emulator, workspace, tmp_path, source)
    step = action(github, emulator, workspace, "apply", "-f", source, event_name="push")
    assert step.code == 0, step.log
    assert step.outputs == {"plan-file": "plan.json", "changes": "true", "exit-code": "0"}
    report = github.comment_bodies(7)[-1]
    assert report.startswith("<!-- stripe-reconcile-apply -->\n")
    assert f"### stripe-reconcile apply: `{source}`" in report
    assert (
        "**Applied:** 11 to create, 0 to update, 0 to replace, 0 to archive; 14 steps done."
        in report
    )
    assert report in step.summary + "\n"
    blob = [r for r in github.requests if r[1].startswith("/blob/")]
    assert blob == [("GET", blob[0][1], None)]  # the token stays with GitHub
    again = action(github, emulator, workspace, "apply", "-f", source, event_name="push")
    assert again.code == 0 and again.outputs["changes"] == "false"
    assert "**No changes.**" in again.summary
    assert github.comment_bodies(7)[-1] == report  # nothing to say on the pull request


def test_a_stale_plan_is_refused_and_points_at_workflow_dispatch(
    github: FakeGitHub, emulator: Emulator, workspace: Path, tmp_path: Path
) -> None:
    source = "envs/test/billing.yaml"
    applied = stripe_reconcile("apply", "-f", str(EXAMPLE), "--auto-approve", url=emulator.url)
    assert applied.returncode == 0, applied.stderr
    edited = workspace / source
    edited.write_text(edited.read_text().replace("name: Pro plan", "name: Pro"))
    _reviewed(github, emulator, workspace, tmp_path, source)
    Gateway(API_KEY, api_base=emulator.url).post(
        "/v1/products/prod_pro_plan", {"name": "Renamed in the Dashboard"}
    )
    step = action(github, emulator, workspace, "apply", "-f", source, event_name="push")
    assert step.code == 1
    report = github.comment_bodies(7)[-1]
    assert "**Refused: the saved plan is stale.**" in report
    assert "product.prod_pro_plan" in report
    assert "Actions → billing apply → Run workflow" in report
    assert "::error::the reviewed plan of envs/test/billing.yaml is stale" in step.log
    assert step.outputs["exit-code"] == "1"
    dispatched = action(
        github, emulator, workspace, "apply", "-f", source, event_name="workflow_dispatch"
    )
    assert dispatched.code == 0, dispatched.log
    assert "Re-planned by hand (`workflow_dispatch`)" in dispatched.summary
    assert "product.prod_pro_plan" in dispatched.summary
    assert "**Applied:**" in dispatched.summary
    assert (
        stripe_reconcile(
            "plan", "-f", str(edited), "--detailed-exitcode", url=emulator.url
        ).returncode
        == 0
    )


def test_apply_without_a_reviewed_plan_says_what_to_do(
    github: FakeGitHub, emulator: Emulator, workspace: Path
) -> None:
    source = "envs/test/billing.yaml"
    direct = action(github, emulator, workspace, "apply", "-f", source, event_name="push")
    assert direct.code == 1
    assert "no pull request merged commit aaaaaaaaaaaa" in direct.summary
    assert "Run workflow" in direct.summary
    github.pulls[MERGE_SHA] = [{"number": 9, "merged_at": "x", "head": {"sha": HEAD_SHA}}]
    github.runs[HEAD_SHA] = [600]  # a run that kept no plan (a fork's, without secrets)
    missing = action(github, emulator, workspace, "apply", "-f", source, event_name="push")
    assert missing.code == 1
    assert "kept no artifact 'billing-plan-envs-test-billing.yaml'" in missing.summary
    assert "No reviewed plan to apply" in github.comment_bodies(9)[-1]
    assert emulator.stats()["requests_total"] == 0


def test_mode_live_adds_the_live_flag_and_nothing_else_does(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.action import ActionContext, run_apply

    monkeypatch.chdir(workspace)
    (workspace / "given.json").write_text("{}")
    seen: list[list[str]] = []

    def runner(args: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(args))
        return subprocess.CompletedProcess(args, 0, "<!-- outcome: applied, steps: 3 -->\n", "")

    env = {"STRIPE_API_KEY": API_KEY, "GITHUB_EVENT_NAME": "push"}
    for mode in ("live", "test"):
        context = ActionContext(env=env, run=runner)
        code = run_apply(
            context, source="envs/test/billing.yaml", plan_file="given.json", mode=mode
        )
        assert code == 0
        assert context.outputs["changes"] == "true"
    assert seen == [
        [
            "apply",
            "given.json",
            "-f",
            "envs/test/billing.yaml",
            "--auto-approve",
            "--format",
            "markdown",
            "--live",
        ],
        [
            "apply",
            "given.json",
            "-f",
            "envs/test/billing.yaml",
            "--auto-approve",
            "--format",
            "markdown",
        ],
    ]
    assert run_apply(ActionContext(env=env, run=runner), mode="staging") == 1


# -- drift --------------------------------------------------------------------------------


def test_drift_opens_one_issue_per_file(
    github: FakeGitHub, emulator: Emulator, workspace: Path
) -> None:
    source = "envs/test/billing.yaml"
    applied = stripe_reconcile("apply", "-f", str(EXAMPLE), "--auto-approve", url=emulator.url)
    assert applied.returncode == 0, applied.stderr
    clean = action(github, emulator, workspace, "drift", "-f", source, event_name="schedule")
    assert clean.code == 0 and clean.outputs["changes"] == "false"
    assert github.issues == []
    Gateway(API_KEY, api_base=emulator.url).post(
        "/v1/products/prod_credit_packs", {"description": "Edited in the Dashboard"}
    )
    for _ in range(2):
        step = action(github, emulator, workspace, "drift", "-f", source, event_name="schedule")
        assert step.code == 0, step.log
        assert step.outputs["changes"] == "true"
    (issue,) = github.issues
    assert issue["title"] == f"Stripe billing has drifted from {source}"
    assert issue["body"].startswith(f"<!-- stripe-reconcile-drift {source} -->")
    assert "product.prod_credit_packs" in issue["body"]


# -- apply --format markdown ----------------------------------------------------------------


def test_apply_markdown_reports_what_was_done(emulator: Emulator, tmp_path: Path) -> None:
    planfile = tmp_path / "plan.json"
    assert (
        stripe_reconcile(
            "plan", "-f", str(EXAMPLE), "--out", str(planfile), url=emulator.url
        ).returncode
        == 0
    )
    first = stripe_reconcile(
        "apply", str(planfile), "-f", str(EXAMPLE), "--format", "markdown", url=emulator.url
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(
        f"<!-- stripe-reconcile-apply -->\n### stripe-reconcile apply: `{EXAMPLE}`\n\n"
        "**Applied:** 11 to create, 0 to update, 0 to replace, 0 to archive; 14 steps done.\n"
    )
    assert "<details><summary>Steps done (14)</summary>" in first.stdout
    assert "[14/14]" not in first.stdout  # no progress lines in a report
    assert first.stdout.rstrip().endswith("<!-- outcome: applied, steps: 14 -->")
    again = stripe_reconcile(
        "apply", str(planfile), "-f", str(EXAMPLE), "--format", "markdown", url=emulator.url
    )
    assert again.returncode == 0
    assert f"**No changes.** The account already matches `{EXAMPLE}`." in again.stdout


# -- the pre-commit hook ------------------------------------------------------------------


def _hook_entry() -> list[str]:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "stripe-reconcile-validate"
    entry = shlex.split(hook["entry"])
    installed = Path(sys.executable).parent / entry[0]
    return [str(installed) if installed.exists() else entry[0], *entry[1:]]


def _run_hook(cwd: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """The hook's entry with the matching files appended, as pre-commit runs it."""
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert all(re.search(hook["files"], name) for name in files)
    return subprocess.run(
        [*_hook_entry(), *files], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_pre_commit_hook_checks_two_valid_files(workspace: Path) -> None:
    result = _run_hook(workspace, "envs/staging/billing.yaml", "envs/test/billing.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "envs/staging/billing.yaml: valid (3 products, 2 meters, 5 prices, 1 alert, 0 migrations)",
        "envs/test/billing.yaml: valid (3 products, 2 meters, 5 prices, 1 alert, 0 migrations)",
    ]


def test_the_pre_commit_hook_names_the_invalid_one_of_two(workspace: Path) -> None:
    bad = workspace / "envs" / "staging" / "billing.yaml"
    bad.write_text("version: 1\nmode: staging\n")
    result = _run_hook(workspace, "envs/staging/billing.yaml", "envs/test/billing.yaml")
    assert result.returncode == 1
    assert "unexpected extra argument" not in result.stderr
    assert result.stderr.splitlines() == [
        "envs/staging/billing.yaml:2:7: mode: must be one of test, live, not 'staging'",
        "envs/staging/billing.yaml: 1 error",
    ]
    assert result.stdout.splitlines() == [
        "envs/test/billing.yaml: valid (3 products, 2 meters, 5 prices, 1 alert, 0 migrations)"
    ]


def test_validate_takes_files_and_repeated_f_and_checks_each_once(workspace: Path) -> None:
    files = ["envs/staging/billing.yaml", "envs/test/billing.yaml"]
    old_hook_form = stripe_reconcile("validate", "-f", files[0], files[1], cwd=workspace)
    assert old_hook_form.returncode == 0, old_hook_form.stderr
    assert len(old_hook_form.stdout.splitlines()) == 2
    repeated = stripe_reconcile("validate", "-f", files[0], "-f", files[1], files[0], cwd=workspace)
    assert repeated.stdout == old_hook_form.stdout
    missing = stripe_reconcile("validate", "absent.yaml", files[1], cwd=workspace)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == ["absent.yaml: file not found", "absent.yaml: 1 error"]
    assert missing.stdout.startswith("envs/test/billing.yaml: valid")
    default = stripe_reconcile("validate", cwd=workspace)
    assert default.returncode == 1 and default.stderr.startswith("billing.yaml: file not found")
