"""The HTTP transport and the :class:`Emulator` lifecycle.

A stdlib ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive) hands each request to
:class:`~reconciler.emulator.app.App`. It binds loopback only unless
``allow_remote=True``: the emulator accepts any test key, so it must not be
reachable from elsewhere by accident. :class:`Emulator` runs it on a
background thread (``with Emulator() as emu: ...``); :func:`serve` runs it in
the foreground until SIGINT or SIGTERM (the CLI's ``emulator`` command).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import secrets
import signal
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from reconciler.emulator.app import App, Headers
from reconciler.emulator.clock import Clock
from reconciler.emulator.errors import ApiError
from reconciler.emulator.faults import FaultPlan
from reconciler.emulator.persistence import SqlitePersistence
from reconciler.emulator.resources import build_registry
from reconciler.emulator.store import JSON, Store

__all__ = ["MAX_BODY_BYTES", "Emulator", "check_host", "serve"]

logger = logging.getLogger(__name__)


def check_host(host: str, allow_remote: bool = False) -> None:
    """Refuse a non-loopback bind address unless ``allow_remote``."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise ValueError(
            f"refusing to listen on {host!r}: the emulator accepts any test key, so it only "
            "binds loopback addresses (127.0.0.0/8, ::1, localhost); pass allow_remote=True "
            "to listen elsewhere on purpose"
        )


MAX_BODY_BYTES = 1024 * 1024
"""Request bodies above this are refused with 413 (Stripe's own requests are far smaller)."""
_DIGITS = re.compile(r"[0-9]{1,15}")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})(?:;[^\r\n]*)?\r?\n")
_MAX_CHUNK_LINE = 1024
_MAX_TRAILERS = 32


class _Framing(Exception):
    """A request body that cannot be read as framed: answered, then the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _too_large() -> _Framing:
    return _Framing(413, f"Request body too large: at most {MAX_BODY_BYTES} bytes are accepted.")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        try:
            body = self._read_body()
        except _Framing as exc:
            self._refuse_framing(exc)
            return
        try:
            outcome = self.server.app.handle(method, self.path, Headers(self.headers.items()), body)
        except Exception:
            logger.exception("emulator handler failed for %s %s", method, self.path)
            message = b'{"error": {"type": "api_error", "message": "Emulator internal error."}}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", "req_" + secrets.token_hex(7))
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        if outcome.drop:
            self._drop()
            return
        self.send_response(outcome.status)
        for name, value in outcome.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(outcome.body)))
        self.end_headers()
        self.wfile.write(outcome.body)

    def _read_body(self) -> bytes:
        """The request body, framed by Content-Length or chunked, at most MAX_BODY_BYTES.

        A body over the cap is refused from its declared length, before any of
        it is read; one that turns out longer while being read stops there.
        """
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if codings:
            if lengths:
                raise _Framing(400, "Send either Content-Length or Transfer-Encoding, not both.")
            if [c.strip().lower() for c in ",".join(codings).split(",")] != ["chunked"]:
                raise _Framing(400, "Only Transfer-Encoding: chunked is understood.")
            return self._read_chunked()
        if not lengths:
            return b""
        values = {value.strip() for value in lengths}
        text = values.pop()
        if values or not _DIGITS.fullmatch(text):
            raise _Framing(400, "Content-Length must be one whole number of bytes.")
        length = int(text)
        if length > MAX_BODY_BYTES:
            raise _too_large()
        body = self.rfile.read(length)
        if len(body) < length:
            raise _Framing(400, "The request body ended before its Content-Length.")
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE)
            size = _CHUNK_SIZE.fullmatch(line)
            if size is None:
                raise _Framing(400, "Malformed chunked request body.")
            length = int(size.group(1), 16)
            if length == 0:
                break
            if len(body) + length > MAX_BODY_BYTES:
                raise _too_large()
            chunk = self.rfile.read(length)
            if len(chunk) < length or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _Framing(400, "Malformed chunked request body.")
            body += chunk
        for _ in range(_MAX_TRAILERS):
            if self.rfile.readline(_MAX_CHUNK_LINE) in (b"\r\n", b"\n", b""):
                return bytes(body)
        raise _Framing(400, "Malformed chunked request body.")

    def _refuse_framing(self, exc: _Framing) -> None:
        """Answer a request whose body cannot be read, then close: the stream is out of step."""
        self.close_connection = True
        message = json.dumps(ApiError(exc.status, exc.message).body()).encode()
        with contextlib.suppress(OSError):
            self.send_response(exc.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Request-Id", "req_" + secrets.token_hex(7))
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)

    def _drop(self) -> None:
        """Close the connection with a TCP reset and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: App, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Emulator:
    """A running emulator: ``with Emulator(port=0) as emu: client(emu.url) ...``.

    ``rate_limit`` is requests per second (None or 0 = off); ``faults`` a
    :class:`FaultPlan` or its spec string; ``db_path`` a SQLite file that keeps
    the state across restarts.
    """

    def __init__(
        self,
        port: int = 0,
        rate_limit: float | None = None,
        faults: FaultPlan | str | None = None,
        db_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        allow_remote: bool = False,
        clock: Clock | None = None,
    ) -> None:
        check_host(host, allow_remote)
        self.host = host
        self.port = port
        plan = FaultPlan.parse(faults) if isinstance(faults, str) else faults
        self._persistence = SqlitePersistence(db_path) if db_path is not None else None
        self.app = App(
            build_registry(),
            clock=clock,
            rate_limit=rate_limit,
            faults=plan,
            persistence=self._persistence,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- state access -------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The live store (hold ``store.lock`` while touching it from a test)."""
        return self.app.store

    @property
    def clock(self) -> Clock:
        return self.app.clock

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def stats(self) -> JSON:
        return self.app.stats()

    def reset(self) -> None:
        """Empty the emulator and go back to the start-up faults and rate limit."""
        self.app.reset()

    def set_faults(self, faults: FaultPlan | str | None) -> None:
        self.app.set_faults(FaultPlan.parse(faults) if isinstance(faults, str) else faults)

    def set_rate_limit(self, rate: float | None) -> None:
        self.app.set_rate_limit(rate)

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _Server((self.host, self.port), self.app, family)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if self._persistence is not None:
            self._persistence.close()
            self._persistence = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 12111,
    db_path: str | Path | None = None,
    rate_limit: float | None = None,
    faults: str | None = None,
    allow_remote: bool = False,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run an emulator in the foreground until SIGINT or SIGTERM."""
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Emulator(
            port,
            rate_limit=rate_limit,
            faults=faults,
            db_path=db_path,
            host=host,
            allow_remote=allow_remote,
        ) as emulator:
            if on_ready is not None:
                on_ready(emulator.url)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
