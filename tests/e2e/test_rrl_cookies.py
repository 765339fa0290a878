"""Response-rate limiting, DNS Cookies, NSID and CH TXT over real UDP and TCP.

The servers run with `--rrl-exempt none` (loopback is exempt by default). Each
client binds its own loopback source address, so 127.0.5.1 and 127.0.6.1 are
two different /24 networks to the limiter; the harness's readiness queries
come from 127.0.0.1, a third.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.harness import (
    ServerProcess,
    StartServer,
    free_port,
    new_redis_prefix,
    remove_redis_prefix,
    stop_process,
    wait_until,
)

FLOODER = "127.0.5.1"
BYSTANDER = "127.0.6.1"
RATE = 10
LIMITED = ["--rrl-exempt", "none", "--rrl-rate", str(RATE), "--rrl-window", "2",
           "--server-id", "ns-e2e.example.net"]
REDIS_URL = "redis://127.0.0.1:6379/0"
DIG = shutil.which("dig")
UNBOUND = shutil.which("unbound") or ("/usr/sbin/unbound"
                                      if os.path.exists("/usr/sbin/unbound") else None)


def udp_socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


def flood(srv: ServerProcess, source: str, count: int, name: str = "www.example.com.",
          cookie: bytes | None = None) -> dict[str, int]:
    """Send `count` queries from `source` as fast as it can; count what comes back."""
    options = [dns.edns.GenericOption(10, cookie)] if cookie else None  # type: ignore[arg-type]
    query = dns.message.make_query(name, "A", use_edns=0 if cookie else False,
                                   options=options)
    sock = udp_socket(source)
    sock.settimeout(0.5)
    out = {"sent": 0, "bytes_in": 0, "full": 0, "tc": 0, "badcookie": 0, "bytes_out": 0}
    try:
        for i in range(count):
            query.id = i
            wire = query.to_wire()
            sock.sendto(wire, (srv.host, srv.port))
            out["sent"] += 1
            out["bytes_out"] += len(wire)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            out["bytes_in"] += len(data)
            reply = dns.message.from_wire(data)
            if reply.rcode() == dns.rcode.BADCOOKIE:
                out["badcookie"] += 1
            elif reply.flags & dns.flags.TC:
                out["tc"] += 1
            elif reply.answer:
                out["full"] += 1
    finally:
        sock.close()
    return out


def ask_from(srv: ServerProcess, source: str, name: str = "www.example.com.",
             timeout: float = 1.0, **options: object) -> dns.message.Message:
    query = dns.message.make_query(name, "A", **options)  # type: ignore[arg-type]
    return dns.query.udp(query, srv.host, port=srv.port, timeout=timeout, source=source)


def cookie_of(reply: dns.message.Message) -> bytes:
    for option in reply.options:
        if option.otype == dns.edns.OptionType.COOKIE:
            return option.to_wire()
    raise AssertionError(f"no COOKIE option in {reply}")


def rrl_actions(srv: ServerProcess) -> dict[str, float]:
    found = re.findall(r'geostream_rrl_actions_total\{action="(\w+)"\} ([0-9.e+]+)',
                       srv.metrics())
    return {action: float(value) for action, value in found}


@pytest.fixture
def limited(start_server: StartServer) -> ServerProcess:
    return start_server(args=LIMITED)


def test_a_flood_from_one_network_is_limited_and_another_loses_nothing(
        limited: ServerProcess) -> None:
    result = flood(limited, FLOODER, 300)
    # the first second's worth is answered, then drops, every 2nd limited one slipped
    assert result["full"] <= RATE + 2
    assert result["tc"] >= 100
    assert result["bytes_in"] <= result["bytes_out"]  # no amplification
    for _ in range(5):  # the other /24, at its pace, loses nothing
        reply = ask_from(limited, BYSTANDER)
        assert reply.answer and not reply.flags & dns.flags.TC
        time.sleep(0.15)
    actions = rrl_actions(limited)
    assert actions["drop"] >= 100 and actions["slip"] >= 100


def test_tcp_is_never_limited(limited: ServerProcess) -> None:
    flood(limited, FLOODER, 100)
    for _ in range(30):
        query = dns.message.make_query("www.example.com.", "A")
        reply = dns.query.tcp(query, limited.host, port=limited.port, timeout=2,
                              source=FLOODER)
        assert reply.answer and not reply.flags & dns.flags.TC


def test_a_valid_server_cookie_is_not_limited(limited: ServerProcess) -> None:
    first = ask_from(limited, FLOODER, use_edns=0,
                     options=[dns.edns.GenericOption(10, b"clientck")])  # type: ignore[arg-type]
    cookie = cookie_of(first)
    assert cookie[:8] == b"clientck" and len(cookie) == 24
    result = flood(limited, FLOODER, 100, cookie=cookie)
    assert result["full"] == 100
    # a client cookie alone is limited, and its slips are BADCOOKIE with a fresh cookie
    result = flood(limited, FLOODER, 100, cookie=b"clientck")
    assert result["full"] <= RATE + 2 and result["badcookie"] >= 20


def test_dig_cookie_round_trip(limited: ServerProcess) -> None:
    assert DIG is not None, "dig is not installed: make tools installs it"
    base = [DIG, f"@{limited.host}", "-p", str(limited.port), "-b", BYSTANDER,
            "www.example.com", "A", "+tries=1", "+time=2"]
    out = subprocess.run([*base, "+cookie"], capture_output=True, text=True, timeout=20).stdout
    match = re.search(r"COOKIE: ([0-9a-f]{48}) \(good\)", out)
    assert match, out
    out = subprocess.run([*base, f"+cookie={match.group(1)}"], capture_output=True,
                         text=True, timeout=20).stdout
    assert "status: NOERROR" in out and "(good)" in out and "192.0.2." in out, out
    assert match.group(1)[:16] in out  # the client cookie echoed with our server cookie
    out = subprocess.run([*base, "+nsid"], capture_output=True, text=True, timeout=20).stdout
    assert '("ns-e2e.example.net")' in out, out


def test_ch_txt_id_server_and_hostname_bind(limited: ServerProcess) -> None:
    for name in ("id.server.", "hostname.bind."):
        query = dns.message.make_query(name, "TXT", "CH")
        reply = dns.query.udp(query, limited.host, port=limited.port, timeout=2)
        assert [rd.to_text() for rd in reply.answer[0]] == ['"ns-e2e.example.net"']
    query = dns.message.make_query("version.bind.", "TXT", "CH")
    reply = dns.query.tcp(query, limited.host, port=limited.port, timeout=2)
    assert reply.rcode() == dns.rcode.REFUSED


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    name = new_redis_prefix()
    yield name
    remove_redis_prefix(name, REDIS_URL)


def test_servers_sharing_a_fleet_secret_accept_each_others_cookies(
        start_server: StartServer, redis_prefix: str) -> None:
    env = {"REDIS_URL": REDIS_URL, "GEOSTREAM_REDIS_PREFIX": redis_prefix}
    one = start_server(args=LIMITED, env=env)
    two = start_server(args=[*LIMITED[:-1], "ns-two.example.net"], env=env)
    first = ask_from(one, FLOODER, use_edns=0,
                     options=[dns.edns.GenericOption(10, b"clientck")])  # type: ignore[arg-type]
    cookie = cookie_of(first)
    # server two accepts it: never limited, and the cookie is echoed as valid
    result = flood(two, FLOODER, 60, cookie=cookie)
    assert result["full"] == 60
    reply = ask_from(two, FLOODER, use_edns=0,
                     options=[dns.edns.GenericOption(10, cookie)])  # type: ignore[arg-type]
    assert cookie_of(reply) == cookie


def test_rotation_keeps_the_previous_secret_valid(start_server: StartServer) -> None:
    srv = start_server(args=[*LIMITED, "--cookie-rotation", "2"])
    secret_file = srv.state_dir / "cookie-secret.json"
    before = secret_file.read_text()
    first = ask_from(srv, FLOODER, use_edns=0,
                     options=[dns.edns.GenericOption(10, b"clientck")])  # type: ignore[arg-type]
    cookie = cookie_of(first)
    wait_until(lambda: secret_file.read_text() != before, timeout=6)
    # rotated once: the cookie made with the previous secret is still valid (not
    # limited), and the reply carries a fresh cookie made with the new secret
    result = flood(srv, FLOODER, 50, cookie=cookie)
    assert result["full"] == 50
    reply = ask_from(srv, FLOODER, use_edns=0,
                     options=[dns.edns.GenericOption(10, cookie)])  # type: ignore[arg-type]
    assert cookie_of(reply) != cookie and cookie_of(reply)[:8] == b"clientck"
    # two rotations later the old cookie is no longer valid: limited like any other
    after = secret_file.read_text()
    wait_until(lambda: secret_file.read_text() != after, timeout=6)
    result = flood(srv, FLOODER, 60, cookie=cookie)
    assert result["full"] < 60 and result["badcookie"] > 0


@pytest.fixture
def unbound(limited: ServerProcess, tmp_path: pathlib.Path) -> Iterator[tuple[str, int]]:
    assert UNBOUND is not None, "unbound is not installed: make tools installs it"
    port = free_port(avoid={limited.port})
    conf = tmp_path / "unbound.conf"
    conf.write_text(f"""
