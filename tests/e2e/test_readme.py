"""The README's commands, extracted and run, so the README cannot rot."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from reconciler.emulator import Emulator
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from tests.e2e.conftest import API_KEY, stripe_reconcile

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def section(title: str) -> str:
    return README.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_two_set_up_commands() -> None:
    install_and_demo, tests = blocks("sh")[:2]
    assert install_and_demo.strip() == "python -m pip install -e '.[test]' && stripe-reconcile demo"
    assert tests.strip() == "scripts/test"
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test]'" in ci
    assert ci.rstrip().endswith("scripts/test")


def _legacy_price(emulator: Emulator) -> None:
    """The usage-record price the example's migration moves from (an account that has
    none cannot be planned with that migration)."""
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    product = gateway.post("/v1/products", {"id": "prod_video_generation", "name": "Video"})
    recurring = {"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"}
    params = {"product": product["id"], "currency": "usd", "unit_amount_decimal": "0.35"}
    params |= {"lookup_key": "video_seconds_legacy", "recurring": recurring}
    gateway.post("/v1/prices", params, stripe_version=LEGACY_API_VERSION)


def test_the_plan_and_apply_commands_run_against_the_emulator(tmp_path: Path) -> None:
    (commands,) = re.findall(r"```sh\n(.*?)```", section("Plan and apply"), flags=re.DOTALL)
    lines = [line.split("#", 1)[0].strip() for line in commands.splitlines()]
    runnable = [line for line in lines if line.startswith("stripe-reconcile ")]
    assert len(runnable) == 4
    shutil.copy(REPO / "billing.yaml", tmp_path / "billing.yaml")
    with Emulator(port=0) as emulator:
        _legacy_price(emulator)
        for line in runnable:
            done = stripe_reconcile(*line.split()[1:], url=emulator.url, cwd=tmp_path)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        final = stripe_reconcile("plan", "--detailed-exitcode", url=emulator.url, cwd=tmp_path)
        assert final.returncode == 0, final.stdout


def test_the_python_emulator_example_runs() -> None:
    (example,) = blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert "client" in namespace
