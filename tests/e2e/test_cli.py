"""The plan and apply commands as a user runs them: subprocesses against the emulator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from reconciler.emulator import Emulator
from reconciler.gateway import Gateway
from tests.e2e.conftest import API_KEY, EXAMPLE_CATALOG, stripe_reconcile

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = EXAMPLE_CATALOG


def run(
    emulator: Emulator, *args: str, key: str = API_KEY, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return stripe_reconcile(*args, url=emulator.url, key=key, stdin=stdin)


def test_plan_apply_plan_cycle(emulator: Emulator) -> None:
    first = run(emulator, "plan", "-f", str(EXAMPLE), "--detailed-exitcode")
    assert first.returncode == 2, first.stderr
    assert "+ price.video_seconds_metered will be created" in first.stdout
    assert first.stdout.rstrip().endswith(
        "Plan: 11 to create, 0 to update, 0 to replace, 0 to archive."
    )
    applied = run(emulator, "apply", "-f", str(EXAMPLE), "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete" in applied.stdout
    again = run(emulator, "plan", "-f", str(EXAMPLE), "--detailed-exitcode")
    assert again.returncode == 0, again.stderr
    assert "No changes." in again.stdout


def test_plan_json_is_valid_against_the_published_schema(
    emulator: Emulator, tmp_path: Path
) -> None:
    out = tmp_path / "plan.json"
    result = run(emulator, "plan", "-f", str(EXAMPLE), "--format", "json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert json.loads(out.read_text()) == printed
    schema = json.loads((REPO / "schemas" / "plan.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(printed)
    assert printed["summary"]["create"] == 11


def test_plan_markdown_is_a_pr_comment(emulator: Emulator) -> None:
    result = run(emulator, "plan", "-f", str(EXAMPLE), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<!-- stripe-reconcile-plan -->")
    assert "price.video_seconds_metered" in result.stdout


def test_plan_without_key_is_a_clear_error(emulator: Emulator) -> None:
    result = run(emulator, "plan", "-f", str(EXAMPLE), key="")
    assert result.returncode == 1
    assert result.stderr.startswith("Error: STRIPE_API_KEY is not set")
    assert "Traceback" not in result.stderr


def live_config(tmp_path: Path) -> Path:
    live = tmp_path / "billing.yaml"
    live.write_text(EXAMPLE.read_text().replace("mode: test", "mode: live"))
    return live


def test_rejected_key_shows_stripes_message_never_the_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    secret = "sk_live_notatestkey_abcdef123456"
    result = run(emulator, "plan", "-f", str(live_config(tmp_path)), key=secret)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(401)" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_live_key_on_a_test_config_is_refused(emulator: Emulator) -> None:
    secret = "sk_live_notatestkey_abcdef123456"
    before = emulator.stats()["requests_total"]
    for command in (["plan"], ["apply", "--auto-approve", "--live"]):
        result = run(emulator, *command, "-f", str(EXAMPLE), key=secret)
        assert result.returncode == 1
        assert f"is a live key but {EXAMPLE} says mode: test" in result.stderr
        assert secret not in result.stdout + result.stderr
    assert emulator.stats()["requests_total"] == before


def test_live_key_needs_the_live_flag_to_apply(emulator: Emulator, tmp_path: Path) -> None:
    secret = "rk_live_restricted_abcdef123456"
    result = run(emulator, "apply", "--auto-approve", "-f", str(live_config(tmp_path)), key=secret)
    assert result.returncode == 1
    assert "apply changes live billing only with --live" in result.stderr
    with_flag = run(
        emulator, "apply", "--auto-approve", "--live", "-f", str(live_config(tmp_path)), key=secret
    )
    assert "only with --live" not in with_flag.stderr
    assert "(401)" in with_flag.stderr  # past the guard: the emulator refuses live keys
    assert secret not in with_flag.stdout + with_flag.stderr


def test_test_key_on_a_live_config_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    result = run(emulator, "apply", "--auto-approve", "--live", "-f", str(live_config(tmp_path)))
    assert result.returncode == 1
    assert "says mode: live but STRIPE_API_KEY is a test key" in result.stderr


def test_invalid_config_stops_before_any_request(emulator: Emulator, tmp_path: Path) -> None:
    bad = tmp_path / "billing.yaml"
    bad.write_text("version: 1\nmode: test\nmeters: [{event_name: x}]\n")
    before = emulator.stats()["requests_total"]
    result = run(emulator, "plan", "-f", str(bad))
    assert result.returncode == 1
    assert f"{bad}:3:10: meters[0]: missing required field 'aggregation'" in result.stderr
    assert emulator.stats()["requests_total"] == before


def test_apply_without_terminal_or_flag_refuses(emulator: Emulator) -> None:
    result = run(emulator, "apply", "-f", str(EXAMPLE), stdin="yes\n")
    assert result.returncode == 1
    assert "pass --auto-approve" in result.stderr
    assert run(emulator, "plan", "-f", str(EXAMPLE), "--detailed-exitcode").returncode == 2


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_plan_output_is_deterministic(emulator: Emulator, fmt: str) -> None:
    first = run(emulator, "plan", "-f", str(EXAMPLE), "--format", fmt)
    second = run(emulator, "plan", "-f", str(EXAMPLE), "--format", fmt)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


def test_saved_plan_applies_once_then_is_a_no_op(emulator: Emulator, tmp_path: Path) -> None:
    planfile = tmp_path / "plan.json"
    made = run(emulator, "plan", "-f", str(EXAMPLE), "--out", str(planfile))
    assert made.returncode == 0, made.stderr
    first = run(emulator, "apply", str(planfile), "-f", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    assert "[14/14]" in first.stdout  # plain progress lines when not on a terminal
    assert "Apply complete: 14 steps" in first.stdout
    again = run(emulator, "apply", str(planfile), "-f", str(EXAMPLE), "--format", "json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["ok"] is True
    assert result["done"] == []
    assert result["summary"] == "0 to create, 0 to update, 0 to replace, 0 to archive"


def test_stale_saved_plan_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    assert run(emulator, "apply", "-f", str(EXAMPLE), "--auto-approve").returncode == 0
    renamed = tmp_path / "billing.yaml"
    renamed.write_text(EXAMPLE.read_text().replace("name: Pro plan", "name: Pro"))
    planfile = tmp_path / "plan.json"
    assert run(emulator, "plan", "-f", str(renamed), "--out", str(planfile)).returncode == 0
    Gateway(API_KEY, api_base=emulator.url).post(
        "/v1/products/prod_pro_plan", {"name": "Renamed in the Dashboard"}
    )
    result = run(emulator, "apply", str(planfile), "-f", str(renamed))
    assert result.returncode == 1
    assert "Error: the account changed since the plan was made" in result.stderr
    assert "product.prod_pro_plan" in result.stderr
    other_config = run(emulator, "apply", str(planfile), "-f", str(EXAMPLE))
    assert other_config.returncode == 1
    assert f"made from a different {EXAMPLE}" in other_config.stderr


def test_the_key_never_appears_in_any_output(emulator: Emulator, tmp_path: Path) -> None:
    key = "sk_test_secret_value_that_must_never_leak_42"
    planfile = tmp_path / "plan.json"
    outputs = [
        run(emulator, "validate", "-f", str(EXAMPLE), key=key),
        run(emulator, "plan", "-f", str(EXAMPLE), "--out", str(planfile), key=key),
        run(emulator, "plan", "-f", str(EXAMPLE), "--format", "markdown", key=key),
        run(emulator, "apply", str(planfile), "-f", str(EXAMPLE), key=key),
        run(emulator, "apply", str(planfile), "-f", str(EXAMPLE), "--format", "json", key=key),
        run(emulator, "apply", "-f", str(EXAMPLE), key=key),  # refused: no terminal
    ]
    texts = [o.stdout + o.stderr for o in outputs] + [planfile.read_text()]
    assert all(key not in text for text in texts)
    assert all(key[8:] not in text for text in texts)


def test_drift_after_a_dashboard_edit_exits_two(emulator: Emulator) -> None:
    assert run(emulator, "apply", "-f", str(EXAMPLE), "--auto-approve").returncode == 0
    assert run(emulator, "plan", "-f", str(EXAMPLE), "--detailed-exitcode").returncode == 0
    Gateway(API_KEY, api_base=emulator.url).post(
        "/v1/products/prod_credit_packs", {"description": "Edited in the Dashboard"}
    )
    drift = run(emulator, "plan", "-f", str(EXAMPLE), "--detailed-exitcode", "--format", "markdown")
    assert drift.returncode == 2, drift.stderr
    assert drift.stdout.startswith("<!-- stripe-reconcile-plan -->")
    assert "product.prod_credit_packs" in drift.stdout


@pytest.mark.parametrize(
    "typo",
    [
        ("plan", "--detailed-exitcode", "--format", "xml"),
        ("plan", "--detailed-exitcode", "--revenue-limit", "0"),
        ("plan", "--detailed-exitcode", "--revenue-limit", "99999999999999999999999999999"),
        ("plann", "--detailed-exitcode"),
        ("--bogus", "plan"),
    ],
)
def test_a_mistyped_command_line_exits_1_never_the_2_of_changes_present(
    emulator: Emulator, typo: tuple[str, ...]
) -> None:
    refused = run(emulator, *typo, "-f", str(EXAMPLE))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout == ""
    assert "Error:" in refused.stderr
    assert "Traceback" not in refused.stderr
