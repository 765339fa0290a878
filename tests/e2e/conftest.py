"""End-to-end fixtures: the real `geostream-dns serve` as a subprocess, and DNS clients.

How this works: `launch()` copies the sample zones (plus a small test zone with
oversized TXT sets) into a temporary folder, picks free ports, starts the CLI
with stderr going to a log file and waits until it is ready: `GET /ready` when
the HTTP endpoint is on, else until the UDP port answers a query (at most
`READY_TIMEOUT` seconds). `Server.stop()` sends SIGTERM to that one PID and
reports the exit code and how long the process took to go; every fixture
asserts exit code 0 within `STOP_TIMEOUT` seconds at teardown.

The clients (`udp_exchange`, `tcp_exchange`, ...) use plain sockets so tests
see the exact bytes the server sent; every UDP reply is checked against the
SPEC §6 size limit and every reply for RA=0 and a matching ID.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import dns.flags
import dns.message
import dns.rdatatype
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin" / "geostream-dns"
SAMPLE_ZONES = ROOT / "zones"
HTTP_MODULE = ROOT / "geostream_dns" / "api" / "http.py"

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
QUERY_TIMEOUT = 2.0
MAX_UDP = 1232
MIN_UDP = 512

# A test zone beside the samples: TXT sets too big for 512 and for 1232 bytes.
E2E_ZONE = "e2e.test."
BIG_TXT = [f"{i:02d}" + chr(ord("a") + i % 26) * 98 for i in range(30)]  # 30 x 100 chars
MEDIUM_TXT = [f"{i:02d}" + chr(ord("A") + i) * 98 for i in range(8)]  # ~1 KB in all


def _yaml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


E2E_ZONE_YAML = f"""\
zone: {E2E_ZONE}
ttl: 120
soa:
  primary: ns1.e2e.test.
  email: hostmaster@e2e.test
  refresh: 7200
  retry: 900
  expire: 1209600
  negative_ttl: 600             # above the zone TTL: negative answers use 120
nameservers: [ns1.e2e.test.]
records:
  ns1: {{type: A, value: 192.0.2.1}}
  big: {{type: TXT, values: {_yaml_list(BIG_TXT)}}}
  medium: {{type: TXT, values: {_yaml_list(MEDIUM_TXT)}}}
