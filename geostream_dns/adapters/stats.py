"""Query counters in plain integers, read by the Prometheus collector.

Counting must not cost the hot path: a transport bumps one dictionary entry
keyed by the query's `Outcome` object (outcomes are interned, so that is an
identity hash) and one histogram bucket. `fold` turns those per-object
counts into counts per outcome *value*; the App folds on every watcher tick
(so the per-object table stays small however many worlds come and go) and
`adapters.metrics` reads the folded counts only when `/metrics` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left

from geostream_dns.core.outcome import Outcome

# Upper bounds (seconds) of the answer-latency histogram buckets.
LATENCY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                   0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BOUNDS_NS = tuple(int(b * 1e9) for b in LATENCY_BUCKETS)

TRANSPORTS = ("udp", "tcp")

OutcomeValues = tuple[object, ...]  # Outcome.values()


class QueryStats:
    """Counts per (transport, outcome) and an answer-latency histogram."""

    __slots__ = ("counts", "folded", "latency_buckets", "latency_sum_ns", "errors",
                 "tcp_connections", "tcp_idle_closed")

    def __init__(self) -> None:
        # transport -> outcome object -> queries since the last fold
        self.counts: dict[str, dict[Outcome, int]] = {t: {} for t in TRANSPORTS}
        # (transport, outcome values) -> queries, all time
        self.folded: dict[tuple[str, OutcomeValues], int] = {}
        self.latency_buckets = [0] * (len(BOUNDS_NS) + 1)
        self.latency_sum_ns = 0
        self.errors = 0
        self.tcp_connections = 0
        self.tcp_idle_closed = 0

    def record(self, counts: dict[Outcome, int], outcome: Outcome, elapsed_ns: int) -> None:
        """Count one answered (or dropped) query in a transport's `counts`.
        (The UDP transport inlines this: it is its per-query cost.)"""
        self.latency_buckets[bisect_left(BOUNDS_NS, elapsed_ns)] += 1
        self.latency_sum_ns += elapsed_ns
        counts[outcome] = counts.get(outcome, 0) + 1

    def fold(self) -> dict[tuple[str, OutcomeValues], int]:
        """Move the per-object counts into the per-value totals; return the totals.
        Call on the event loop (the transports' thread)."""
        folded = self.folded
        for transport, counts in self.counts.items():
            if not counts:
                continue
            items = list(counts.items())
            counts.clear()  # the transports hold this very dict
            for outcome, count in items:
                key = (transport, outcome.values())
                folded[key] = folded.get(key, 0) + count
        return folded
