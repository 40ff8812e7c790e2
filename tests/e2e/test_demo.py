"""The demo, run as a newcomer runs it: a subprocess with no key and no network."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import stripe_reconcile

SECTIONS = [
    "Validate billing.yaml",
    "A legacy account on the emulator",
    "Plan: meters and prices first; the migration waits for parity",
    "Apply",
    "Dual-write: meter events beside the usage records for a full period",
    "Plan again: parity holds, every subscription gets a schedule",
    "Apply the migration",
    "Status",
    "Across the switch on the test clocks",
    "The last legacy invoice and the first metered one",
    "Status and plan once more",
]


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    result = stripe_reconcile("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    headings = re.findall(r"^\d+\. (.+)$", out, flags=re.MULTILINE)
    assert headings == SECTIONS
    assert "12 blocked" in out  # parity holds the migration back at first
    assert "Plan: 0 to create, 0 to update, 0 to replace, 0 to archive, 1 to migrate." in out
    assert "12 scheduled" in out
    assert "12 done" in out
    assert out.count(": ok") == 2 and "MISMATCH" not in out
    assert out.rstrip().endswith("No changes. The account matches billing.yaml.")
    assert list(tmp_path.iterdir()) == []  # leaves nothing behind
