"""A routed record compiled for the query path: rules, pools, fallbacks.

How this works: `Router` is built once per snapshot from a validated
`RecordSet`; every name is resolved into object references so the query path
cannot raise `KeyError`. `decide()` walks the rules in order (SPEC §4.2): a
`subnets` rule tests the client address, `geos` the GeoIP codes, `nearest`
orders its pools by great-circle distance plus bias and takes the first whose
fallback chain is healthy, a rule without a condition matches everyone. The
picked pool hands over down its fallback chain until a healthy pool answers
(a pool already tried ends the chain, so mutual fallbacks never loop). When
the whole chain is down the answer fails open (SPEC §4.4).

The answer mode of the answering pool turns its healthy values into the
decision: `weighted` picks one by weight, `all` takes every one, `multivalue`
takes up to eight, shuffled by the resolver per query. Derived pool health is
cached per `HealthView` generation, and `nearest` orderings per coordinate
pair, both bounded.

The ECS scope (SPEC §4.6) is the longest prefix any rule tried depended on:
the GeoIP network's prefix once a location-based rule ran, and for every
`subnets` rule tried, enough bits to keep the client's subnet wholly inside
or wholly outside each listed network; it never exceeds the source prefix.

`trace`, when a list is passed, receives human-readable steps for `explain`.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from itertools import accumulate
from typing import Any, NamedTuple

import dns.rdata

from geostream_dns.config.model import Pool, RecordSet, Rule, Zone
from geostream_dns.core.geo import Location
from geostream_dns.core.health import HealthKey, HealthView
from geostream_dns.core.route.distance import great_circle_km

MULTIVALUE_MAX = 8
NEAREST_MEMO_LIMIT = 50_000


class Decision(NamedTuple):
    key: tuple[Any, ...]  # identifies the rendered answer; never holds client data
    rdatas: tuple[dns.rdata.Rdata, ...]
    shuffle: bool  # multivalue: the resolver samples and shuffles per query
    scope: int  # ECS scope prefix this answer holds for
    pool: str | None  # the pool that answered (None: the record's own values)


class PoolHealth(NamedTuple):
    up: tuple[Value, ...]  # healthy values, in written order
    cumulative: tuple[int, ...]  # running weight sums, for weighted picks
    rdatas: tuple[dns.rdata.Rdata, ...]  # the healthy values' records
    key: tuple[Any, ...]  # decision key for `all` and `multivalue` answers


class Value:
    __slots__ = ("rdata", "text", "weight", "status", "health_key", "region")

    def __init__(self, rdata: dns.rdata.Rdata, weight: int, status: str,
                 health_key: HealthKey | None, region: str | None) -> None:
        self.rdata = rdata
        self.text = rdata.to_text()
        self.weight = weight
        self.status = status
        self.health_key = health_key
        self.region = region


class CompiledPool:
    __slots__ = ("name", "region", "lat", "lon", "answer", "values", "fallback")

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
                  spec.region)
            for v in spec.values)
        self.fallback: CompiledPool | None = None


class CompiledRule:
    __slots__ = ("kind", "index", "pool", "geos", "networks", "nearest", "bias", "memo", "line")

    def __init__(self, index: int, spec: Rule, pools: dict[str, CompiledPool]) -> None:
        self.kind = spec.kind
        self.index = index
        self.line = spec.line
        self.pool = pools[spec.pool] if spec.pool else None
        self.geos = frozenset(spec.geos)
        # (address length in bytes, network as int, mask, prefix length, text)
        self.networks = tuple(
            (n.max_prefixlen // 8, int(n.network_address), int(n.netmask), n.prefixlen, str(n))
            for n in spec.subnets)
        self.nearest = tuple(pools[p] for p in spec.nearest)
        bias = dict(spec.bias)
        self.bias = tuple(float(bias.get(p, 0.0)) for p in spec.nearest)
        self.memo: dict[tuple[float, float], tuple[tuple[CompiledPool, float], ...]] = {}

    def describe(self) -> str:
        if self.kind == "geos":
            return f"geos {sorted(self.geos)}"
        if self.kind == "subnets":
            return f"subnets {[n[4] for n in self.networks]}"
        if self.kind == "nearest":
            return f"nearest {[p.name for p in self.nearest]}"
        return "catch-all"

    def ordered(self, loc: Location) -> tuple[tuple[CompiledPool, float], ...]:
        """The listed pools nearest first, with distance + bias (listed order if unknown)."""
        if loc.lat is None or loc.lon is None:
            return tuple((p, float("nan")) for p in self.nearest)
        coords = (loc.lat, loc.lon)
        order = self.memo.get(coords)
        if order is None:
            scored = []
            for i, pool in enumerate(self.nearest):
                if pool.lat is None or pool.lon is None:
                    km = float("inf")
                else:
                    km = great_circle_km(loc.lat, loc.lon, pool.lat, pool.lon) + self.bias[i]
                scored.append((km, i, pool))
            scored.sort(key=lambda s: (s[0], s[1]))
            order = tuple((pool, km) for km, _, pool in scored)
            if len(self.memo) >= NEAREST_MEMO_LIMIT:
                self.memo.clear()
            self.memo[coords] = order
        return order


class Router:
    """The compiled routing of one record set."""

    def __init__(self, rs: RecordSet, zone: Zone) -> None:
        assert rs.routing is not None
        self.name = rs.name
        self.rtype = rs.rtype
        self.own_values = rs.rdatas
        pools = {name: CompiledPool(spec, zone) for name, spec in rs.routing.pools.items()}
        for name, spec in rs.routing.pools.items():
            if spec.fallback:
                pools[name].fallback = pools[spec.fallback]
        self.pools = pools
        self.rules = tuple(CompiledRule(i, r, pools) for i, r in enumerate(rs.routing.rules))
        self._health_generation = -1
        self._healthy: dict[str, PoolHealth] = {}

    # -- health ------------------------------------------------------------

    def healthy_values(self, pool: CompiledPool, health: HealthView) -> PoolHealth:
        """The pool's healthy values and what derives from them, cached per health generation."""
        if health.generation != self._health_generation:
            self._healthy = {}
            self._health_generation = health.generation
        cached = self._healthy.get(pool.name)
        if cached is None:
            up = tuple(v for v in pool.values if health.is_up(v.health_key, v.status, v.region))
            cached = PoolHealth(up, tuple(accumulate(v.weight for v in up)),
                                tuple(v.rdata for v in up),
                                (pool.name, pool.answer, tuple(v.text for v in up)))
            self._healthy[pool.name] = cached
        return cached

    def chain(self, pool: CompiledPool) -> list[CompiledPool]:
        """The pool and its fallbacks, each once."""
        out: list[CompiledPool] = []
        p: CompiledPool | None = pool
        while p is not None and p not in out:
            out.append(p)
            p = p.fallback
        return out

    def _first_healthy(self, pool: CompiledPool, health: HealthView) -> CompiledPool | None:
        for p in self.chain(pool):
            if self.healthy_values(p, health)[0]:
                return p
        return None

    # -- the decision ------------------------------------------------------

    def decide(self, loc: Location, addr: bytes | None, source_prefix: int,
               health: HealthView, rng: random.Random,
               trace: list[dict[str, Any]] | None = None) -> Decision:
        """The answer for one query: `select` then `pick`."""
        return pick(self.select(loc, addr, source_prefix, health, trace), rng)

    def select(self, loc: Location, addr: bytes | None, source_prefix: int,
               health: HealthView, trace: list[dict[str, Any]] | None = None) -> Selection:
        """Everything of the decision that does not need the random source.

        Depends only on the client (location, address) and the health view, so
        the resolver may memoize it per client network and health generation.
        """
        scope = 0
        addr_int = int.from_bytes(addr, "big") if addr is not None else 0
        picked: CompiledPool | None = None  # the pool the matching rule named
        answering: CompiledPool | None = None
        for rule in self.rules:
            kind = rule.kind
            if kind == "subnets":
                matched, needed = _match_subnets(rule, addr, addr_int)
                scope = max(scope, needed)
                if trace is not None:
                    trace.append({"rule": rule.index, "line": rule.line, "kind": kind,
                                  "condition": rule.describe(), "matched": matched,
                                  "why": "client address inside" if matched else
                                  ("no client address" if addr is None
                                   else "client address outside every subnet")})
                if matched:
                    picked = rule.pool
                    break
                continue
            if kind == "geos":
                scope = max(scope, loc.prefix_len)
                hit = loc.codes & rule.geos
                if trace is not None:
                    trace.append({"rule": rule.index, "line": rule.line, "kind": kind,
                                  "condition": rule.describe(), "matched": bool(hit),
                                  "why": (f"client is in {sorted(hit)}" if hit else
                                          ("location unknown" if not loc.known else
                                           f"client is {sorted(loc.codes)}"))})
                if hit:
                    picked = rule.pool
                    break
                continue
            if kind == "nearest":
                scope = max(scope, loc.prefix_len)
                order = rule.ordered(loc)
                picked = order[0][0]
                for pool, _km in order:
                    answering = self._first_healthy(pool, health)
                    if answering is not None:
                        break
                if trace is not None:
                    trace.append({"rule": rule.index, "line": rule.line, "kind": kind,
                                  "condition": rule.describe(), "matched": True,
                                  "why": ("distance + bias, nearest first" if loc.has_coordinates
                                          else "no coordinates: listed order"),
                                  "distances_km": [
                                      {"pool": p.name,
                                       "km": None if km != km else round(km, 1),
                                       "chain_healthy": self._first_healthy(p, health) is not None}
                                      for p, km in order]})
                break
            picked = rule.pool  # catch-all
            if trace is not None:
                trace.append({"rule": rule.index, "line": rule.line, "kind": kind,
                              "condition": "catch-all", "matched": True,
                              "why": "matches every client"})
            break
        scope = min(scope, source_prefix)
        if picked is None:
            if trace is not None:
                trace.append({"step": "no rule matched: the record's own values"})
            own = Decision((None, "own"), self.own_values, False, scope, None)
            return Selection(None, own, scope)
        if answering is None:
            answering = self._first_healthy(picked, health)
        if trace is not None:
            hops = self.chain(picked)
            for p in hops:
                up = self.healthy_values(p, health).up
                trace.append({"step": "pool", "pool": p.name, "region": p.region,
                              "healthy": bool(up),
                              "values": [{"value": v.text, "weight": v.weight,
                                          "status": v.status,
                                          "healthcheck": v.health_key[1] if v.health_key else None,
                                          "up": v in up} for v in p.values]})
                if p is answering:
                    break
        if answering is None:
            return Selection(None, self._fail_open(picked, scope, trace), scope)
        pool_health = self.healthy_values(answering, health)
        mode = answering.answer
        if mode == "weighted":
            return Selection(pool_health, None, scope, answering.name)
        return Selection(None, Decision(pool_health.key, pool_health.rdatas,
                                        mode == "multivalue", scope, answering.name), scope)

    def _fail_open(self, picked: CompiledPool, scope: int,
                   trace: list[dict[str, Any]] | None) -> Decision:
        """Whole chain down: the record's own values, else every value of the picked pool."""
        if self.own_values:
            if trace is not None:
                trace.append({"step": "fail open: every pool down, the record's own values"})
            return Decision((None, "open", "own"), self.own_values, False, scope, None)
        if trace is not None:
            trace.append({"step": f"fail open: every pool down, all values of {picked.name}"})
        rdatas = tuple(v.rdata for v in picked.values)
        return Decision((None, "open", picked.name), rdatas, False, scope, picked.name)


