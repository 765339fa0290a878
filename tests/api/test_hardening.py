"""The HTTP endpoint under abuse: size limits, slow clients, the failed-authentication
limit, the audit log and zone names that try to leave the zones folder."""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
import time

import pytest
import structlog.testing

from geostream_dns.api.http import AUTH_FAILURES, MAX_HEADERS
from tests.api.helpers import exchange, http, json_body, make_app, read_response, serving
from tests.support.zones import zone_text

TOKEN = {"Authorization": "Bearer t0ken"}


def _from(source: str, port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0)) as sock:
        sock.sendall(data)
        return read_response(sock.makefile("rb"))


def _put(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"PUT {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_header_bomb_gets_431(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            many = "".join(f"X-H{i}: v\r\n" for i in range(MAX_HEADERS + 1))
            raw = f"GET /health HTTP/1.1\r\n{many}\r\n".encode()
            [result], closed = await asyncio.to_thread(exchange, port, raw)
            assert result[0] == 431 and closed
            assert json_body(result)["error"] == "too many header fields"
            big = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
            [result], closed = await asyncio.to_thread(exchange, port, big)
            assert result[0] == 431 and closed
            # just under the limit is served
            fine = "".join(f"X-H{i}: v\r\n" for i in range(MAX_HEADERS - 2))
            [ok], _ = await asyncio.to_thread(
                exchange, port, f"GET /health HTTP/1.1\r\n{fine}\r\n".encode())
            assert ok[0] == 200

    asyncio.run(scenario())


def test_long_request_line_gets_414(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            raw = b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"
            [result], closed = await asyncio.to_thread(exchange, port, raw)
            assert result[0] == 414 and closed
            assert (await http(port, "GET", "/health"))[0] == 200

    asyncio.run(scenario())


def test_slow_client_dripping_a_head_is_cut(zones_dir: pathlib.Path) -> None:
    """Bytes keep coming, one every 0.2 s, but the head is not complete within the
    read timeout: 408 and the connection closes."""
    def drip(port: int) -> tuple[int, float]:
        head = b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            stream = sock.makefile("rb")
            for byte in head:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.2)
                sock.settimeout(0.001)
                try:
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except (TimeoutError, BlockingIOError):
                    pass
                finally:
                    sock.settimeout(5)
            status = read_response(stream)[0]
        return status, time.monotonic() - started

    async def scenario() -> None:
        async with serving(make_app(zones_dir), read_timeout=1.0) as (_, port):
            status, took = await asyncio.to_thread(drip, port)
            assert status == 408
            assert took < 5

    asyncio.run(scenario())


def test_failed_authentications_are_limited_per_client(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        async with serving(app) as (_, port):
            body = json.dumps({"zone": "example.org."}).encode()
            bad = _put("/v1/zones/example.org", {"Authorization": "Bearer nope"}, body)
            for _ in range(AUTH_FAILURES):
                assert (await asyncio.to_thread(_from, "127.0.0.1", port, bad))[0] == 401
            # the right token no longer helps this address ...
            good = _put("/v1/zones/example.org", TOKEN, body)
            blocked = await asyncio.to_thread(_from, "127.0.0.1", port, good)
            assert blocked[0] == 429
            assert int(blocked[1]["retry-after"]) > 0
            # ... while another address is not held back
            other = await asyncio.to_thread(_from, "127.0.0.2", port, good)
            assert other[0] == 422  # authenticated; the body is not a whole zone
            # reads stay open for the blocked address
            assert (await http(port, "GET", "/v1/zones"))[0] == 200

    asyncio.run(scenario())


def test_every_write_and_failed_authentication_is_audited(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        async with serving(app) as (_, port):
            doc = zone_text("www: {type: A, value: 192.0.2.7}\n", "example.net.")
            yaml_headers = {"Content-Type": "application/yaml"}
            with structlog.testing.capture_logs() as logs:
                await http(port, "PUT", "/v1/zones/example.net",
                           {"Authorization": "Bearer wrong", **yaml_headers}, doc.encode())
                ok = await http(port, "PUT", "/v1/zones/example.net",
                                {**TOKEN, **yaml_headers}, doc.encode())
                assert ok[0] == 200, ok
                await http(port, "DELETE", "/v1/zones/example.net", TOKEN)
                await http(port, "GET", "/v1/zones")  # a read: not audited
            audits = [e for e in logs if e["event"] == "api.audit"]
            assert [(e["method"], e["status"], e["result"], e["auth"]) for e in audits] == [
                ("PUT", 401, "denied", "bad-token"),
                ("PUT", 200, "ok", "token"),
                ("DELETE", 200, "ok", "token")]
            assert all(e["client"] == "127.0.0.1" and e["path"] == "/v1/zones/example.net"
                       for e in audits)

    asyncio.run(scenario())


ESCAPES = ["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "a%2Fb", "a%00b", "%252e%252e%252fx",
           "a%5C..%5Cb", "..", "x..y", "a%5C047b", "a%20b", "%2Fetc"]


@pytest.mark.parametrize("name", ESCAPES)
def test_zone_names_cannot_leave_the_zones_folder(zones_dir: pathlib.Path, name: str) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        before = sorted(p.relative_to(zones_dir.parent)
                        for p in zones_dir.parent.rglob("*") if p.is_file())
        async with serving(app) as (_, port):
            doc = zone_text("www: {type: A, value: 192.0.2.7}\n", "example.net.")
            result = await http(port, "PUT", f"/v1/zones/{name}",
                                {**TOKEN, "Content-Type": "application/yaml"}, doc.encode())
            assert result[0] == 400, result
            assert json_body(result)["error"] == "invalid zone name"
            assert (await http(port, "DELETE", f"/v1/zones/{name}", TOKEN))[0] == 400
        after = sorted(p.relative_to(zones_dir.parent)
                       for p in zones_dir.parent.rglob("*") if p.is_file())
        assert [p for p in after if p not in before and not str(p).startswith("state")] == []

    asyncio.run(scenario())
