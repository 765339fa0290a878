"""The HTTP endpoint over real sockets: a real server on 127.0.0.1, blocking clients
in worker threads (`asyncio.to_thread`) so the event loop keeps serving."""

from __future__ import annotations

import asyncio
import json
import pathlib
import random
import socket

import dns.message
import dns.query
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from geostream_dns.adapters.udp import start_udp
from geostream_dns.api.http import Request, Response, json_response, start_http
from tests.api.helpers import (
    HttpResult,
    exchange,
    http,
    json_body,
    make_app,
    read_response,
    request_bytes,
    serving,
)

# -- health, readiness, metrics -------------------------------------------


def test_health_and_ready_before_and_after_reload(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir)
        async with serving(app) as (_, port):
            health = await http(port, "GET", "/health")
            assert health[0] == 200 and json_body(health) == {"status": "ok"}
            before = await http(port, "GET", "/ready")
            assert before[0] == 503 and json_body(before) == {"status": "starting"}
            await app.reload()
            after = await http(port, "GET", "/ready")
            assert after[0] == 200
            assert json_body(after) == {"status": "ready", "generation": 1}

    asyncio.run(scenario())


def test_metrics_count_a_real_udp_query(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir)
        await app.reload()
        udp = await start_udp(app.worlds, app.stats, "127.0.0.1", 0)
        udp_port = udp.get_extra_info("sockname")[1]
        try:
            async with serving(app) as (_, port):
                for qname, qtype in (("www.example.com.", "A"), ("nope.example.com.", "A"),
                                     ("www.example.com.", "A")):
                    query = dns.message.make_query(qname, qtype)
                    reply = await asyncio.to_thread(
                        dns.query.udp, query, "127.0.0.1", timeout=5, port=udp_port)
                    assert reply.id == query.id
                status, headers, body = await http(port, "GET", "/metrics")
        finally:
            udp.close()
        assert status == 200
        assert headers["content-type"] == CONTENT_TYPE_LATEST
        text = body.decode()
        assert ('geostream_dns_queries_total{qtype="A",rcode="NOERROR",transport="udp"} 2.0'
                in text)
        assert ('geostream_dns_queries_total{qtype="A",rcode="NXDOMAIN",transport="udp"} 1.0'
                in text)
        assert "# TYPE geostream_dns_answer_duration_seconds histogram" in text
        assert 'geostream_dns_answer_duration_seconds_bucket{le="+Inf"} 3.0' in text
        assert "geostream_dns_answer_duration_seconds_count 3.0" in text
        assert "geostream_config_generation 1.0" in text
        assert "geostream_config_zones 1.0" in text
        assert "geostream_config_record_sets 6.0" in text
        assert "geostream_config_reload_errors_total 0.0" in text
        assert "geostream_ready 1.0" in text
        assert "geostream_dns_tcp_connections_total 0.0" in text
        assert "python_info{" in text  # platform collector on the app's own registry

    asyncio.run(scenario())


# -- the zones API -----------------------------------------------------------


def test_zones_list_and_one_zone(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir)
        await app.reload()
        async with serving(app) as (_, port):
            listing = json_body(await http(port, "GET", "/v1/zones"))
            [summary] = listing["zones"]
            assert summary["zone"] == "example.com." and summary["record_sets"] == 6
            assert summary["serial"] > 0
            # With or without the trailing dot, any letter case.
            for path in ("/v1/zones/example.com.", "/v1/zones/Example.COM"):
                status, _, _ = result = await http(port, "GET", path)
                assert status == 200
                zone = json_body(result)
                # The zone file's shape; the managed serial travels in a header.
                assert zone["zone"] == "example.com." and zone["ttl"] == 300
                assert int(result[1]["x-zone-serial"]) == summary["serial"]
                assert zone["nameservers"] == ["ns1.example.net.", "ns2.example.net."]
                assert zone["records"]["www"] == {"type": "A", "ttl": 300,
                                                  "values": ["192.0.2.10", "192.0.2.11"]}
            missing = await http(port, "GET", "/v1/zones/example.org")
            assert missing[0] == 404
            assert json_body(missing) == {"error": "zone not hosted", "details": ["example.org."]}
            invalid = await http(port, "GET", "/v1/zones/a..b")
            assert invalid[0] == 400 and json_body(invalid)["error"] == "invalid zone name"

    asyncio.run(scenario())


# -- routing: 404, 405, HEAD, added routes, failing handlers ------------------


