"""Query counters in plain integers, read by the Prometheus collector.

Counting must not cost the hot path: transports bump dictionary entries and a
histogram list; `adapters.metrics` turns them into metric families only when
`/metrics` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds (seconds) of the answer-latency histogram buckets.
LATENCY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                   0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_BOUNDS_NS = tuple(int(b * 1e9) for b in LATENCY_BUCKETS)

TRANSPORTS = ("udp", "tcp")


class QueryStats:
    """Counts per (transport, qtype, rcode) and a latency histogram.

    `counts[transport]` maps ``qtype << 8 | (rcode & 0xFF)`` to a count; rcode
    -1 (a dropped packet) is stored as 0xFF.
    """

    __slots__ = ("counts", "latency_buckets", "latency_sum_ns", "errors",
                 "tcp_connections", "tcp_idle_closed")

    def __init__(self) -> None:
        self.counts: dict[str, dict[int, int]] = {t: {} for t in TRANSPORTS}
        self.latency_buckets = [0] * (len(_BOUNDS_NS) + 1)
        self.latency_sum_ns = 0
        self.errors = 0
        self.tcp_connections = 0
        self.tcp_idle_closed = 0

    def record(self, counts: dict[int, int], qtype: int, rcode: int, elapsed_ns: int) -> None:
        """Count one answered (or dropped) query in a transport's `counts`.
        (The UDP transport inlines this: it is its per-query cost.)"""
        self.latency_buckets[bisect_left(_BOUNDS_NS, elapsed_ns)] += 1
        self.latency_sum_ns += elapsed_ns
        key = qtype << 8 | (rcode & 0xFF)
        counts[key] = counts.get(key, 0) + 1
