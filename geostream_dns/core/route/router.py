"""A routed record compiled for the query path: its rules, pools and own values.

How this works: `Router.select` asks the record's matchers in order (rules
module by module: `geos`, `subnets`, `nearest`, `latency`, `catchall`); the first that
matches names a pool. That pool hands over down its fallback chain until a
pool with a healthy value answers. When no rule matches, the record's own
values answer. When the whole chain is down the answer fails open: the
record's own values if it has them, else every value of the pool the rule
named, health ignored (never an empty answer because of health).

The answering pool's answer mode turns its healthy values into the answer:
`all` takes every one, `multivalue` up to eight (sampled and shuffled per
query), `weighted` one by weight (picked per query). A `Selection` is
everything that does not need the random source, so it can be memoized per
client network and world; `pick` finishes it.

The ECS scope is the longest prefix any rule tried depended on, never more
than the client's source prefix.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, NamedTuple

import dns.rdata

from geostream_dns.core.client import ClientNet
from geostream_dns.core.model import (
    CatchAllRule,
    GeosRule,
    LatencyRule,
    NearestRule,
    RecordSet,
    Rule,
    SubnetsRule,
    Zone,
)
from geostream_dns.core.route.catchall import CatchAllMatcher
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.route.geos import GeosMatcher
from geostream_dns.core.route.latency import LatencyMatcher
from geostream_dns.core.route.nearest import NearestMatcher
from geostream_dns.core.route.pools import CompiledPool, PoolHealth, compile_pools
from geostream_dns.core.route.rule import Matcher
from geostream_dns.core.route.subnets import SubnetsMatcher

# Each rule kind of the zone model and the module that matches it.
MATCHERS: dict[type[Any], Callable[[int, Any, dict[str, CompiledPool]], Matcher]] = {
    GeosRule: GeosMatcher,
    SubnetsRule: SubnetsMatcher,
    NearestRule: NearestMatcher,
    LatencyRule: LatencyMatcher,
    CatchAllRule: CatchAllMatcher,
}


def compile_rule(index: int, rule: Rule, pools: dict[str, CompiledPool]) -> Matcher:
    return MATCHERS[type(rule)](index, rule, pools)


class Decision(NamedTuple):
    """What a routed part of an answer is made of, for one client."""

    key: tuple[Any, ...]  # identifies the rendered answer; never holds client data
    rdatas: tuple[dns.rdata.Rdata, ...]
    shuffle: bool  # multivalue: sampled and shuffled per query


class Selection(NamedTuple):
    """A routing decision before the random pick."""

    rule: str | None  # kind of the rule that matched; None: none did (own values)
    pool: str | None  # the pool that answers; None: the record's own values
    scope: int  # ECS scope prefix this selection holds for
    failed_open: bool  # every pool of the chain was down
    fixed: Decision | None  # the answer, when it does not vary per query
    weighted: PoolHealth | None = None  # else: one value picked by weight per query


class Router:
    """The compiled routing of one record set.

    Made from the record set and its zone, or (`Router.later`) from a function
    that gives them: a zone loaded from the answer cache compiles a record's
    routing on the first query that needs it, not at load.
    """

    __slots__ = ("name", "rtype", "zone", "_spec", "_own_values", "_pools", "_matchers")

    def __init__(self, rs: RecordSet, zone: Zone) -> None:
        self.name = rs.name
        self.rtype = rs.rtype
        self.zone = zone.origin
        self._spec: Callable[[], tuple[RecordSet, Zone]] | None = None
        self._compile(rs, zone)

    @classmethod
    def later(cls, name: str, rtype: str, zone: str,
              spec: Callable[[], tuple[RecordSet, Zone]]) -> Router:
        router = cls.__new__(cls)
        router.name, router.rtype, router.zone = name, rtype, zone
        router._spec = spec
        return router

    def _compile(self, rs: RecordSet, zone: Zone) -> None:
        assert rs.routing is not None
        self._own_values = rs.rdatas
        self._pools = compile_pools(rs.routing.pools, zone)
        self._matchers = tuple(compile_rule(i, rule, self._pools)
                               for i, rule in enumerate(rs.routing.rules))
        self._spec = None

    def _ready(self) -> None:
        if self._spec is not None:
            self._compile(*self._spec())

    @property
    def own_values(self) -> tuple[dns.rdata.Rdata, ...]:
        self._ready()
        return self._own_values

    @property
    def pools(self) -> dict[str, CompiledPool]:
        self._ready()
        return self._pools

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        self._ready()
        return self._matchers

    def select(self, net: ClientNet, ctx: RouteContext,
               trace: list[dict[str, Any]] | None = None) -> Selection:
        """The routing decision for a client network; `trace` collects explain steps."""
        scope = 0
        named: CompiledPool | None = None  # the pool the matching rule named
        answering: CompiledPool | None = None
        rule: str | None = None
        for matcher in self.matchers:
            verdict = matcher.match(net, ctx)
            matched, needed, pool, chosen = verdict
            if needed > scope:
                scope = needed
            if trace is not None:
                trace.append(matcher.describe(net, ctx, verdict))
            if matched:
                named, answering, rule = pool, chosen, matcher.kind
                break
        scope = min(scope, net.source_prefix)
        if named is None:
            if trace is not None:
                trace.append({"step": "no rule matched: the record's own values"})
            own = Decision((None, "own"), self.own_values, False)
            return Selection(None, None, scope, False, own)
        if answering is None:
            answering = ctx.first_healthy(named)
        if trace is not None:
            self._trace_pools(named, answering, ctx, trace)
        if answering is None:
            return self._fail_open(rule, named, scope, trace)
        health = ctx.pool_health(answering)
        mode = answering.answer
        if mode == "weighted":
            return Selection(rule, answering.name, scope, False, None, health)
        decision = Decision(health.key, health.rdatas, mode == "multivalue")
        return Selection(rule, answering.name, scope, False, decision)

    def _fail_open(self, rule: str | None, named: CompiledPool, scope: int,
                   trace: list[dict[str, Any]] | None) -> Selection:
        """Whole chain down: the record's own values, else every value of the named pool."""
        if self.own_values:
            if trace is not None:
                trace.append({"step": "fail open: every pool down, the record's own values"})
            return Selection(rule, None, scope, True,
                             Decision((None, "open"), self.own_values, False))
        if trace is not None:
            trace.append({"step": f"fail open: every pool down, all values of {named.name}"})
        rdatas = tuple(v.rdata for v in named.values)
        return Selection(rule, named.name, scope, True,
                         Decision((named.name, "open"), rdatas, False))

    @staticmethod
    def _trace_pools(named: CompiledPool, answering: CompiledPool | None, ctx: RouteContext,
                     trace: list[dict[str, Any]]) -> None:
        for pool in named.chain:
            up = ctx.pool_health(pool).up
            trace.append({"step": "pool", "pool": pool.name, "region": pool.region,
                          "healthy": bool(up),
                          "values": [{"value": v.text, "weight": v.weight, "status": v.status,
                                      "healthcheck": v.health_key[1] if v.health_key else None,
                                      "up": v in up} for v in pool.values]})
            if pool is answering:
                break


def weighted_pick(health: PoolHealth, rng: random.Random) -> int:
    """Index into `health.up` of one value picked by weight."""
    cumulative = health.cumulative
    index = bisect_right(cumulative, rng.random() * cumulative[-1])
    return min(index, len(cumulative) - 1)


def pick(selection: Selection, rng: random.Random) -> Decision:
    """Finish a selection: a weighted pool picks one healthy value by weight."""
    if selection.fixed is not None:
        return selection.fixed
    health = selection.weighted
    assert health is not None
    value = health.up[weighted_pick(health, rng)]
    return Decision((selection.pool, value.text), (value.rdata,), False)
