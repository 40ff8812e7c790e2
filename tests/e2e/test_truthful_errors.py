"""Errors that tell the truth: the file given, the address that failed, the missing price."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from reconciler.emulator import Emulator
from tests.e2e.conftest import stripe_reconcile

CATALOG = """\
version: 1
mode: test
products:
  - {id: prod_video_generation, name: Video generation}
meters:
  - {event_name: video_seconds, display_name: Video seconds, aggregation: sum}
prices:
  - lookup_key: video_seconds_metered
    product: prod_video_generation
    currency: usd
    unit_amount_decimal: "0.35"
    recurring: {interval: month, usage: metered, meter: video_seconds}
"""
MIGRATION = """\
migrations:
  video-seconds-to-meter:
    from_price: video_seconds_legacy
    to_price: video_seconds_metered
"""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_missing_migration_source_is_a_warning_every_render_shows(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "envs-test.yaml"
    config.write_text(CATALOG + MIGRATION, encoding="utf-8")
    problem = (
        "migration.video-seconds-to-meter: from_price 'video_seconds_legacy' is not in the "
        "account (no price has that lookup key): nothing to migrate"
    )
    text = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert text.returncode == 0, text.stderr
    assert f"Warning: {problem}" in text.stdout
    markdown = stripe_reconcile("plan", "--format", "markdown", "-f", str(config), url=emulator.url)
    assert f"> **Warning:** `{problem}" in markdown.stdout
    status = stripe_reconcile("status", "-f", str(config), url=emulator.url)
    assert "is not in the account (no price has that lookup key)" in status.stdout


def test_an_unreachable_api_base_is_named_within_seconds(tmp_path: Path) -> None:
    config = tmp_path / "billing.yaml"
    config.write_text(CATALOG, encoding="utf-8")
    address = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = stripe_reconcile("plan", "-f", str(config), url=address)
    assert time.monotonic() - started < 10  # a bound, not a timing: 12.7 s before
    assert result.returncode == 1
    assert f"cannot reach {address} (Connection refused)" in result.stderr
    assert "STRIPE_API_BASE sets this address" in result.stderr
    assert "support@stripe.com" not in result.stderr


def test_the_plan_names_the_file_given(emulator: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text(CATALOG, encoding="utf-8")
    applied = stripe_reconcile("apply", "-f", str(config), "--auto-approve", url=emulator.url)
    assert applied.returncode == 0, applied.stderr
    again = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.rstrip().endswith(f"No changes. The account matches {config}.")
    status = stripe_reconcile("status", "-f", str(config), url=emulator.url)
    assert status.stdout == f"{config} declares no migrations.\n"
