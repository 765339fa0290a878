"""Fixtures for the health tests: real HTTP(S) endpoints on loopback addresses.

How this works: `Farm` runs one asyncio event loop in a daemon thread and hosts
every test endpoint on it. An `Endpoint` is bound to one loopback address
(127.0.0.2, 127.0.0.3, ... are all loopback on Linux, and ::1) and a port the
test picks, optionally with TLS from a self-signed certificate made with the
`openssl` CLI. Its behaviour is plain attributes a test may change at any time
(status, body, delay, silence, an oversized head, an endless body); every
request it sees is recorded (path, Host header, TLS SNI, time), so tests check
what the prober really sent. `stop()` closes the listener and aborts open
connections, so probes then get "connection refused"; `start()` binds the
same address and port again. The farm lives in the pytest process, so the
same endpoints serve in-process probers and a `geostream-dns serve`
subprocess alike. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

CALL_TIMEOUT = 5.0
SILENT_LIMIT = 30.0  # a silent endpoint holds a connection at most this long
ENDLESS_LIMIT = 64 * 1024 * 1024  # bytes an endless body writes at most
CERT_HOST = "www.example.com"


@dataclass(frozen=True)
class Seen:
    """One request an endpoint received."""

    method: str
    path: str
    host: str | None  # the Host header
    sni: str | None  # the TLS server name (None: plain HTTP or no SNI sent)
    user_agent: str | None
    at: float  # time.monotonic()


class Farm:
    """One event loop in a daemon thread that hosts every endpoint."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="endpoint-farm",
                                       daemon=True)
        self.thread.start()
        self.endpoints: list[Endpoint] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def endpoint(self, host: str, port: int, *, tls: ssl.SSLContext | None = None,
                 start: bool = True) -> Endpoint:
        ep = Endpoint(self, host, port, tls)
        self.endpoints.append(ep)
        if start:
            ep.start()
        return ep

    def stop_all(self) -> None:
        for ep in self.endpoints:
            ep.stop()
        self.endpoints.clear()

    def close(self) -> None:
        self.stop_all()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CALL_TIMEOUT)


class Endpoint:
    """A controllable HTTP(S) endpoint on one address and port."""

    def __init__(self, farm: Farm, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self.farm = farm
        self.host = host
        self.port = port
        self.tls = tls
        # Behaviour, read per request.
        self.status = 200
        self.body = b"ok"
        self.delay = 0.0  # seconds before answering
        self.silent = False  # read the request, never answer
        self.head_padding = 0  # bytes of an extra header line
        self.endless = False  # stream body bytes until the client goes
        # Observations.
        self.requests: list[Seen] = []
        self.body_bytes_sent = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping: asyncio.Event | None = None
        self._snis: dict[int, str | None] = {}
        if tls is not None:
            tls.sni_callback = self._on_sni

    def __repr__(self) -> str:
        return f"Endpoint({self.host!r}, {self.port})"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        self.farm.call(self._start())

    def stop(self) -> None:
        if self._server is not None:
            self.farm.call(self._stop())

    def seen_since(self, t: float) -> list[Seen]:
        return [s for s in list(self.requests) if s.at >= t]

    def _on_sni(self, sslobj: Any, name: str | None, ctx: ssl.SSLContext) -> None:
        self._snis[id(sslobj)] = name

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self.tls, reuse_address=True,
            ssl_handshake_timeout=5.0 if self.tls else None)

    async def _stop(self) -> None:
        assert self._server is not None and self._stopping is not None
        self._server.close()
        self._stopping.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        stopping = self._stopping
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return  # a TCP check connects and closes; nothing to answer
            lines = head.decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            path = rest.rpartition(" ")[0]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            sslobj = writer.get_extra_info("ssl_object")
            sni = self._snis.pop(id(sslobj), None) if sslobj is not None else None
            self.requests.append(Seen(method, path, headers.get("host"), sni,
                                      headers.get("user-agent"), time.monotonic()))
            if self.silent and stopping is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), SILENT_LIMIT)
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            head_lines = [f"HTTP/1.1 {self.status} Test", "Content-Type: text/plain",
                          "Connection: close"]
            if self.head_padding:
                head_lines.append("X-Padding: " + "p" * self.head_padding)
            if not self.endless:
                head_lines.append(f"Content-Length: {len(self.body)}")
            writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode())
            if not self.endless:
                writer.write(self.body)
                self.body_bytes_sent += len(self.body)
                await writer.drain()
                return
            chunk = b"x" * 16384
            while self.body_bytes_sent < ENDLESS_LIMIT:
                writer.write(chunk)
                await writer.drain()
                self.body_bytes_sent += len(chunk)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture(scope="session")
def farm() -> Iterator[Farm]:
    f = Farm()
    yield f
    f.close()


@pytest.fixture
def endpoints(farm: Farm) -> Iterator[Farm]:
    """The farm; every endpoint a test creates is stopped when it ends."""
    yield farm
    farm.stop_all()


# -- addresses and ports ---------------------------------------------------------


def common_port(hosts: Sequence[str]) -> int:
    """A TCP port free on every one of `hosts` at once (bounded attempts)."""
    for _ in range(50):
        socks: list[socket.socket] = []
        try:
            first = _bound(hosts[0], 0)
            socks.append(first)
            port = first.getsockname()[1]
            for host in hosts[1:]:
                socks.append(_bound(host, port))
            return int(port)
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no port free on all of {hosts}")


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host`."""
    for _ in range(50):
        with _bound(host, 0) as t:
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind((host, port))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError(f"no free port on {host}")


def refused_port(host: str) -> int:
    """A port nothing listens on (bound and released at once)."""
    with _bound(host, 0) as s:
        return int(s.getsockname()[1])


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
    except OSError:
        s.close()
        raise
    return s


# -- TLS -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    cert: pathlib.Path
    key: pathlib.Path

    def server_context(self) -> ssl.SSLContext:
        """A fresh server context (each endpoint records its own SNI)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for www.example.com, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={CERT_HOST}", "-addext", f"subjectAltName=DNS:{CERT_HOST}",
         "-keyout", str(key_path), "-out", str(cert_path)],
        check=True, capture_output=True, timeout=30)
    return Cert(cert_path, key_path)


# -- waiting ---------------------------------------------------------------------------


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> float:
    """Poll `predicate` (a thread-side callable) until true; seconds waited, or fail."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(interval)
