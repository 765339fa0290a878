"""End-to-end fixtures: the real `geostream-dns serve` (tests/support/harness.py)
on the sample zones, and DNS clients that see the exact bytes.

How this works: every e2e server runs on a copy of the sample zones plus a
small test zone with oversized TXT sets (`prepare_zones`), on the
deterministic test GeoIP database, and with `--no-probe`: the sample zones'
pool values are documentation addresses (192.0.2.0/24, ...), which nothing
the tests start may contact, so every value counts as up. `server` is the shared, read-only server
of the session: two IPv4 listeners and one on [::1]; `idle_watch` is a TCP
connection opened idle as it started, so checking the 10 s default idle
timeout costs little extra time. `start_server` gives a test private servers
(to edit zones or change options) with the same defaults. Every server is
stopped by its PID with SIGTERM and must exit 0 within `STOP_TIMEOUT`.

The clients (`udp_exchange`, `tcp_exchange`, ...) use plain sockets so tests
see the exact bytes the server sent; every UDP reply is checked against the
size limit (512 bytes without EDNS, else the client's payload size capped
at 1232) and every reply for RA=0 and a matching ID.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import pytest

from tests.support.harness import SAMPLE_ZONES, ServerProcess, StartServer, free_port, running
from tests.support.zones import zone_text

QUERY_TIMEOUT = 2.0
NO_PROBE = ["--no-probe"]  # every e2e server: see the module docstring
MAX_UDP = 1232
MIN_UDP = 512

# A test zone beside the samples: TXT sets too big for 512 and for 1232 bytes.
E2E_ZONE = "e2e.test."
BIG_TXT = [f"{i:02d}" + chr(ord("a") + i % 26) * 98 for i in range(30)]  # 30 x 100 chars
MEDIUM_TXT = [f"{i:02d}" + chr(ord("A") + i) * 98 for i in range(8)]  # ~1 KB in all


def _yaml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


# negative_ttl above the zone TTL: negative answers use 120
E2E_ZONE_YAML = zone_text(f"""\
big: {{type: TXT, values: {_yaml_list(BIG_TXT)}}}
medium: {{type: TXT, values: {_yaml_list(MEDIUM_TXT)}}}
""", E2E_ZONE, ttl=120, negative_ttl=600)


def prepare_zones(base: pathlib.Path) -> pathlib.Path:
    """`base`/zones: a copy of the sample zones plus the e2e test zone."""
    zones = base / "zones"
    shutil.copytree(SAMPLE_ZONES, zones)
    (zones / "e2e.test.yaml").write_text(E2E_ZONE_YAML)
    return zones


# -- servers -------------------------------------------------------------------------


class IdleWatch:
    """A TCP connection opened and left idle; a thread notes when the server closes it."""

    LIMIT = 20.0

    def __init__(self, host: str, port: int) -> None:
        self.sock = tcp_connect(host, port)
        self.opened = time.monotonic()
        self.closed_after: float | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        self.sock.settimeout(self.LIMIT)
        try:
            data = self.sock.recv(1)
            if data:
                self.error = f"unexpected bytes {data!r}"
        except TimeoutError:
            return
        except OSError:
            pass  # reset: closed too
        self.closed_after = time.monotonic() - self.opened

    def wait(self, timeout: float) -> float | None:
        self.thread.join(timeout)
        return self.closed_after

    def close(self) -> None:
        self.sock.close()


@dataclass
class Shared:
    server: ServerProcess
    idle_watch: IdleWatch


@pytest.fixture(scope="session")
def shared(tmp_path_factory: pytest.TempPathFactory, city_mmdb: pathlib.Path) -> Iterator[Shared]:
    base = tmp_path_factory.mktemp("shared")
    p1 = free_port()
    p2 = free_port(avoid={p1})
    p6 = free_port("::1", avoid={p1, p2})
    with running(base, zones=prepare_zones(base), geoip=city_mmdb, args=NO_PROBE,
                 listens=[("127.0.0.1", p1), ("127.0.0.1", p2), ("::1", p6)]) as srv:
        watch = IdleWatch(srv.host, srv.port)
        try:
            yield Shared(srv, watch)
        finally:
            watch.close()


@pytest.fixture(scope="session")
def server(shared: Shared) -> ServerProcess:
    """The shared read-only server: two IPv4 listeners and one on [::1]."""
    return shared.server


@pytest.fixture(scope="session")
def idle_watch(shared: Shared) -> IdleWatch:
    """An idle TCP connection to `server`, opened when it started."""
    return shared.idle_watch


@pytest.fixture
def start_server(start_server: StartServer, city_mmdb: pathlib.Path,
                 tmp_path: pathlib.Path) -> StartServer:
    """Private servers with the e2e defaults: `zones` defaults to a fresh
    `prepare_zones()` copy; the other options are `ServerProcess.start`'s."""
    count = itertools.count()

    def _start(zones: pathlib.Path | None = None, args: Sequence[str] = (),
               **options: Any) -> ServerProcess:
        base = tmp_path / f"e2e{next(count)}"
        return start_server(base, zones=zones or prepare_zones(base), geoip=city_mmdb,
                            args=[*NO_PROBE, *args], **options)

    return _start