server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{tmp_path}"
  pidfile: ""
  use-syslog: no
  logfile: "{tmp_path}/unbound.log"
  verbosity: 1
  do-ip6: no
  outgoing-interface: 127.0.7.1
  do-not-query-localhost: no
  module-config: "iterator"
  qname-minimisation: no
  num-threads: 1
  access-control: 127.0.0.0/8 allow
stub-zone:
  name: "example.com"
  stub-addr: {limited.host}@{limited.port}
""")
    process = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    try:
        def answers() -> bool:
            try:
                query = dns.message.make_query("ns1.example.com.", "A")
                dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
            except (OSError, dns.exception.DNSException):
                assert process.poll() is None, (tmp_path / "unbound.log").read_text()
                return False
            return True
        wait_until(answers, timeout=15)
        yield "127.0.0.1", port
    finally:
        stop_process(process)


def test_unbound_in_front_gets_every_answer_while_limited(
        limited: ServerProcess, unbound: tuple[str, int]) -> None:
    host, port = unbound
    names = [f"missing-{i}.example.com." for i in range(40)]  # NXDOMAIN: one account
    rcodes = []
    for name in names:
        query = dns.message.make_query(name, "A")
        reply = dns.query.udp(query, host, port=port, timeout=10)
        rcodes.append(reply.rcode())
    assert rcodes == [dns.rcode.NXDOMAIN] * len(names)
    reply = dns.query.udp(dns.message.make_query("www.example.com.", "A"), host, port=port,
                          timeout=10)
    assert reply.answer
    actions = rrl_actions(limited)
    assert actions["slip"] + actions["drop"] > 0  # the limiter did act on unbound
