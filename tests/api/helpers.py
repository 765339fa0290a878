"""An in-process HTTP endpoint and a tiny blocking HTTP client for the API tests.

`serving(app)` runs the real HTTP server of an `App` (built by `make_app`
from a zones folder) on a free port of 127.0.0.1 inside the test's event
loop. The client writes raw bytes on a socket (`exchange`), so tests control
every byte of a request and see every byte of the response; `http()` runs
it in a worker thread (`asyncio.to_thread`) so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import socket
from collections.abc import AsyncIterator
from typing import Any

from geostream_dns.api.http import HttpServer, start_http
from geostream_dns.app import App
from geostream_dns.config.settings import Settings

HttpResult = tuple[int, dict[str, str], bytes]


def make_app(zones_dir: pathlib.Path, token: str | None = None) -> App:
    return App(Settings(listen=(), http=("127.0.0.1", 0), zones=(zones_dir,), api_token=token,
                        state_dir=zones_dir.parent / "state"))


@contextlib.asynccontextmanager
async def serving(app: App, **options: Any) -> AsyncIterator[tuple[HttpServer, int]]:
    server = await start_http(app, "127.0.0.1", 0, **options)
    try:
        yield server, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


# -- a tiny blocking HTTP client on a raw socket ---------------------------


def read_response(stream: Any, head_only: bool = False) -> HttpResult:
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    version, status, _ = status_line.decode("latin-1").split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head_only else stream.read(int(headers["content-length"]))
    return int(status), headers, body


def exchange(port: int, data: bytes, responses: int = 1,
             wait_close: float = 0.3) -> tuple[list[HttpResult], bool]:
    """Send `data`, read `responses` answers; then wait up to `wait_close` seconds
    and report whether the server closed the connection (False when not waiting)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        stream = sock.makefile("rb")
        head_only = data.startswith(b"HEAD ")
        results = [read_response(stream, head_only) for _ in range(responses)]
        if not wait_close:
            return results, False
        sock.settimeout(wait_close)
        try:
            closed = stream.read(1) == b""
        except TimeoutError:
            closed = False
        return results, closed


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def http(port: int, method: str, path: str, headers: dict[str, str] | None = None,
               body: bytes = b"") -> HttpResult:
    results, _ = await asyncio.to_thread(
        exchange, port, request_bytes(method, path, headers, body), 1, 0)
    return results[0]


def json_body(result: HttpResult) -> Any:
    assert result[1]["content-type"] == "application/json"
    return json.loads(result[2])
