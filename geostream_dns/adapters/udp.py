"""The UDP transport: datagrams in, `resolve`, datagrams out."""

from __future__ import annotations

import asyncio
import os
import socket
from bisect import bisect_left
from time import perf_counter_ns
from typing import Any

import structlog

from geostream_dns.adapters.query_log import QueryLog
from geostream_dns.adapters.rrl import ResponseLimiter
from geostream_dns.adapters.sockets import bind_socket
from geostream_dns.adapters.stats import BOUNDS_NS, SIZE_BUCKETS, QueryStats
from geostream_dns.core.resolve import limited_reply, resolve
from geostream_dns.core.rrl import SLIP
from geostream_dns.core.world import WorldRef

try:  # recvmmsg/sendmmsg (geostream_dns/_udpbatch.c); optional, built where it can be
    from geostream_dns._udpbatch import BATCH
    from geostream_dns._udpbatch import recv as batch_recv
    from geostream_dns._udpbatch import send as batch_send
except ImportError:  # pragma: no cover - a build without a C compiler
    BATCH, batch_recv, batch_send = 0, None, None

log = structlog.get_logger("geostream.udp")

ROUNDS = 8  # batches read per wake-up at most (8 x 32 datagrams)


class UdpServer(asyncio.DatagramProtocol):
    transport_name = "udp"

    def __init__(self, worlds: WorldRef, stats: QueryStats,
                 query_log: QueryLog | None = None, family: str = "ipv4",
                 limiter: ResponseLimiter | None = None) -> None:
        self.worlds = worlds
        self.stats = stats
        self.limiter = limiter
        self.query_log = query_log
        self.family = family  # of the one socket this serves
        self.received = 0
        stats.listeners.append(self)
        self.counts = stats.counts["udp"]
        self.sizes = stats.size_buckets["udp"]
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """One datagram from the event loop's own transport (without `_udpbatch`)."""
        response = self.answer(data, addr[0])
        if response is not None:
            self.transport.sendto(response, addr)  # type: ignore[union-attr]

    def readable(self, fd: int) -> None:
        """The socket has datagrams: read them a batch at a time, answer each, send
        the replies of a batch with one call. At most `ROUNDS` batches, so the
        loop's other work (TCP, HTTP, timers) gets its turn under a flood."""
        answer = self.answer
        for _ in range(ROUNDS):
            try:
                batch = batch_recv(fd)
            except Exception as exc:  # noqa: BLE001 - the socket, not one query
                log.warning("udp.receive_failed", error=str(exc))
                return
            replies = []
            for data, host, address in batch:
                try:
                    response = answer(data, host)
                except Exception:  # noqa: BLE001 - one query must not cost the batch
                    self.stats.errors += 1
                    log.exception("query.failed", transport="udp")
                    continue
                if response is not None:
                    replies.append((response, address))
            if replies:
                sent, _refused = batch_send(fd, replies)
                if sent < len(replies):  # refused for their address, or the buffer full
                    self.stats.unsent += len(replies) - sent
            if len(batch) < BATCH:
                return

    def answer(self, data: bytes, host: str) -> bytes | None:
        """The reply to one query from `host` (None: no reply), counted and logged."""
        start = perf_counter_ns()
        self.received += 1
        try:
            response, outcome = resolve(data, host, self.worlds.world)
            limiter = self.limiter
            if limiter is not None and response is not None and not outcome.cookie:
                action = limiter.check(data, host, outcome)
                if action:
                    if action == SLIP:
                        limiter.slips += 1
                        response = limited_reply(data, host, self.worlds.world)
                    else:
                        limiter.drops += 1
                        response = None
        except Exception:  # noqa: BLE001 - a bad packet must never stop the server
            self.stats.errors += 1
            log.exception("query.failed", transport="udp")
            return None
        stats = self.stats
        if response is not None:
            size = len(response)
            self.sizes[bisect_left(SIZE_BUCKETS, size)] += 1
            stats.size_sum["udp"] += size
            if response[2] & 0x02:  # TC=1: the client retries over TCP
                stats.truncated += 1
        # QueryStats.record, inlined: a method call here costs every query.
        elapsed = perf_counter_ns() - start
        stats.latency_buckets[bisect_left(BOUNDS_NS, elapsed)] += 1
        stats.latency_sum_ns += elapsed
        counts = self.counts
        counts[outcome] = counts.get(outcome, 0) + 1
        query_log = self.query_log
        if query_log is not None:
            query_log.countdown -= 1
            if not query_log.countdown:
                query_log.offer("udp", data, host, outcome, elapsed)
        return response

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for replies to vanished clients: nothing to do.
        pass


class BatchTransport:
    """What `start_udp` returns when datagrams go in and out in batches: the loop
    watches the socket (`add_reader`) and `UdpServer.readable` does the rest."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 server: UdpServer) -> None:
        self.loop = loop
        self.sock = sock
        self.server = server
        loop.add_reader(sock.fileno(), server.readable, sock.fileno())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self.sock.getsockname()
        if name == "socket":
            return self.sock
        return default

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


def batched() -> bool:
    """Whether UDP goes in batches: the extension is built and not switched off
    (GEOSTREAM_UDP_BATCH=0 uses the event loop's own datagram transport)."""
    return batch_recv is not None and os.environ.get("GEOSTREAM_UDP_BATCH", "1") != "0"


async def start_udp(worlds: WorldRef, stats: QueryStats, host: str, port: int,
                    reuse_port: bool = False, *, sock: socket.socket | None = None,
                    query_log: QueryLog | None = None,
                    limiter: ResponseLimiter | None = None
                    ) -> asyncio.DatagramTransport | BatchTransport:
    """Answer on host:port, or on `sock` when it is already bound (`serve --user`)."""
    loop = asyncio.get_running_loop()
    if sock is None:
        sock = bind_socket(host, port, socket.SOCK_DGRAM, reuse_port)
    family = "ipv6" if sock.family == socket.AF_INET6 else "ipv4"
    server = UdpServer(worlds, stats, query_log, family, limiter)
    if batched():
        return BatchTransport(loop, sock, server)
    transport, _ = await loop.create_datagram_endpoint(lambda: server, sock=sock)
    return transport