# -- clients -----------------------------------------------------------------------


def udp_raw(data: bytes, host: str, port: int, timeout: float = QUERY_TIMEOUT) -> bytes:
    """Send one datagram, return the first reply (socket.timeout when none)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.send(data)
        return sock.recv(65535)


def udp_silent(data: bytes, host: str, port: int, wait: float = 0.3) -> bool:
    """True when the server sends nothing back within `wait` seconds."""
    try:
        udp_raw(data, host, port, wait)
    except TimeoutError:
        return True
    return False


def udp_limit(query: dns.message.Message) -> int:
    if query.edns < 0:
        return MIN_UDP
    return min(max(query.payload, MIN_UDP), MAX_UDP)


def check_reply(query: dns.message.Message, wire: bytes) -> dns.message.Message:
    reply = dns.message.from_wire(wire)
    assert reply.id == query.id
    assert reply.flags & dns.flags.QR
    assert not reply.flags & dns.flags.RA, "RA must never be set"
    return reply


def udp_exchange(query: dns.message.Message, host: str, port: int,
                 timeout: float = QUERY_TIMEOUT) -> tuple[dns.message.Message, bytes]:
    """One query over UDP; asserts the size limit on the reply."""
    wire = udp_raw(query.to_wire(), host, port, timeout)
    limit = udp_limit(query)
    assert len(wire) <= limit, f"UDP reply of {len(wire)} bytes exceeds {limit}"
    return check_reply(query, wire), wire


def udp(srv: ServerProcess, name: str, rdtype: str = "A", **kwargs: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return udp_exchange(query, srv.host, srv.port)[0]


def tcp_connect(host: str, port: int, timeout: float = QUERY_TIMEOUT) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def recv_framed(sock: socket.socket) -> bytes:
    (length,) = struct.unpack("!H", recv_exact(sock, 2))
    return recv_exact(sock, length)


def frame(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def tcp_exchange(query: dns.message.Message, host: str, port: int,
                 timeout: float = QUERY_TIMEOUT) -> tuple[dns.message.Message, bytes]:
    with tcp_connect(host, port, timeout) as sock:
        sock.sendall(frame(query.to_wire()))
        wire = recv_framed(sock)
    return check_reply(query, wire), wire


def tcp(srv: ServerProcess, name: str, rdtype: str = "A", **kwargs: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return tcp_exchange(query, srv.host, srv.port)[0]


def rcode_of(wire: bytes) -> int:
    """The 4-bit header RCODE of a raw reply."""
    return wire[3] & 0x0F


def rdata_texts(msg: dns.message.Message, rdtype: str, section: str = "answer") -> set[str]:
    out: set[str] = set()
    for rrset in getattr(msg, section):
        if dns.rdatatype.to_text(rrset.rdtype) == rdtype:
            out |= {rd.to_text() for rd in rrset}
    return out

