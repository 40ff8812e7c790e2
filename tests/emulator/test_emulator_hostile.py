"""The emulator's HTTP surface under hostile bytes: raw sockets to 127.0.0.1 only.

Each test opens at most a few connections with a 5-second timeout. Broken
framing is answered (400, 413) in Stripe's error shape and the connection
closed, never dropped on an exception; the control endpoints need a test key
and refuse what a web page could make a browser send; ids are checked as
Stripe checks them.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from emulator_helpers import EMULATOR_KEY

from reconciler.emulator import Emulator
from reconciler.emulator.server import MAX_BODY_BYTES

AUTH = f"Authorization: Bearer {EMULATOR_KEY}\r\n"
FORM = "Content-Type: application/x-www-form-urlencoded\r\n"


def exchange(emu: Emulator, raw: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``raw`` on a fresh connection; read until the server closes; parse the answer."""
    port = urlsplit(emu.url).port
    assert port is not None
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # all sent: a body cut short ends here
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


def request(
    method: str, path: str, headers: str = "", body: bytes = b"", *, length: bool = True
) -> bytes:
    framing = f"Content-Length: {len(body)}\r\n" if length else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    return (head + headers + framing + "\r\n").encode() + body


def assert_stripe_error(status: int, body: Any, expected_status: int, words: str) -> None:
    assert status == expected_status
    assert body["error"]["type"] == "invalid_request_error"
    assert words in body["error"]["message"]


# --- framing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framing", "words"),
    [
        ("Content-Length: abc\r\n", "Content-Length must be one whole number"),
        ("Content-Length: -5\r\n", "Content-Length must be one whole number"),
        ("Content-Length: 1e3\r\n", "Content-Length must be one whole number"),
        ("Content-Length: 3\r\nContent-Length: 4\r\n", "Content-Length must be one whole number"),
        ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", "not both"),
        ("Transfer-Encoding: gzip\r\n", "Only Transfer-Encoding: chunked"),
        ("Content-Length: 100\r\n", "ended before its Content-Length"),
    ],
    ids=["letters", "negative", "exponent", "two-lengths", "length-and-chunked", "gzip", "short"],
)
def test_malformed_framing_is_answered_400_not_dropped(
    emu: Emulator, framing: str, words: str
) -> None:
    raw = request("POST", "/v1/products", AUTH + FORM + framing, length=False) + b"name=A"
    status, headers, body = exchange(emu, raw)
    assert_stripe_error(status, body, 400, words)
    assert headers["connection"] == "close"
    assert emu.stats()["requests_total"] == 0


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\nname=A\r\n0\r\n\r\n", b"6\r\nname=A0\r\n\r\n", b"ffffffffff\r\n", b"6\r\nnam"],
    ids=["not-hex", "no-crlf-after-chunk", "size-too-long", "cut-short"],
)
def test_chunked_garbage_is_answered_400(emu: Emulator, chunks: bytes) -> None:
    head = request(
        "POST", "/v1/products", AUTH + FORM + "Transfer-Encoding: chunked\r\n", length=False
    )
    status, _, body = exchange(emu, head + chunks)
    assert_stripe_error(status, body, 400, "chunked")
    assert emu.stats()["objects"] == {}


def test_a_well_formed_chunked_body_is_read(emu: Emulator) -> None:
    head = request(
        "POST", "/v1/products", AUTH + FORM + "Transfer-Encoding: chunked\r\n", length=False
    )
    status, _, body = exchange(emu, head + b"3\r\nnam\r\n3;ext=1\r\ne=A\r\n0\r\n\r\n")
    assert status == 200
    assert body["name"] == "A"


def test_a_body_over_the_cap_is_refused_413_before_it_is_read(emu: Emulator) -> None:
    declared = f"Content-Length: {50 * 1024 * 1024}\r\n"
    raw = request("POST", "/v1/products", AUTH + FORM + declared, length=False)
    status, headers, body = exchange(emu, raw)  # the 50 MB are never sent
    assert_stripe_error(status, body, 413, f"at most {MAX_BODY_BYTES} bytes")
    assert headers["connection"] == "close"
    assert emu.stats()["objects"] == {}


