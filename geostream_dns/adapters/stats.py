"""Query counters in plain integers, read by the Prometheus collector.

Counting must not cost the hot path: a transport bumps one dictionary entry
keyed by the query's `Outcome` object (outcomes are interned, so that is an
identity hash), a latency bucket and a response-size bucket. `fold` turns
the per-object counts into counts per outcome *value*; the App folds on every
watcher tick (so the per-object table stays small however many worlds come
and go) and `adapters.metrics` reads the folded counts only when `/metrics` is
scraped.

With `--workers N` every worker counts its own queries; the workers other
than 0 write their totals (`to_json`) to the state dir's `run/` folder every
second, and worker 0, which serves `/metrics`, adds them up (`StatsFiles`), so
every figure is the whole server's.
"""

from __future__ import annotations

import json
import os
import pathlib
from bisect import bisect_left
from typing import Any

from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.core.outcome import Outcome

# Upper bounds (seconds) of the answer-latency histogram buckets.
LATENCY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                   0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BOUNDS_NS = tuple(int(b * 1e9) for b in LATENCY_BUCKETS)

TRANSPORTS = ("udp", "tcp")
FAMILIES = ("ipv4", "ipv6")

# Upper bounds (bytes) of the response-size histogram buckets.
SIZE_BUCKETS = (64, 128, 256, 512, 1024, 1232, 4096, 16384, 65535)

OutcomeValues = tuple[object, ...]  # Outcome.values()


