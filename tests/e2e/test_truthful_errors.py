"""Errors that tell the truth: the file given, the address that failed, the missing price."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from reconciler.emulator import Emulator
from reconciler.gateway import LEGACY_API_VERSION, Gateway
from tests.e2e.conftest import API_KEY, stripe_reconcile, writes_seen

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


MISSING = (
    "migrations.video-seconds-to-meter.from_price: price 'video_seconds_legacy' is not in the "
    "account; nothing would migrate. Check the lookup key, or remove the migration if it is done."
)


@pytest.mark.parametrize(
    "command",
    [
        ["plan"],
        ["plan", "--format", "json"],
        ["plan", "--format", "markdown", "--detailed-exitcode"],
        ["status"],
        ["apply", "--auto-approve"],
    ],
    ids=" ".join,
)
def test_a_missing_migration_source_is_a_plan_error_naming_file_line_and_migration(
    emulator: Emulator, tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "envs-test.yaml"
    config.write_text(CATALOG + MIGRATION, encoding="utf-8")
    result = stripe_reconcile(*command, "-f", str(config), url=emulator.url)
    assert result.returncode == 1, result.stdout
    line = CATALOG.count("\n") + 3  # the from_price line of MIGRATION
    assert result.stderr == f"Error: {config}:{line}:17: {MISSING}\n"
    assert writes_seen(emulator) == 0


def test_every_missing_migration_source_is_listed_by_id_or_lookup_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "billing.yaml"
    second = MIGRATION.replace("video-seconds-to-meter", "by-id").replace(
        "video_seconds_legacy", "price_1Gone"
    )
    config.write_text(CATALOG + MIGRATION + second.removeprefix("migrations:\n"), "utf-8")
    result = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: {config}:{CATALOG.count(chr(10)) + 3}:17: {MISSING}"
    assert lines[1] == (
        f"{config}:{CATALOG.count(chr(10)) + 6}:17: migrations.by-id.from_price: price "
        "'price_1Gone' is not in the account; nothing would migrate. Check the price id, or "
        "remove the migration if it is done."
    )


def test_an_archived_legacy_price_is_not_missing(emulator: Emulator, tmp_path: Path) -> None:
    gateway = Gateway(API_KEY, api_base=emulator.url, max_retries=0)
    product = gateway.post("/v1/products", {"id": "prod_video_generation", "name": "Video"})
    legacy = gateway.post(
        "/v1/prices",
        {
            "product": product["id"],
            "currency": "usd",
            "unit_amount_decimal": "0.35",
            "lookup_key": "video_seconds_legacy",
            "recurring": {"interval": "month", "usage_type": "metered", "aggregate_usage": "sum"},
        },
        stripe_version=LEGACY_API_VERSION,
    )
    gateway.post(f"/v1/prices/{legacy['id']}", {"active": "false"})
    config = tmp_path / "billing.yaml"
    config.write_text(CATALOG + MIGRATION, encoding="utf-8")
    result = stripe_reconcile("plan", "-f", str(config), url=emulator.url)
    assert result.returncode == 0, result.stderr
    status = stripe_reconcile("status", "-f", str(config), url=emulator.url)
    assert status.returncode == 0, status.stderr
    assert f"migration video-seconds-to-meter: {legacy['id']} -> video_seconds_metered" in (
        status.stdout
    )
    assert "no subscriptions on the legacy price" in status.stdout


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


ALERT_FOR_NOBODY = """\
alerts:
  - title: Big customer
    meter: video_seconds
    threshold: 100
    customer: cus_doesnotexist
"""


def test_a_permanent_refusal_says_what_to_change_not_to_run_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "envs-test.yaml"
    config.write_text(CATALOG + ALERT_FOR_NOBODY, encoding="utf-8")
    result = stripe_reconcile("apply", "--auto-approve", "-f", str(config), url=emulator.url)
    assert result.returncode == 1
    assert "Run plan again" not in result.stderr
    assert "apply finishes it" not in result.stderr
    line = CATALOG.count("\n") + 5  # the customer line
    assert result.stderr.splitlines()[-2:] == [
        "Stripe refused this for good (a re-run sends the same request and is refused the same "
        "way): change 'customer' of alert.video_seconds[\"Big customer\"] in "
        f"{config}, or create what it names in the account, then run plan and apply again.",
        f"{config}:{line}:15: alerts[0].customer: the field Stripe refused "
        "(usage_threshold[filters][0][customer])",
    ]


def test_a_permanent_refusal_in_the_json_and_markdown_reports_says_what_to_change(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = tmp_path / "envs-test.yaml"
    config.write_text(CATALOG + ALERT_FOR_NOBODY, encoding="utf-8")
    as_json = stripe_reconcile(
        "apply", "--auto-approve", "--format", "json", "-f", str(config), url=emulator.url
    )
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["advice"].startswith("Stripe refused this for good")
    assert f"in {config}, or create what it names" in report["advice"]
    as_markdown = stripe_reconcile(
        "apply", "--auto-approve", "--format", "markdown", "-f", str(config), url=emulator.url
    )
    assert as_markdown.returncode == 1
    assert "change 'customer' of alert.video_seconds" in as_markdown.stdout
    assert "Plan again" not in as_markdown.stdout