def test_a_chunked_body_over_the_cap_is_refused_413(emu: Emulator) -> None:
    head = request(
        "POST", "/v1/products", AUTH + FORM + "Transfer-Encoding: chunked\r\n", length=False
    )
    status, _, body = exchange(emu, head + f"{MAX_BODY_BYTES + 1:x}\r\n".encode())
    assert_stripe_error(status, body, 413, "Request body too large")


def test_a_string_over_stripes_limit_is_refused(emu: Emulator) -> None:
    raw = request("POST", "/v1/products", AUTH + FORM, b"name=A&description=" + b"d" * 5001)
    status, _, body = exchange(emu, raw)
    assert_stripe_error(status, body, 400, "must be at most 5000 characters")
    assert body["error"]["param"] == "description"
    assert emu.stats()["objects"] == {}


# --- control endpoints ----------------------------------------------------------------------


def _one_product(emu: Emulator) -> None:
    status, _, _ = exchange(emu, request("POST", "/v1/products", AUTH + FORM, b"name=Kept"))
    assert status == 200


def test_control_endpoints_need_a_test_key(emu: Emulator) -> None:
    _one_product(emu)
    status, _, body = exchange(emu, request("POST", "/_emulator/reset"))
    assert status == 401
    assert "did not provide an API key" in body["error"]["message"]
    status, _, body = exchange(
        emu, request("POST", "/_emulator/reset", "Authorization: Bearer sk_live_0000\r\n")
    )
    assert status == 401
    assert emu.stats()["objects"] == {"product": 1}
    status, _, body = exchange(emu, request("POST", "/_emulator/reset", AUTH))
    assert (status, body) == (200, {"reset": True})
    assert emu.stats()["objects"] == {}


@pytest.mark.parametrize(
    "browser",
    [
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        FORM,
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "Content-Type: text/plain;charset=UTF-8\r\n",
    ],
    ids=["origin", "null-origin", "form", "multipart", "text-plain"],
)
def test_control_endpoints_refuse_what_a_web_page_can_send(emu: Emulator, browser: str) -> None:
    _one_product(emu)
    for headers in (browser, browser + AUTH):  # refused with the key too
        status, _, body = exchange(emu, request("POST", "/_emulator/reset", headers, b"x=1"))
        assert status == 403
        assert "refuse" in body["error"]["message"]
    assert emu.stats()["objects"] == {"product": 1}


def test_control_endpoints_take_json_with_the_key(emu: Emulator) -> None:
    headers = AUTH + "Content-Type: application/json\r\n"
    spec = json.dumps({"spec": "seed=3,500=0.5"}).encode()
    status, _, body = exchange(emu, request("POST", "/_emulator/faults", headers, spec))
    assert status == 200
    assert body["faults"]["seed"] == 3


# --- ids ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "product_id",
    ["prod%01x", "prod%0Ax", "prod%FFx", "prod%EF%BF%BDx", "prod%20x", "p" * 256],
    ids=["control", "newline", "invalid-utf8", "replacement-char", "space", "256-chars"],
)
def test_ids_are_printable_ascii_as_stripe_has_them(emu: Emulator, product_id: str) -> None:
    raw = request("POST", "/v1/products", AUTH + FORM, f"name=A&id={product_id}".encode())
    status, _, body = exchange(emu, raw)
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    status, _, body = exchange(emu, request("GET", f"/v1/products/{product_id}", AUTH))
    assert status == 400
    assert emu.stats()["objects"] == {}


def test_a_path_id_is_percent_decoded_and_checked(emu: Emulator) -> None:
    raw = request("POST", "/v1/products", AUTH + FORM, b"name=A&id=prod_plain")
    assert exchange(emu, raw)[0] == 200
    status, _, body = exchange(emu, request("GET", "/v1/products/prod%5Fplain", AUTH))
    assert (status, body["id"]) == (200, "prod_plain")