def test_unknown_path_and_wrong_method(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            unknown = await http(port, "GET", "/nope")
            assert unknown[0] == 404
            assert json_body(unknown) == {"error": "not found", "details": []}
            assert (await http(port, "GET", "/v1/zones/"))[0] == 404
            wrong = await http(port, "DELETE", "/health")
            assert wrong[0] == 405
            assert wrong[1]["allow"] == "GET, HEAD"
            assert json_body(wrong)["error"] == "method not allowed"
            # HEAD: the GET headers, no body (the connection stays usable).
            [head], closed_after_head = await asyncio.to_thread(
                exchange, port, request_bytes("HEAD", "/health"))
            assert head[0] == 200 and head[1]["content-length"] == "16"
            assert not closed_after_head

    asyncio.run(scenario())


def test_routes_added_by_other_modules(zones_dir: pathlib.Path) -> None:
    async def echo(request: Request) -> Response:
        return json_response({"params": request.params, "query": request.query})

    async def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (server, port):
            server.router.add("GET", "/v1/echo/{name}/x", echo)
            server.router.add("GET", "/v1/broken", broken)
            echoed = json_body(await http(port, "GET", "/v1/echo/www.example.com%2Fa/x?type=A&z="))
            assert echoed == {"params": {"name": "www.example.com/a"},
                              "query": {"type": ["A"], "z": [""]}}
            # A failing handler answers 500 and the connection keeps serving.
            data = request_bytes("GET", "/v1/broken") + request_bytes("GET", "/health")
            (failed, ok), closed = await asyncio.to_thread(exchange, port, data, 2)
            assert failed[0] == 500
            assert json.loads(failed[2]) == {"error": "internal server error", "details": []}
            assert ok[0] == 200 and not closed

    asyncio.run(scenario())


# -- writes need the token ------------------------------------------------------


async def _write_handler(request: Request) -> Response:
    return json_response({"got": request.json()})


def test_writes_are_forbidden_without_a_configured_token(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (server, port):
            server.router.add("POST", "/v1/regions/{region}/drain", _write_handler)
            for headers in ({}, {"Authorization": "Bearer anything"}):
                result = await http(port, "POST", "/v1/regions/eu/drain", headers, b"{}")
                assert result[0] == 403
                assert json_body(result) == {
                    "error": "API is read-only: set GEOSTREAM_API_TOKEN", "details": []}

    asyncio.run(scenario())


def test_writes_need_the_right_bearer_token(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir, token="s3cret-token")) as (server, port):
            server.router.add("PUT", "/v1/things/{thing}", _write_handler)
            path = "/v1/things/a"
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": "Basic s3cret-token"},
                            {"Authorization": "Bearer s3cret-tokenX"},
                            {"Authorization": "Bearer s3cr\u00e9t"}):
                result = await http(port, "PUT", path, headers, b"{}")
                assert result[0] == 401, headers
                assert result[1]["www-authenticate"].startswith("Bearer")
                assert json_body(result)["error"] == "missing or wrong bearer token"
            good = {"Authorization": "Bearer s3cret-token"}
            ok = await http(port, "PUT", path, good, b'{"a": 1}')
            assert ok[0] == 200 and json_body(ok) == {"got": {"a": 1}}
            bad_json = await http(port, "PUT", path, good, b"{nope")
            assert bad_json[0] == 400
            assert json_body(bad_json)["error"] == "request body is not valid JSON"
            # Reads stay open with a token configured.
            assert (await http(port, "GET", "/health"))[0] == 200

    asyncio.run(scenario())


# -- malformed input ------------------------------------------------------------