"""


# -- ports -------------------------------------------------------------------


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """A port free for both UDP and TCP on `host` (bounded number of attempts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    avoid = avoid or set()
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            if port in avoid:
                continue
            with socket.socket(family, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError(f"no free port on {host}")


def format_listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the server process ----------------------------------------------------------


@dataclass
class Server:
    host: str
    port: int
    zones_dir: pathlib.Path
    process: subprocess.Popen[bytes]
    listens: list[tuple[str, int]]
    http_port: int | None
    log_path: pathlib.Path
    exit_code: int | None = None
    stop_seconds: float | None = None
    idle_watch: IdleWatch | None = None
    killed: bool = False  # True when SIGTERM was not enough
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as (host, port, zones_dir, process)."""
        return iter((self.host, self.port, self.zones_dir, self.process))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in self.log().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> tuple[int | None, float]:
        """SIGTERM this PID; return (exit code, seconds to exit).

        The code is None when the process ignored SIGTERM for `timeout` seconds
        and had to be killed. Calling it again returns the first result.
        """
        if self.stop_seconds is None:
            started = time.monotonic()
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.killed = True
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=5)
            self.stop_seconds = time.monotonic() - started
            self.exit_code = None if self.killed else self.process.returncode
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        return self.exit_code, self.stop_seconds


class IdleWatch:
    """A TCP connection opened and left idle; a thread notes when the server closes it.

    Opened when the shared server starts, so checking the 10 s default idle
    timeout costs the test run little extra time.
    """

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


def prepare_zones(base: pathlib.Path) -> pathlib.Path:
    zones = base / "zones"
    shutil.copytree(SAMPLE_ZONES, zones)
    (zones / "e2e.test.yaml").write_text(E2E_ZONE_YAML)
    return zones


def http_available() -> bool:
    return HTTP_MODULE.exists()


def launch(base: pathlib.Path, *, listens: list[tuple[str, int]] | None = None,
           zones_dir: pathlib.Path | None = None, http: bool | None = None,
           extra: list[str] | None = None, env: dict[str, str] | None = None) -> Server:
    """Start `geostream-dns serve` and wait until it is ready (or fail); `env` adds
    variables (the inherited GEOSTREAM_*, DATABASE_URL and REDIS_URL are dropped)."""
    base.mkdir(parents=True, exist_ok=True)
    if zones_dir is None:
        zones_dir = prepare_zones(base)
    if listens is None:
        listens = [("127.0.0.1", free_port())]
    if http is None:
        http = http_available()
    http_port = free_port(avoid={p for _, p in listens}) if http else None
    state_dir = base / "state"
    log_path = base / "server.log"
    cmd = [str(BIN), "serve", "--zones", str(zones_dir), "--state-dir", str(state_dir),
           "--geoip", str(test_geoip())]
    for host, port in listens:
        cmd += ["--listen", format_listen(host, port)]
    cmd += ["--http", f"127.0.0.1:{http_port}" if http_port else "off"]
    cmd += extra or []
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("GEOSTREAM_")}
    environment.update(env or {})
    log_file = log_path.open("wb")
    process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=environment,
                               cwd=base, stdin=subprocess.DEVNULL)
    host, port = listens[0]
    server = Server(host, port, zones_dir, process, listens, http_port, log_path,
                    _log_file=log_file)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    probe = dns.message.make_query("ns1.example.com", "A")
    while time.monotonic() < deadline:
        if not server.alive():
            raise AssertionError(f"server exited early ({server.process.returncode}):\n"
                                 f"{server.log()}")
        if server.http_port is not None:
            if _http_status(server.http_port, "/ready") == 200:
                # /ready promises "loaded and answering": hold it to that.
                reply = _try_udp(probe, server.host, server.port, 1.0)
                assert reply is not None, "/ready said 200 but the UDP port does not answer"
                return
        elif _try_udp(probe, server.host, server.port, 0.2) is not None:
            return
        time.sleep(0.05)
    raise AssertionError(f"server not ready within {READY_TIMEOUT} s:\n{server.log()}")


def _http_status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _try_udp(query: dns.message.Message, host: str, port: int,
             timeout: float) -> bytes | None:
    try:
        return udp_raw(query.to_wire(), host, port, timeout)
    except OSError:
        return None


def finish(server: Server) -> None:
    """Teardown: SIGTERM, then exit code 0 within STOP_TIMEOUT seconds."""
    code, seconds = server.stop()
    assert code is not None, f"server ignored SIGTERM for {STOP_TIMEOUT} s (killed)"
    assert code == 0, f"server exited with {code}:\n{server.log()[-4000:]}"
    assert seconds < STOP_TIMEOUT


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared read-only server: two IPv4 listeners and one on [::1]."""
    base = tmp_path_factory.mktemp("shared")
    p1 = free_port()
    p2 = free_port(avoid={p1})
    p6 = free_port("::1", avoid={p1, p2})
    srv = launch(base, listens=[("127.0.0.1", p1), ("127.0.0.1", p2), ("::1", p6)])
    srv.idle_watch = IdleWatch(srv.host, srv.port)
    yield srv
    srv.idle_watch.close()
    finish(srv)


_GEOIP: list[pathlib.Path] = []


def test_geoip() -> pathlib.Path:
    """The deterministic GeoIP database of tests/core (never the bundled GeoLite2)."""
    if not _GEOIP:
        from tests.core.conftest import CITY, write_mmdb

        folder = pathlib.Path(tempfile.mkdtemp(prefix="geostream-e2e-geoip-"))
        _GEOIP.append(write_mmdb(folder / "city.mmdb", CITY))
    return _GEOIP[0]


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator[Callable[..., Server]]:
    """A factory for private servers (tests that mutate zones or change options)."""
    started: list[Server] = []

    def _start(**kwargs: Any) -> Server:
        srv = launch(tmp_path / f"srv{len(started)}", **kwargs)
        started.append(srv)
        return srv

    yield _start
    for srv in started:
        finish(srv)


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
    """One query over UDP; asserts the SPEC §6 size limit on the reply."""
    wire = udp_raw(query.to_wire(), host, port, timeout)
    limit = udp_limit(query)
    assert len(wire) <= limit, f"UDP reply of {len(wire)} bytes exceeds {limit}"
    return check_reply(query, wire), wire


def udp(srv: Server, name: str, rdtype: str = "A", **kwargs: object) -> dns.message.Message:
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


def tcp(srv: Server, name: str, rdtype: str = "A", **kwargs: object) -> dns.message.Message:
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

