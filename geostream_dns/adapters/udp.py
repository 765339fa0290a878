"""The UDP transport: datagrams in, `resolve`, datagrams out."""

from __future__ import annotations

import asyncio
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

log = structlog.get_logger("geostream.udp")


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
        start = perf_counter_ns()
        self.received += 1
        try:
            response, outcome = resolve(data, addr[0], self.worlds.world)
            limiter = self.limiter
            if limiter is not None and response is not None and not outcome.cookie:
                action = limiter.check(data, addr[0], outcome)
                if action:
                    if action == SLIP:
                        limiter.slips += 1
                        response = limited_reply(data, addr[0], self.worlds.world)
                    else:
                        limiter.drops += 1
                        response = None
        except Exception:  # noqa: BLE001 - a bad packet must never stop the server
            self.stats.errors += 1
            log.exception("query.failed", transport="udp")
            return
        stats = self.stats
        if response is not None:
            self.transport.sendto(response, addr)  # type: ignore[union-attr]
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
                query_log.offer("udp", data, addr[0], outcome, elapsed)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for replies to vanished clients: nothing to do.
        pass


async def start_udp(worlds: WorldRef, stats: QueryStats, host: str, port: int,
                    reuse_port: bool = False, *, sock: socket.socket | None = None,
                    query_log: QueryLog | None = None,
                    limiter: ResponseLimiter | None = None) -> asyncio.DatagramTransport:
    """Answer on host:port, or on `sock` when it is already bound (`serve --user`)."""
    loop = asyncio.get_running_loop()
    if sock is None:
        sock = bind_socket(host, port, socket.SOCK_DGRAM, reuse_port)
    family = "ipv6" if sock.family == socket.AF_INET6 else "ipv4"
    transport, _ = await loop.create_datagram_endpoint(
        lambda: UdpServer(worlds, stats, query_log, family, limiter), sock=sock)
    return transport
