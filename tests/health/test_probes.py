"""One probe (adapters/probes.py) against real endpoints on loopback addresses.

Each test runs `probe(check, address)` with `asyncio.run` against an endpoint
of the farm (farm.py) whose behaviour it sets, and checks both the result
and what the endpoint saw: path, Host header, TLS SNI. Time limits check that
a probe ends at its timeout or bound rather than hanging; their upper ends
leave room for a loaded CI machine.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from geostream_dns.adapters.probes import MAX_BODY, probe, prober_for
from geostream_dns.core.health import ProbeResult
from geostream_dns.core.model import HealthCheck
from geostream_dns.version import VERSION
from tests.health.farm import CERT_HOST, Cert, Farm
from tests.support.harness import free_port

HOST = "127.0.0.2"


def http_check(port: int, **kw: Any) -> HealthCheck:
    fields: dict[str, Any] = {"name": "web", "protocol": "http", "port": port,
                              "path": "/healthz", "host": "www.example.com",
                              "timeout": 2.0, "interval": 5.0}
    fields.update(kw)
    return HealthCheck(**fields)


def run(check: HealthCheck, address: str) -> tuple[ProbeResult, float]:
    started = time.monotonic()
    result = asyncio.run(probe(check, address))
    return result, time.monotonic() - started


@pytest.fixture
def port() -> int:
    return free_port(HOST, "127.0.0.3")


# -- HTTP -------------------------------------------------------------------------


def test_http_pass_sends_path_host_and_user_agent(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    result, _ = run(http_check(port), HOST)
    assert result.ok, result
    assert result.reason == "HTTP 200"
    assert 0 < result.latency < 3.0
    assert len(ep.requests) == 1
    seen = ep.requests[0]
    assert seen.method == "GET"
    assert seen.path == "/healthz"
    # not the default port, so the Host header names it (RFC 9110 §7.2)
    assert seen.host == f"www.example.com:{port}"
    assert seen.user_agent == f"geostream-dns-prober/{VERSION} (site=-)"


def test_a_probe_names_its_site_in_the_user_agent(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    result = asyncio.run(prober_for("eu-west")(http_check(port), HOST))
    assert result.ok, result
    assert ep.requests[-1].user_agent == f"geostream-dns-prober/{VERSION} (site=eu-west)"


def test_http_host_defaults_to_the_address_and_path_to_root(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    check = HealthCheck(name="web", protocol="http", port=port)
    result, _ = run(check, HOST)
    assert result.ok, result
    assert ep.requests[0].path == "/"
    assert ep.requests[0].host == f"{HOST}:{port}"


def test_http_probes_the_value_not_the_host_name(endpoints: Farm, port: int) -> None:
    """The connection goes to the value being checked; `host` is only the header."""
    a = endpoints.endpoint(HOST, port)
    b = endpoints.endpoint("127.0.0.3", port)
    run(http_check(port), "127.0.0.3")
    assert (len(a.requests), len(b.requests)) == (0, 1)


@pytest.mark.parametrize(("status", "expect", "ok"), [
    (200, (200,), True),
    (204, (200, 204), True),
    (503, (200,), False),
    (200, (301,), False),
    (301, (301, 302), True),
    (404, (200, 204), False),
])
def test_http_expected_status(endpoints: Farm, port: int, status: int,
                              expect: tuple[int, ...], ok: bool) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.status = status
    result, _ = run(http_check(port, expect_status=expect), HOST)
    assert result.ok is ok, result
    if ok:
        assert result.reason == f"HTTP {status}"
    else:
        assert result.reason == f"HTTP {status}, expected {'/'.join(map(str, expect))}"


def test_http_body_contains_pass_and_fail(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.body = b'{"status": "ok", "db": "up"}'
    result, _ = run(http_check(port, expect_body='"db": "up"'), HOST)
    assert result.ok, result
    assert "body has" in result.reason

    ep.body = b'{"status": "degraded", "db": "down"}'
    result, _ = run(http_check(port, expect_body='"db": "up"'), HOST)
    assert not result.ok
    assert result.reason == 'HTTP 200, body lacks \'"db": "up"\''


def test_http_status_is_checked_before_the_body(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.status, ep.body = 500, b"ok"
    result, _ = run(http_check(port, expect_body="ok"), HOST)
    assert not result.ok
    assert result.reason.startswith("HTTP 500")


def test_a_100_kib_body_without_the_needle_fails(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.body = b"x" * (100 * 1024)
    result, elapsed = run(http_check(port, expect_body="ok"), HOST)
    assert not result.ok
    assert "body lacks 'ok'" in result.reason
    assert elapsed < 3.0


def test_the_needle_is_found_near_the_end_of_the_read_bound(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.body = b"x" * (MAX_BODY - 100) + b"READY" + b"x" * (40 * 1024)
    result, _ = run(http_check(port, expect_body="READY"), HOST)
    assert result.ok, result


def test_a_needle_beyond_the_read_bound_is_not_found(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.body = b"x" * (MAX_BODY + 1024) + b"READY"
    result, _ = run(http_check(port, expect_body="READY"), HOST)
    assert not result.ok
    assert "body lacks" in result.reason


def test_an_endless_body_is_read_only_up_to_the_bound(endpoints: Farm, port: int) -> None:
    """The body read stops at 64 KiB: the probe fails at once rather than reading
    until its timeout (and the endpoint stops being able to send)."""
    ep = endpoints.endpoint(HOST, port)
    ep.endless = True
    result, elapsed = run(http_check(port, expect_body="READY", timeout=3.0), HOST)
    assert not result.ok
    assert "body lacks" in result.reason, result
    assert elapsed < 3.5, f"read for {elapsed:.2f} s: not bounded by size"
    time.sleep(0.2)
    # the endpoint could push at most the socket buffers beyond what was read
    assert ep.body_bytes_sent < 16 * 1024 * 1024


def test_a_response_head_over_16_kib_fails_cleanly(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.head_padding = 20 * 1024
    result, elapsed = run(http_check(port), HOST)
    assert not result.ok
    assert result.reason == "response head larger than 16 KiB"
    assert elapsed < 3.0


def test_an_endless_head_fails_cleanly(endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.head_padding = 10 * 1024 * 1024
    result, elapsed = run(http_check(port), HOST)
    assert not result.ok
    assert result.reason == "response head larger than 16 KiB"
    assert elapsed < 3.5


def test_a_response_that_is_not_http_fails(port: int) -> None:
    """A raw TCP service that greets with a banner is not a passing HTTP check."""
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, port))
        srv.listen()

        async def main() -> ProbeResult:
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(probe(http_check(port, timeout=1.0), HOST))
            conn, _ = await loop.sock_accept(srv)
            with conn:
                await loop.sock_sendall(conn, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                return await task

        srv.setblocking(False)
        result = asyncio.run(main())
    assert not result.ok
    assert result.reason.startswith("not an HTTP response: 'SSH-2.0-OpenSSH_9.6'")


def test_a_connection_closed_before_any_answer_fails(port: int) -> None:
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, port))
        srv.listen()
        srv.setblocking(False)

        async def main() -> ProbeResult:
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(probe(http_check(port, timeout=1.0), HOST))
            conn, _ = await loop.sock_accept(srv)
            conn.close()
            return await task

        result = asyncio.run(main())
    assert not result.ok
    assert result.latency < 2.0
    assert "timeout" not in result.reason


# -- timeouts and refusals ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http", "https"])
def test_an_endpoint_that_never_answers_times_out_on_time(
        endpoints: Farm, port: int, cert: Cert, protocol: str) -> None:
    ep = endpoints.endpoint(HOST, port, tls=cert.server_context() if protocol == "https"
                            else None)
    ep.silent = True
    check = http_check(port, protocol=protocol, timeout=0.5, verify_tls=False)
    result, elapsed = run(check, HOST)
    assert not result.ok
    assert result.reason == "timeout after 0.5s"
    assert len(ep.requests) == 1  # it really got as far as the request
    assert 0.5 <= elapsed < 0.5 + 2.0, f"took {elapsed:.3f} s"
    assert 0.5 <= result.latency < 2.5


def test_a_tls_handshake_that_never_completes_times_out(port: int) -> None:
    """A plain TCP listener that accepts and stays silent: the TLS handshake hangs."""
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((HOST, port))
        srv.listen()
        check = http_check(port, protocol="https", timeout=0.5, verify_tls=False)
        result, elapsed = run(check, HOST)
    assert result.reason == "timeout after 0.5s"
    assert elapsed < 3.0


def test_a_slow_endpoint_within_the_timeout_passes_and_reports_its_latency(
        endpoints: Farm, port: int) -> None:
    ep = endpoints.endpoint(HOST, port)
    ep.delay = 0.3
    result, _ = run(http_check(port, timeout=1.0), HOST)
    assert result.ok
    assert 0.3 <= result.latency < 2.5


def test_a_refused_port_fails_fast() -> None:
    port = free_port(HOST)
    for protocol in ("http", "tcp"):
        check = HealthCheck(name="web", protocol=protocol, port=port, timeout=2.0)
        result, elapsed = run(check, HOST)
        assert not result.ok
        assert result.reason == "connection refused"
        assert elapsed < 2.0


# -- TCP ------------------------------------------------------------------------------------


def test_tcp_passes_when_the_port_listens(endpoints: Farm, port: int) -> None:
    endpoints.endpoint(HOST, port)
    check = HealthCheck(name="db", protocol="tcp", port=port, timeout=1.0)
    result, elapsed = run(check, HOST)
    assert result.ok, result
    assert elapsed < 2.0


# -- HTTPS ----------------------------------------------------------------------------------


def https_check(port: int, **kw: Any) -> HealthCheck:
    return http_check(port, protocol="https", host=CERT_HOST, **kw)


def test_https_self_signed_fails_verification(endpoints: Farm, port: int, cert: Cert) -> None:
    ep = endpoints.endpoint(HOST, port, tls=cert.server_context())
    result, elapsed = run(https_check(port, verify_tls=True), HOST)
    assert not result.ok
    assert result.reason.startswith("TLS: "), result
    assert "CERTIFICATE_VERIFY_FAILED" in result.reason
    assert elapsed < 3.0
    assert ep.requests == []  # no request goes out over an unverified channel


def test_https_without_verification_passes_and_sends_sni_and_host(
        endpoints: Farm, port: int, cert: Cert) -> None:
    ep = endpoints.endpoint(HOST, port, tls=cert.server_context())
    ep.body = b"all good: ok"
    result, _ = run(https_check(port, verify_tls=False, expect_body="ok"), HOST)
    assert result.ok, result
    seen = ep.requests[-1]
    assert seen.sni == CERT_HOST
    assert seen.host == f"{CERT_HOST}:{port}"
    assert seen.path == "/healthz"


def test_https_expected_status_applies_over_tls(endpoints: Farm, port: int, cert: Cert) -> None:
    ep = endpoints.endpoint(HOST, port, tls=cert.server_context())
    ep.status = 503
    result, _ = run(https_check(port, verify_tls=False), HOST)
    assert not result.ok
    assert result.reason == "HTTP 503, expected 200"


# -- IPv6 ------------------------------------------------------------------------------------


def test_an_aaaa_value_is_probed_over_ipv6(endpoints: Farm) -> None:
    port = free_port("::1")
    ep = endpoints.endpoint("::1", port)
    v4 = endpoints.endpoint("127.0.0.1", port) if _free("127.0.0.1", port) else None
    check = HealthCheck(name="web", protocol="http", port=port, path="/v6", timeout=1.0)
    result, _ = run(check, "::1")
    assert result.ok, result
    assert len(ep.requests) == 1
    assert ep.requests[0].path == "/v6"
    # an IPv6 literal in Host is bracketed (RFC 9110 §7.2, RFC 3986 IP-literal)
    assert ep.requests[0].host == f"[::1]:{port}"
    if v4 is not None:
        assert v4.requests == []
    tcp = HealthCheck(name="db", protocol="tcp", port=port, timeout=1.0)
    assert run(tcp, "::1")[0].ok


def test_an_ipv6_https_value_with_a_host_name_sends_sni(endpoints: Farm, cert: Cert) -> None:
    port = free_port("::1")
    ep = endpoints.endpoint("::1", port, tls=cert.server_context())
    result, _ = run(https_check(port, verify_tls=False), "::1")
    assert result.ok, result
    assert ep.requests[0].sni == CERT_HOST
    assert ep.requests[0].host == f"{CERT_HOST}:{port}"


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
