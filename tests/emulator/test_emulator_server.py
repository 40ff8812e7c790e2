"""The HTTP surface: auth, headers, unknown routes, side endpoints, CLI serving."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
import stripe
from emulator_helpers import CONTROL_HEADERS, make_client

from reconciler.emulator import Emulator


def _http(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def test_emulator_binds_loopback_and_refuses_remote_hosts() -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        Emulator(host="0.0.0.0")
    with Emulator(port=0) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:")


def test_bad_key_is_401_and_masked(emu: Emulator) -> None:
    bad = make_client(emu.url, key="sk_live_51Hsecretsecretsecret9876")
    with pytest.raises(stripe.AuthenticationError) as caught:
        bad.v1.products.list()
    assert caught.value.http_status == 401
    message = caught.value.json_body["error"]["message"]
    assert message == "Invalid API Key provided: sk_live_****9876"
    assert "secretsecret" not in message
    assert caught.value.json_body["error"]["type"] == "invalid_request_error"


def test_missing_key_is_401(emu: Emulator) -> None:
    status, _, body = _http(emu.url + "/v1/products")
    assert status == 401
    assert "did not provide an API key" in body["error"]["message"]


def test_basic_auth_and_restricted_test_keys_work(emu: Emulator) -> None:
    token = base64.b64encode(b"rk_test_readonly:").decode()
    status, headers, body = _http(
        emu.url + "/v1/products", headers={"Authorization": f"Basic {token}"}
    )
    assert status == 200
    assert body == {"object": "list", "data": [], "has_more": False, "url": "/v1/products"}
    assert headers["Request-Id"].startswith("req_")
    assert headers["Stripe-Version"] == stripe.api_version


def test_response_headers_echo_the_requested_version(emu: Emulator) -> None:
    status, headers, _ = _http(
        emu.url + "/v1/billing/meters",
        headers={"Authorization": "Bearer sk_test_x", "Stripe-Version": "2025-02-24.acacia"},
    )
    assert status == 200
    assert headers["Stripe-Version"] == "2025-02-24.acacia"


def test_unknown_route_is_404_invalid_request(emu: Emulator) -> None:
    client = make_client(emu.url)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.raw_request("get", "/v1/nothing_here")
    assert caught.value.http_status == 404
    assert "Unrecognized request URL" in str(caught.value.user_message)


def test_missing_object_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.prices.retrieve("price_doesnotexist")
    assert caught.value.http_status == 404
    assert caught.value.code == "resource_missing"
    assert caught.value.param == "id"


def test_stats_count_routes_and_statuses_and_reset_clears(emu: Emulator) -> None:
    client = make_client(emu.url)
    client.v1.products.create(params={"name": "A"})
    client.v1.products.create(params={"name": "B"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve("prod_missing")
    status, _, stats = _http(emu.url + "/_emulator/stats", headers=CONTROL_HEADERS)
    assert status == 200
    assert stats["requests_total"] == 3
    assert stats["by_route"] == {"GET /v1/products/{id}": 1, "POST /v1/products": 2}
    assert stats["by_status"] == {"200": 2, "404": 1}
    assert stats["objects"] == {"product": 2}
    assert [entry["status"] for entry in stats["log"]] == [200, 200, 404]
    status, _, _ = _http(
        emu.url + "/_emulator/reset", method="POST", headers=CONTROL_HEADERS, body=b""
    )
    assert status == 200
    after = emu.stats()
    assert after["requests_total"] == 0
    assert after["objects"] == {}
    assert client.v1.products.list().data == []


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from reconciler.cli import main; main()",
            "emulator",
            "--port",
            "0",
            "--rate-limit",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("emulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        status, _, body = _http(url + "/_emulator/health", headers=CONTROL_HEADERS)
        assert (status, body) == (200, {"ok": True})
        product = make_client(url).v1.products.create(params={"name": "Served"})
        assert product.id.startswith("prod_")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
