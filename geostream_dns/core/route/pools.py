"""Pools compiled for the query path: values, fallback chains, answer modes.

A `CompiledPool` holds its values with everything health needs already
resolved (the health key, the check, the region), and its fallback chain as a
tuple of pools, each once, so walking it never loops. Which of a pool's
values are healthy is derived per health view by `RouteContext.pool_health`
and kept as a `PoolHealth`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import dns.rdata

from geostream_dns.core.health import HealthKey
from geostream_dns.core.model import HealthCheck, Pool, Zone

MULTIVALUE_MAX = 8  # records a multivalue answer carries at most


class Value:
    """One value of a pool."""

    __slots__ = ("rdata", "text", "weight", "status", "health_key", "check", "region")

    def __init__(self, rdata: dns.rdata.Rdata, weight: int, status: str,
                 health_key: HealthKey | None, check: HealthCheck | None,
                 region: str | None) -> None:
        self.rdata = rdata
        self.text = rdata.to_text()
        self.weight = weight
        self.status = status
        self.health_key = health_key
        self.check = check
        self.region = region


class CompiledPool:
    __slots__ = ("name", "region", "lat", "lon", "answer", "values", "fallback", "chain")

    def __init__(self, spec: Pool, zone: Zone) -> None:
        self.name = spec.name
        self.region = spec.region
        region = zone.regions.get(spec.region) if spec.region else None
        self.lat = region.lat if region else None
        self.lon = region.lon if region else None
        self.answer = spec.answer
        self.values = tuple(
            Value(v.rdata, v.weight, v.status,
                  (zone.origin, v.healthcheck, v.rdata.to_text()) if v.healthcheck else None,
                  zone.healthchecks[v.healthcheck] if v.healthcheck else None,
                  spec.region)
            for v in spec.values)
        self.fallback: CompiledPool | None = None
        self.chain: tuple[CompiledPool, ...] = (self,)

    @property
    def has_coordinates(self) -> bool:
        return self.lat is not None and self.lon is not None


def compile_pools(pools: dict[str, Pool], zone: Zone) -> dict[str, CompiledPool]:
    """The pools of a routing block, fallbacks resolved into chains."""
    compiled = {name: CompiledPool(spec, zone) for name, spec in pools.items()}
    for name, spec in pools.items():
        if spec.fallback:
            compiled[name].fallback = compiled[spec.fallback]
    for pool in compiled.values():
        chain: list[CompiledPool] = []
        p: CompiledPool | None = pool
        while p is not None and p not in chain:  # a pool already tried ends the chain
            chain.append(p)
            p = p.fallback
        pool.chain = tuple(chain)
    return compiled


class PoolHealth(NamedTuple):
    """A pool's healthy values under one health view, and what derives from them."""

    up: tuple[Value, ...]  # healthy values, in written order
    cumulative: tuple[int, ...]  # running weight sums, for weighted picks
    rdatas: tuple[dns.rdata.Rdata, ...]  # the healthy values' records
    key: tuple[Any, ...]  # identifies an `all` or `multivalue` answer of these values
