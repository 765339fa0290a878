"""What routing reads besides the client: health, and caches derived from it.

A `RouteContext` belongs to one world (one snapshot, one health view, one
latency view): it derives each pool's healthy values once per health view
and keeps them, and shares with the other worlds of its snapshot the
`nearest` orderings, which depend only on the client's coordinates. Both
caches are bounded. `latency` rules read the latency view it carries.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any

from geostream_dns.core.health import ALL_UP, HealthView
from geostream_dns.core.latency import NO_LATENCY, LatencyView
from geostream_dns.core.route.pools import CompiledPool, PoolHealth

ORDERING_MEMO_LIMIT = 50_000
POOL_HEALTH_LIMIT = 100_000


class RouteContext:
    __slots__ = ("health", "orderings", "latency", "candidates", "_pool_health")

    def __init__(self, health: HealthView = ALL_UP,
                 orderings: dict[Any, Any] | None = None,
                 latency: LatencyView = NO_LATENCY) -> None:
        self.health = health
        self.latency = latency
        # latency rule -> its pools with a healthy chain (depends on health alone)
        self.candidates: dict[Any, Any] = {}
        # (rule, lat, lon) -> pools nearest first; shared by the worlds of a snapshot
        self.orderings: dict[Any, Any] = orderings if orderings is not None else {}
        self._pool_health: dict[CompiledPool, PoolHealth] = {}

    def with_latency(self, latency: LatencyView) -> RouteContext:
        """The same health (and the pool health derived from it) with a new latency view."""
        ctx = RouteContext(self.health, self.orderings, latency)
        ctx._pool_health = self._pool_health
        ctx.candidates = self.candidates
        return ctx

    def pool_health(self, pool: CompiledPool) -> PoolHealth:
        """The pool's healthy values under this context's health view."""
        cached = self._pool_health.get(pool)
        if cached is None:
            health = self.health
            up = tuple(v for v in pool.values if health.is_up(v.health_key, v.status, v.region))
            cached = PoolHealth(up, tuple(accumulate(v.weight for v in up)),
                                tuple(v.rdata for v in up),
                                (pool.name, pool.answer, tuple(v.text for v in up)))
            if len(self._pool_health) >= POOL_HEALTH_LIMIT:
                self._pool_health.clear()
            self._pool_health[pool] = cached
        return cached

    def first_healthy(self, pool: CompiledPool) -> CompiledPool | None:
        """The first pool of `pool`'s fallback chain with a healthy value."""
        for p in pool.chain:
            if self.pool_health(p).up:
                return p
        return None

    def remember_ordering(self, key: Any, ordering: Any) -> None:
        if len(self.orderings) >= ORDERING_MEMO_LIMIT:
            self.orderings.clear()
        self.orderings[key] = ordering
