"""`geostream-dns serve` as a process: listeners (IPv4, IPv6, several), readiness,
`dig`, and SIGTERM shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import dns.message
import pytest

from tests.e2e.conftest import (
    frame,
    rdata_texts,
    recv_framed,
    tcp_connect,
    tcp_exchange,
    udp_exchange,
)
from tests.support.harness import STOP_TIMEOUT, ServerProcess, StartServer

STATIC = {"192.0.2.80", "192.0.2.81"}


def test_every_listen_address_answers_udp_and_tcp(server: ServerProcess) -> None:
    assert len(server.listens) == 3
    for host, port in server.listens:
        query = dns.message.make_query("static.example.com", "A")
        reply, _ = udp_exchange(query, host, port)
        assert rdata_texts(reply, "A") == STATIC, (host, port, "udp")
        reply, _ = tcp_exchange(query, host, port)
        assert rdata_texts(reply, "A") == STATIC, (host, port, "tcp")


def test_ipv6_udp_and_tcp(server: ServerProcess) -> None:
    v6 = [(h, p) for h, p in server.listens if h == "::1"]
    assert v6, "the shared server listens on [::1]"
    host, port = v6[0]
    query = dns.message.make_query("ns2.example.com", "AAAA", use_edns=0)
    reply, _ = udp_exchange(query, host, port)
    assert rdata_texts(reply, "AAAA") == {"2001:db8::53"}
    reply, _ = tcp_exchange(query, host, port)
    assert rdata_texts(reply, "AAAA") == {"2001:db8::53"}
    routed = dns.message.make_query("www.example.com", "A")
    reply, _ = udp_exchange(routed, host, port)
    assert rdata_texts(reply, "A"), "a routed name answers an IPv6 client"


def test_dig_smoke(server: ServerProcess) -> None:
    dig = shutil.which("dig")
    assert dig, "dig is not installed (make tools)"
    for transport in ("+notcp", "+tcp"):
        out = subprocess.run(
            [dig, "@127.0.0.1", "-p", str(server.port), "+short", "+time=2", "+tries=1",
             transport, "static.example.com"],
            capture_output=True, text=True, timeout=10, check=True)
        assert sorted(out.stdout.split()) == sorted(STATIC), out.stdout + out.stderr


def test_dig_shows_aa_and_no_ra(server: ServerProcess) -> None:
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(server.port), "+norec", "+time=2", "+tries=1",
         "static.example.com", "A"],
        capture_output=True, text=True, timeout=10, check=True).stdout
    flags = next(line for line in out.splitlines() if line.startswith(";; flags:"))
    assert flags.split(";")[2].split(":")[1].split() == ["qr", "aa"], flags


def test_ready_endpoint(server: ServerProcess) -> None:
    host, port, zones_dir, process = server  # the fixture's documented shape
    assert process.poll() is None and (zones_dir / "e2e.test.yaml").exists()
    assert (host, port) == server.listens[0]
    if server.http_port is None:
        pytest.fail("geostream_dns/api/http.py is missing: no /ready to check")
    assert server.http("/ready", timeout=2)[0] == 200


def test_log_is_json_lines(server: ServerProcess) -> None:
    events = server.log_events()
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert events and len(events) == len(lines), "every stderr line is a JSON object"
    assert any(e.get("event") == "server.started" for e in events)


def test_sigterm_stops_the_server_cleanly(start_server: StartServer) -> None:
    srv = start_server(http=False)
    # A client mid-conversation must not hold the shutdown up.
    idle = tcp_connect(srv.host, srv.port)
    query = dns.message.make_query("static.example.com", "A")
    idle.sendall(frame(query.to_wire()))
    recv_framed(idle)
    half = tcp_connect(srv.host, srv.port)
    half.sendall(b"\x00\x40\x12")  # an unfinished message
    try:
        started = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        srv.process.wait(timeout=STOP_TIMEOUT + 1)
        took = time.monotonic() - started
    finally:
        idle.close()
        half.close()
    assert srv.stop() == 0  # also records the result for the fixture's own check
    assert took < STOP_TIMEOUT, f"took {took:.2f} s to stop"
    events = [e.get("event") for e in srv.log_events()]
    assert "server.stopped" in events
    # The ports are free again.
    for family, kind in ((socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET, socket.SOCK_STREAM)):
        with socket.socket(family, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            sock.bind((srv.host, srv.port))