class QueryStats:
    """Counts per (transport, outcome) and an answer-latency histogram."""

    __slots__ = ("counts", "folded", "latency_buckets", "latency_sum_ns", "errors",
                 "tcp_connections", "tcp_idle_closed", "tcp_refused_total",
                 "tcp_refused_per_client", "size_buckets", "size_sum", "truncated",
                 "unsent", "extra", "listeners", "family_extra")

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
        self.tcp_refused_total = 0  # cut at once: --tcp-max-connections reached
        self.tcp_refused_per_client = 0  # cut at once: --tcp-max-per-client reached
        # transport -> per-bucket counts of response sizes, their sum, TC=1 replies
        self.size_buckets = {t: [0] * (len(SIZE_BUCKETS) + 1) for t in TRANSPORTS}
        self.size_sum = {t: 0 for t in TRANSPORTS}
        self.truncated = 0
        self.unsent = 0  # UDP replies the kernel did not send (buffer full, or refused)
        # other counters kept elsewhere in this process (GeoIP memo, answer cache):
        # name -> value, filled in by the App before it shares its totals
        self.extra: dict[str, int] = {}
        # the transports' listeners, each counting the queries it received in its
        # own `received` (one socket, one address family), and other workers' totals
        self.listeners: list[Any] = []
        self.family_extra: dict[tuple[str, str], int] = {}

    def record(self, counts: dict[Outcome, int], outcome: Outcome, elapsed_ns: int,
               transport: str, size: int) -> None:
        """Count one answered (or dropped, size 0) query in a transport's `counts`.
        (The UDP transport inlines this: it is its per-query cost.)"""
        self.latency_buckets[bisect_left(BOUNDS_NS, elapsed_ns)] += 1
        self.latency_sum_ns += elapsed_ns
        counts[outcome] = counts.get(outcome, 0) + 1
        if size:
            self.size_buckets[transport][bisect_left(SIZE_BUCKETS, size)] += 1
            self.size_sum[transport] += size

    def families(self) -> dict[tuple[str, str], int]:
        """Queries received by (transport, address family)."""
        out = {(t, f): 0 for t in TRANSPORTS for f in FAMILIES}
        for listener in self.listeners:
            out[(listener.transport_name, listener.family)] += listener.received
        for key, count in self.family_extra.items():
            out[key] = out.get(key, 0) + count
        return out

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

    # -- the whole server (--workers) --------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """This process's totals, folded, as JSON data."""
        return {"folded": [[t, list(v), n] for (t, v), n in self.fold().items()],
                "latency_buckets": self.latency_buckets, "latency_sum_ns": self.latency_sum_ns,
                "errors": self.errors, "tcp_connections": self.tcp_connections,
                "tcp_idle_closed": self.tcp_idle_closed,
                "tcp_refused_total": self.tcp_refused_total,
                "tcp_refused_per_client": self.tcp_refused_per_client,
                "size_buckets": self.size_buckets,
                "size_sum": self.size_sum, "truncated": self.truncated, "unsent": self.unsent,
                "extra": self.extra,
                "families": [[t, f, n] for (t, f), n in self.families().items()]}

    def merged(self, others: list[dict[str, Any]]) -> QueryStats:
        """A copy of these totals with other workers' added."""
        total = QueryStats()
        total.folded = dict(self.fold())
        total.latency_buckets = list(self.latency_buckets)
        total.latency_sum_ns = self.latency_sum_ns
        total.errors, total.truncated, total.unsent = self.errors, self.truncated, self.unsent
        total.tcp_connections, total.tcp_idle_closed = self.tcp_connections, self.tcp_idle_closed
        total.tcp_refused_total = self.tcp_refused_total
        total.tcp_refused_per_client = self.tcp_refused_per_client
        total.size_buckets = {t: list(b) for t, b in self.size_buckets.items()}
        total.size_sum = dict(self.size_sum)
        total.extra = dict(self.extra)
        total.family_extra = self.families()
        for other in others:
            try:
                for transport, values, count in other["folded"]:
                    key = (str(transport), tuple(values))
                    total.folded[key] = total.folded.get(key, 0) + int(count)
                for i, n in enumerate(other["latency_buckets"][:len(total.latency_buckets)]):
                    total.latency_buckets[i] += int(n)
                total.latency_sum_ns += int(other["latency_sum_ns"])
                total.errors += int(other["errors"])
                total.truncated += int(other["truncated"])
                total.unsent += int(other.get("unsent", 0))
                total.tcp_connections += int(other["tcp_connections"])
                total.tcp_idle_closed += int(other["tcp_idle_closed"])
                total.tcp_refused_total += int(other.get("tcp_refused_total", 0))
                total.tcp_refused_per_client += int(other.get("tcp_refused_per_client", 0))
                for transport in TRANSPORTS:
                    buckets = other["size_buckets"][transport]
                    for i, n in enumerate(buckets[:len(total.size_buckets[transport])]):
                        total.size_buckets[transport][i] += int(n)
                    total.size_sum[transport] += int(other["size_sum"][transport])
                for name, value in other["extra"].items():
                    total.extra[name] = total.extra.get(name, 0) + int(value)
                for transport, family, count in other.get("families", []):
                    where = (str(transport), str(family))
                    total.family_extra[where] = total.family_extra.get(where, 0) + int(count)
            except (KeyError, TypeError, ValueError):
                continue  # a file being replaced, or not ours
        return total


class StatsFiles:
    """Where the workers of one server share their totals: `<run>/stats-<leader>-<n>.json`."""

    def __init__(self, run_dir: pathlib.Path, leader: int) -> None:
        self.run_dir = run_dir
        self.leader = leader

    def write(self, worker: int, stats: QueryStats) -> None:
        path = self.run_dir / f"stats-{self.leader}-{worker}.json"
        atomic_write_text(path, json.dumps(stats.to_json()), durable=False)

    def read_others(self) -> list[dict[str, Any]]:
        """The totals the other workers wrote (worker 0 reads them)."""
        out: list[dict[str, Any]] = []
        try:
            names = os.listdir(self.run_dir)
        except FileNotFoundError:
            return out
        for name in names:
            if name.startswith(f"stats-{self.leader}-") and not name.endswith("-0.json"):
                try:
                    out.append(json.loads((self.run_dir / name).read_text()))
                except (OSError, ValueError):
                    continue
        return out
