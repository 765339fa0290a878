"""The UDP transport: datagrams in, `resolve`, response-rate limiting, datagrams out.

With a `ResponseLimiter` (adapters/rrl.py), each reply is charged to its
client network's account before it is sent: a limited reply is dropped, or
replaced by a tiny truncated one (`core.resolve.limited_reply`) when it
slips. A query that held a valid server cookie is never limited.
"""

from __future__ import annotations

import asyncio
import socket
from bisect import bisect_left
from time import perf_counter_ns
from typing import Any

import structlog

from geostream_dns.adapters.rrl import ResponseLimiter
from geostream_dns.adapters.sockets import bind_socket
from geostream_dns.adapters.stats import BOUNDS_NS, SIZE_BUCKETS, QueryStats
from geostream_dns.core.resolve import limited_reply, resolve
from geostream_dns.core.rrl import SLIP
from geostream_dns.core.world import WorldRef

log = structlog.get_logger("geostream.udp")


class UdpServer(asyncio.DatagramProtocol):
    def __init__(self, worlds: WorldRef, stats: QueryStats,
                 limiter: ResponseLimiter | None = None) -> None:
        self.worlds = worlds
        self.stats = stats
        self.limiter = limiter
        self.counts = stats.counts["udp"]
        self.sizes = stats.size_buckets["udp"]
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        start = perf_counter_ns()
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

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for replies to vanished clients: nothing to do.
        pass


async def start_udp(worlds: WorldRef, stats: QueryStats, host: str, port: int,
                    reuse_port: bool = False,
                    limiter: ResponseLimiter | None = None) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: UdpServer(worlds, stats, limiter),
        sock=bind_socket(host, port, socket.SOCK_DGRAM, reuse_port)
    )
    return transport
