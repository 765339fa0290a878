"""Real HTTP(S) endpoints on loopback addresses, for the health checks to probe.

How this works: `Farm` runs one asyncio event loop in a daemon thread and hosts
every test endpoint on it. An `Endpoint` is bound to one loopback address
(127.0.0.2, 127.0.0.3, ... are all loopback on Linux, and ::1) and a port the
test picks (`free_port(*hosts)` of tests/support/harness.py), optionally with
TLS from a self-signed certificate made with the `openssl` CLI. Its behaviour
is plain attributes a test may change at any time (status, body, delay,
silence, an oversized head, an endless body); every request it sees is
recorded (path, Host header, TLS SNI, time), so tests check what the prober
really sent. `stop()` closes the listener and aborts open connections, so
probes then get "connection refused"; `start()` binds the same address and
port again. The farm lives in the pytest process, so the same endpoints serve
in-process probers and a `geostream-dns serve` subprocess alike. Every wait
is bounded.

Run as a program, a farm of passing endpoints gets a process of its own:

    python -m tests.health.farm --cert C --key K --http PORT HOST... --https PORT HOST...

It prints "ready" once every endpoint listens and serves until stdin closes
(or SIGTERM). The loop-lag test uses it so that the endpoints' own work (TLS
handshakes, Python code holding the GIL) does not count as lag of the
prober's event loop, which is what that test measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import pathlib
import signal
import ssl
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

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


@dataclass(frozen=True)
class Cert:
    cert: pathlib.Path
    key: pathlib.Path

    def server_context(self) -> ssl.SSLContext:
        """A fresh server context (each endpoint records its own SNI)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


# -- a farm in a process of its own ----------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--http", nargs="+", default=[], metavar="PORT HOST")
    parser.add_argument("--https", nargs="+", default=[], metavar="PORT HOST")
    args = parser.parse_args()
    cert = Cert(pathlib.Path(args.cert), pathlib.Path(args.key))
    farm = Farm()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        if args.http:
            port = int(args.http[0])
            for host in args.http[1:]:
                farm.endpoint(host, port)
        if args.https:
            port = int(args.https[0])
            for host in args.https[1:]:
                farm.endpoint(host, port, tls=cert.server_context())
        print("ready", flush=True)

        def watch_stdin() -> None:
            sys.stdin.read()  # returns when the parent closes our stdin (or dies)
            done.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        done.wait(120.0)  # bounded even if the parent forgets us
    finally:
        farm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
