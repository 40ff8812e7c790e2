"""Shared test helpers, and a guard: no API key the suite uses may leak.

Every key the tests hand to the command line, the gateway or the emulator is
a secret here (the demo's published key excepted), and so is each part of a
key pasted with whitespace around or inside it, and any ``Bearer sk_...``.
After each test its captured output and logs are scanned, and at the end
every file the tests wrote under pytest's temporary directory (plan files,
imported billing.yaml, results): a key found anywhere fails the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from reconciler.emulator import Emulator

# The suite draws the same examples on every run (derandomized), so a red run
# is reproducible and a green one means the same thing each time. The deep run
# (`HYPOTHESIS_PROFILE=deep scripts/test -m slow`, scheduled in
# .github/workflows/deep.yml) draws new ones; a failure prints its blob to pin
# with @example.
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("deep", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

SECRETS = (
    "sk_test_e2e_0123456789",
    "sk_test_secret_value_that_must_never_leak_42",
    "sk_live_notatestkey_abcdef123456",
    "rk_live_restricted_abcdef123456",
    "sk_test_status",
    "sk_test_readme",
    "sk_test_emulator_seed",
    "sk_test_emulator_0000000000",
    "sk_live_51Habcdefghijklmnop1234",
    "sk_live_51Hsecretsecretsecret9876",
)
PASTED_SECRETS = (
    "sk_test_pasted_newline_0123456789\n",
    " sk_test_pasted_crlf_0123456789\r\n",
    "sk_live_pasted_newline_abcdef123456\n",
    "sk_test_inner\nline_secret_0123456789",
    "ghp_pastedtokenwithnewline0123456789\n",
    "ghp_inner\ttoken_secret_0123456789",
)
"""Keys as they come out of a secrets file, with whitespace around or inside them.

The guard looks for every part of each (split at the whitespace), so a key
shows up as a leak however it is printed: raw, repr-escaped (``\\n``) or cut.
"""
SECRETS += tuple(part for key in PASTED_SECRETS for part in key.split() if len(part) >= 8)
_BEARER = re.compile(r"Bearer\s+(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]")
_LEAKS: list[str] = []


@pytest.fixture(scope="session")
def running_emulator() -> Iterator[Emulator]:
    """The one emulator the suite shares; each directory's fixture empties it per test."""
    with Emulator(port=0) as emulator:
        yield emulator


def fresh(emulator: Emulator) -> Emulator:
    """``emulator`` emptied, at the present, without faults or rate limit."""
    emulator.reset()
    emulator.set_faults(None)
    emulator.set_rate_limit(None)
    emulator.clock.reset()
    return emulator


@pytest.fixture
def repo_root() -> Path:
    return REPO


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for section, content in report.sections:
        for secret in SECRETS:
            if secret in content:
                _LEAKS.append(f"{report.nodeid}: {section} shows {secret[:12]}...")
        if _BEARER.search(content):
            _LEAKS.append(f"{report.nodeid}: {section} shows a bearer token")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        base = factory.getbasetemp()
        for path in base.rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                text = path.read_text(encoding="utf-8", errors="replace")
                _LEAKS.extend(
                    f"{path.relative_to(base)} holds {secret[:12]}..."
                    for secret in SECRETS
                    if secret in text
                )
    if _LEAKS:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("API keys leaked into test output or files:", red=True)
            for leak in sorted(set(_LEAKS)):
                reporter.write_line(f"  {leak}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