class Selection(NamedTuple):
    """A decision before the random pick: `fixed`, or a weighted pick from `weighted`."""

    weighted: PoolHealth | None
    fixed: Decision | None
    scope: int
    pool: str | None = None


def pick(selection: Selection, rng: random.Random) -> Decision:
    """Finish a selection: a weighted pool picks one healthy value by weight."""
    if selection.fixed is not None:
        return selection.fixed
    up, cumulative, _, _ = selection.weighted  # type: ignore[misc]
    index = bisect_right(cumulative, rng.random() * cumulative[-1])
    value = up[min(index, len(up) - 1)]
    return Decision((selection.pool, value.text), (value.rdata,), False, selection.scope,
                    selection.pool)


def _match_subnets(rule: CompiledRule, addr: bytes | None, addr_int: int) -> tuple[bool, int]:
    """(matched?, prefix bits the outcome depends on) for a subnets rule."""
    if addr is None:
        return False, 0
    size = len(addr)
    bits = size * 8
    needed = 0
    for length, network, mask, prefix, _text in rule.networks:
        if length != size:
            continue
        if addr_int & mask == network:
            return True, max(needed, prefix)
        common = bits - (addr_int ^ network).bit_length()
        needed = max(needed, min(prefix, common + 1))
    return False, needed
