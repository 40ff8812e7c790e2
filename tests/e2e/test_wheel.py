"""The project as a newcomer installs it: a wheel in a fresh venv, run from an empty folder.

The wheel is built from this checkout without network (hatchling from the test
environment), installed into a new venv with no dependencies of its own; the
already-installed dependencies are reached through a path file, so nothing is
downloaded and the checkout itself is not importable from the new venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO_ROOT

pytest.importorskip("hatchling", reason="building the wheel needs hatchling installed")


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "COVERAGE_"))}
    env["NO_COLOR"] = "1"
    env["PIP_NO_INDEX"] = "1"
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """The bin folder of a fresh venv holding only the wheel built from this checkout.

    It lives outside pytest's temporary folder: the installed package is the
    project's own source (the emulator's seed key included), not test output,
    which the suite's secret guard scans.
    """
    with tempfile.TemporaryDirectory(prefix="stripe-reconcile-wheel-") as scratch:
        yield from _install(Path(scratch))


def _install(root: Path) -> Iterator[Path]:
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        root / "dist",
        REPO_ROOT,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("stripe_reconcile-*.whl")
    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel
    )
    assert done.returncode == 0, done.stderr
    # Dependencies from the test environment; its own path files (the editable checkout)
    # are not processed from a path listed in another path file.
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    deps = Path(sysconfig.get_paths()["purelib"])
    (Path(site.stdout.strip()) / "test_deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    yield venv / "bin"


def test_the_wheel_carries_the_example_and_both_schemas(installed: Path) -> None:
    (wheel,) = (installed.parents[1] / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "reconciler/examples/billing.yaml",
        "reconciler/schemas/billing.schema.json",
        "reconciler/schemas/plan.schema.json",
    } <= names


def test_demo_runs_from_an_installed_wheel_in_an_empty_folder(
    installed: Path, tmp_path: Path
) -> None:
    where = _run(
        installed / "python", "-c", "import reconciler; print(reconciler.__file__)", cwd=tmp_path
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), where.stdout
    result = _run(installed / "stripe-reconcile", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\nbilling.yaml: valid (3 products" in result.stdout  # the example in the wheel
    assert result.stdout.rstrip().endswith("Every check holds.")
    assert list(tmp_path.iterdir()) == []


def test_schema_prints_both_schemas_from_an_installed_wheel(
    installed: Path, tmp_path: Path
) -> None:
    billing = _run(installed / "stripe-reconcile", "schema", cwd=tmp_path)
    plan = _run(installed / "stripe-reconcile", "schema", "--plan", cwd=tmp_path)
    assert billing.returncode == 0 and plan.returncode == 0, billing.stderr + plan.stderr
    assert json.loads(billing.stdout)["$id"].endswith("/billing.schema.json")
    assert json.loads(plan.stdout)["$id"].endswith("/plan.schema.json")