MALFORMED = [
    (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
    (b"GET /health\r\n\r\n", 400, "malformed request line"),
    (b"GET  /health HTTP/1.1\r\n\r\n", 400, "malformed request line"),
    (b"G(T /health HTTP/1.1\r\n\r\n", 400, "malformed method"),
    (b"GET /health HTTP/1.x\r\n\r\n", 400, "malformed HTTP version"),
    (b"GET /health HTTP/2.0\r\n\r\n", 505, "HTTP version not supported"),
    (b"GET health HTTP/1.1\r\n\r\n", 400, "malformed request target"),
    (b"GET /he\x01lth HTTP/1.1\r\n\r\n", 400, "malformed request target"),
    (b"GET /health HTTP/1.1\r\nNoColon\r\n\r\n", 400, "malformed header line"),
    (b"GET /health HTTP/1.1\r\nX-A : b\r\n\r\n", 400, "malformed header line"),
    (b"GET /health HTTP/1.1\r\nX-A: b\r\n folded\r\n\r\n", 400, "malformed header line"),
    (b"GET /health HTTP/1.1\r\nX-A: b\x00c\r\n\r\n", 400, "control character in header value"),
    (b"POST /health HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, "bad Content-Length"),
    (b"POST /health HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "bad Content-Length"),
    (b"POST /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
     "bad Content-Length"),
    (b"POST /health HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501,
     "Transfer-Encoding is not supported; send Content-Length"),
    (b"POST /health HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413,
     "request body too large"),
    (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431,
     "request head too large"),
    (b"\x00\xff\xfe\x80 \x81 \x82\r\n\r\n", 400, "malformed method"),
]


@pytest.mark.parametrize(("raw", "status", "error"), MALFORMED,
                         ids=[f"{s}-{i}" for i, (_, s, _) in enumerate(MALFORMED)])
def test_malformed_requests_answer_json_and_close(zones_dir: pathlib.Path, raw: bytes,
                                                  status: int, error: str) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            [result], closed = await asyncio.to_thread(exchange, port, raw)
            assert result[0] == status
            assert json_body(result)["error"] == error
            assert result[1]["connection"] == "close" and closed
            assert (await http(port, "GET", "/health"))[0] == 200

    asyncio.run(scenario())


def test_random_bytes_never_stop_the_server(zones_dir: pathlib.Path) -> None:
    rng = random.Random(7)

    def blast(port: int) -> None:
        for n in range(200):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            if n % 2:
                junk = b"GET /" + junk
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(junk + b"\r\n\r\n")
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass

    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            await asyncio.to_thread(blast, port)
            assert (await http(port, "GET", "/health"))[0] == 200

    asyncio.run(scenario())


# -- connections: keep-alive, close, timeouts -----------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(zones_dir: pathlib.Path) -> None:
    def two_in_turn(port: int) -> tuple[list[HttpResult], bool]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            stream = sock.makefile("rb")
            sock.sendall(request_bytes("GET", "/health"))
            first = read_response(stream)
            sock.sendall(request_bytes("POST", "/health", body=b"ignored"))
            second = read_response(stream)
            sock.sendall(request_bytes("GET", "/ready"))
            third = read_response(stream)
            return [first, second, third], False

    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            (first, second, third), _ = await asyncio.to_thread(two_in_turn, port)
            assert first[0] == 200 and first[1]["connection"] == "keep-alive"
            assert second[0] == 405  # the body was read, so the next request parses
            assert third[0] == 503
            # Pipelined: both requests in one write, answered in order.
            data = request_bytes("GET", "/health") + request_bytes("GET", "/nope")
            (a, b), closed = await asyncio.to_thread(exchange, port, data, 2)
            assert (a[0], b[0], closed) == (200, 404, False)

    asyncio.run(scenario())


def test_connection_close_and_http_1_0(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        async with serving(make_app(zones_dir)) as (_, port):
            cases = [
                (request_bytes("GET", "/health", {"Connection": "close"}), True),
                (b"GET /health HTTP/1.0\r\n\r\n", True),
                (b"GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", False),
                (b"\r\nGET http://127.0.0.1/health HTTP/1.1\r\n\r\n", False),
                (request_bytes("GET", "/health", {"X-Big": "a" * 15_000}), False),  # < 16 KiB
            ]
            for raw, should_close in cases:
                [result], closed = await asyncio.to_thread(exchange, port, raw)
                assert result[0] == 200, raw
                assert closed is should_close, raw

    asyncio.run(scenario())


def test_read_timeout(zones_dir: pathlib.Path) -> None:
    def idle(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return sock.recv(100)

    async def scenario() -> None:
        async with serving(make_app(zones_dir), read_timeout=0.2) as (_, port):
            # A half-sent head gets a 408; an idle connection is closed quietly.
            [result], closed = await asyncio.to_thread(exchange, port, b"GET /health HT")
            assert result[0] == 408 and closed
            assert await asyncio.to_thread(idle, port) == b""
            # A body that never arrives.
            partial = b"POST /health HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"
            [late], closed = await asyncio.to_thread(exchange, port, partial)
            assert late[0] == 408 and closed

    asyncio.run(scenario())


def test_close_ends_keep_alive_connections(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir)
        server = await start_http(app, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes("GET", "/health"))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")
        await reader.readexactly(16)  # {"status":"ok"}\n
        server.close()
        await asyncio.wait_for(server.wait_closed(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    asyncio.run(scenario())
