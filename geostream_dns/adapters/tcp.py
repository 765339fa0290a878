"""The TCP transport (RFC 7766): length-prefixed messages, pipelined, idle timeout.

How this works: each connection buffers bytes until a whole 2-byte-length
framed message is there, resolves it at once and writes the reply, so several
queries on one connection are answered in order without waiting for each
other. A connection that completes no message for `idle_timeout` seconds is
cut: idle, sending a message slowly or half-way, or not reading its answers
(no message is answered while the peer leaves our replies unread) all look
the same to the timer, which runs once per connection and re-arms itself
rather than being reset on every read. The cut is `transport.abort()`:
`close()` would first wait to flush replies a peer that never reads never
takes. When the peer stops reading, reading pauses too (asyncio flow
control), so a client that never reads cannot grow our buffers either.
Connections beyond `max_connections` in all, or beyond `max_per_client`
from one client address, are cut at once (a reset, nothing read).
"""

from __future__ import annotations

import asyncio
import socket
from time import perf_counter_ns
from typing import Any

import structlog

from geostream_dns.adapters.query_log import QueryLog
from geostream_dns.adapters.sockets import bind_socket
from geostream_dns.adapters.stats import QueryStats
from geostream_dns.core.resolve import resolve, server_failure
from geostream_dns.core.world import WorldRef

log = structlog.get_logger("geostream.tcp")

DEFAULT_IDLE_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024
MAX_PER_CLIENT = 64


class TcpConnection(asyncio.Protocol):
    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.last_activity = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False  # the peer is not reading our replies

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        peer = transport.get_extra_info("peername")
        address = peer[0] if peer else ""
        per_client = server.per_client.get(address, 0)
        if len(server.connections) >= server.max_connections:
            server.stats.tcp_refused_total += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        if per_client >= server.max_per_client:
            server.stats.tcp_refused_per_client += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        server.connections.add(self)
        server.per_client[address] = per_client + 1
        server.stats.tcp_connections += 1
        self.peer = address
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        self.timer = loop.call_later(server.idle_timeout, self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        if self in server.connections:
            server.connections.discard(self)
            left = server.per_client.get(self.peer, 1) - 1
            if left > 0:
                server.per_client[self.peer] = left
            else:
                server.per_client.pop(self.peer, None)
        if self.timer is not None:
            self.timer.cancel()

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self.last_activity
        if idle_for >= self.server.idle_timeout:
            self.server.stats.tcp_idle_closed += 1
            if self.transport is not None:
                self.transport.abort()  # close() would wait for a peer that may never read
            return
        self.timer = loop.call_later(self.server.idle_timeout - idle_for, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._answer_buffered()

    def _answer_buffered(self) -> None:
        buf = self.buffer
        server = self.server
        while len(buf) >= 2 and not self.paused:
            length = buf[0] << 8 | buf[1]
            if len(buf) < 2 + length:
                break
            message = bytes(buf[2:2 + length])
            del buf[:2 + length]
            server.received += 1
            self.last_activity = asyncio.get_running_loop().time()
            start = perf_counter_ns()
            try:
                response, outcome = resolve(message, self.peer, server.worlds.world, True)
            except Exception:  # noqa: BLE001 - a bad message must never stop the server
                server.stats.errors += 1
                log.exception("query.failed", transport="tcp")
                self.transport.close()  # type: ignore[union-attr]
                return
            if response is None:
                # Unparseable header or QR=1: nothing sensible can follow on this stream.
                self.transport.close()  # type: ignore[union-attr]
                return
            if len(response) > 0xFFFF:  # cannot be framed: say so rather than hang up
                response = server_failure(message)
            self.transport.write(len(response).to_bytes(2, "big") + response)  # type: ignore[union-attr]
            elapsed = perf_counter_ns() - start
            server.stats.record(server.counts, outcome, elapsed, "tcp", len(response))
            query_log = server.query_log
            if query_log is not None:
                query_log.countdown -= 1
                if not query_log.countdown:
                    query_log.offer("tcp", message, self.peer, outcome, elapsed)

    def pause_writing(self) -> None:
        # Stop answering (and reading) until the peer drains our replies, so a
        # client that sends but never reads cannot grow our write buffer.
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._answer_buffered()


class TcpServer:
    transport_name = "tcp"

    def __init__(self, worlds: WorldRef, stats: QueryStats,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS,
                 max_per_client: int = MAX_PER_CLIENT,
                 query_log: QueryLog | None = None) -> None:
        self.worlds = worlds
        self.query_log = query_log
        self.family = "ipv4"  # of its listening socket: set by start_tcp
        self.received = 0
        self.stats = stats
        self.counts = stats.counts["tcp"]
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.connections: set[TcpConnection] = set()
        self.per_client: dict[str, int] = {}  # client address -> open connections

    def protocol(self) -> TcpConnection:
        return TcpConnection(self)


async def start_tcp(server: TcpServer, host: str, port: int, reuse_port: bool = False, *,
                    sock: socket.socket | None = None) -> Any:
    """Answer on host:port, or on `sock` when it is already bound (`serve --user`)."""
    loop = asyncio.get_running_loop()
    if sock is None:
        sock = bind_socket(host, port, socket.SOCK_STREAM, reuse_port)
    server.family = "ipv6" if sock.family == socket.AF_INET6 else "ipv4"
    server.stats.listeners.append(server)
    return await loop.create_server(server.protocol, sock=sock, backlog=1024)
