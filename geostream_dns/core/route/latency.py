"""`latency` rules: the listed pool with the lowest measured round trip from the
client's network (plus `bias` ms) whose fallback chain is healthy.

How this works. The route context carries a `LatencyView` (see
`core/latency.py`): a decayed mean round trip and a decayed sample count per
(client key, region). The client's keys, most specific first, are its /24
(IPv4) or /48 (IPv6) — used only when the query's source prefix is at least
that long — then its GeoIP subdivision, country and continent. Among the
listed pools whose chain has a healthy value (the candidates):

1. the key used is the most specific one where at least one candidate's
   region has `min_samples` samples (decayed counts rounded to whole samples);
2. each candidate's latency is its mean at that key, or, where it has too
   few samples there, at the next key where it has enough; a candidate with
   no data at any key from there on is skipped;
3. the lowest latency plus the pool's `bias` wins (ties: the listed order).

Where no candidate has client data at any key, the probers' own round trips
(a weak signal) decide the same way; where there are none either, the rule
behaves as `nearest` over the same pools. Like `nearest`, it matches every
client, and when every candidate's chain is down it names the pool it would
have chosen with health ignored, so the answer fails open to that pool.

ECS scope: the answer depends on the client's GeoIP network (the geo keys,
the `nearest` fallback) and on whether its /24 (/48) has data, so the scope
is the GeoIP network's prefix, narrowed to /24 (/48) when the network is
wider — unless the view shows that no network key with any data lies in the
client's /16 (/32) and the GeoIP network is inside that, when the GeoIP
network's prefix holds for every address in it. The router caps the scope
at the source prefix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from geostream_dns.core.client import ClientNet
from geostream_dns.core.latency import (
    PROBE_KEY,
    SHARDS,
    V4_NET_BYTES,
    V4_PARENT_BYTES,
    V6_NET_BYTES,
    V6_PARENT_BYTES,
    LatencyKey,
    LatencyView,
    geo_keys,
)
from geostream_dns.core.model import LatencyRule, NearestRule
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.route.nearest import NearestMatcher
from geostream_dns.core.route.pools import CompiledPool
from geostream_dns.core.route.rule import Verdict, step

_INF = float("inf")
_MASK = SHARDS - 1


def client_keys(net: ClientNet) -> tuple[LatencyKey, ...]:
    """The client's latency keys, most specific first (the probe key not included)."""
    loc = net.location
    geo = geo_keys(loc.continent, loc.country, loc.subdivision)
    address = net.address
    if address is None:
        return geo
    if len(address) == 4:
        if net.source_prefix >= V4_NET_BYTES * 8:
            return (address[:V4_NET_BYTES], *geo)
    elif net.source_prefix >= V6_NET_BYTES * 8:
        return (address[:V6_NET_BYTES], *geo)
    return geo


def latency_scope(net: ClientNet, view: LatencyView) -> int:
    """How many leading address bits a latency decision for `net` depends on."""
    address = net.address
    prefix = net.location.prefix_len
    if address is None:
        return 0
    if len(address) == 4:
        net_bits, parent = V4_NET_BYTES * 8, V4_PARENT_BYTES
    else:
        net_bits, parent = V6_NET_BYTES * 8, V6_PARENT_BYTES
    if net.source_prefix < net_bits or prefix >= net_bits:
        return prefix  # the network key is not consulted, or the GeoIP network is narrower
    if prefix >= parent * 8 and not view.has_parent(address[:parent]):
        return prefix  # no network inside the GeoIP network has data
    return net_bits


def key_text(key: LatencyKey) -> str:
    """A client key as people read it: 81.2.69.0/24, 2001:db8:1::/48, EU-DE, probes."""
    if isinstance(key, bytes):
        size = 4 if len(key) == V4_NET_BYTES else 16
        bits = len(key) * 8
        return str(ipaddress.ip_network((key + bytes(size - len(key)), bits)))
    if key == PROBE_KEY:
        return "probes"
    return key


def key_level(key: LatencyKey) -> str:
    if isinstance(key, bytes):
        return "network"
    if key == PROBE_KEY:
        return "probes"
    return ("continent", "country", "subdivision")[key.count("-")]


class LatencyMatcher:
    kind = "latency"

    def __init__(self, index: int, rule: LatencyRule, pools: dict[str, CompiledPool]) -> None:
        self.index = index
        self.line = rule.line
        self.pools = tuple(pools[p] for p in rule.pools)
        bias = dict(rule.bias)
        self.bias = tuple(float(bias.get(p, 0.0)) for p in rule.pools)
        self.regions = tuple(p.region or "" for p in self.pools)
        self.min_samples = rule.min_samples
        # decayed counts are rounded: ten samples a minute old still count as ten
        self.enough = rule.min_samples - 0.5
        self.nearest = NearestMatcher(index, NearestRule(rule.pools, (), rule.line), pools)
        self.every = tuple(range(len(self.pools)))
        self.every_region = frozenset(self.regions)

    # -- the query path ----------------------------------------------------

    def match(self, net: ClientNet, ctx: RouteContext) -> Verdict:
        view = ctx.latency
        scope = latency_scope(net, view)
        healthy, wanted = self._candidates(ctx)
        if view.keys:
            best = self.choose(client_keys(net), healthy or self.every, view,
                               wanted if healthy else self.every_region)[0]
            if best is not None:
                pool = self.pools[best]
                return (True, scope, pool, ctx.first_healthy(pool) if healthy else None)
        verdict = self.nearest.match(net, ctx)
        return (True, scope, verdict[2], verdict[3])

    def _candidates(self, ctx: RouteContext) -> tuple[tuple[int, ...], frozenset[str]]:
        """The listed pools whose chain is healthy, and their regions (kept per context)."""
        known = ctx.candidates.get(self)
        if known is None:
            healthy = tuple(i for i, pool in enumerate(self.pools)
                            if ctx.first_healthy(pool) is not None)
            known = (healthy, frozenset(self.regions[i] for i in healthy))
            ctx.candidates[self] = known
        return known

    def choose(self, keys: tuple[LatencyKey, ...], candidates: Sequence[int],
               view: LatencyView, wanted: frozenset[str] | None = None,
               ) -> tuple[int | None, int, tuple[LatencyKey, ...]]:
        """(index of the chosen pool or None, index into `levels` of the key used,
        the levels consulted): see the module doc."""
        threshold = self.enough / view.scale if view.scale > 0 else _INF
        regions = self.regions
        if wanted is None:
            wanted = frozenset(regions[i] for i in candidates)
        shards = view.shards
        levels: tuple[LatencyKey, ...] = keys
        start = -1
        for level, key in enumerate(keys):
            entry = shards[key[-1] if type(key) is bytes else hash(key) & _MASK].get(key)
            if entry is not None:
                for r, _m, w in entry:
                    if w >= threshold and r in wanted:
                        start = level
                        break
                if start >= 0:
                    break
        if start < 0:
            entry = shards[hash(PROBE_KEY) & _MASK].get(PROBE_KEY)
            for r, _m, w in entry or ():
                if w >= threshold and r in wanted:
                    start = 0
                    break
            if start < 0:
                return None, -1, keys
            levels = (PROBE_KEY,)
        entries = [shards[key[-1] if type(key) is bytes else hash(key) & _MASK].get(key)
                   for key in levels[start:]]
        best: int | None = None
        best_ms = _INF
        bias = self.bias
        for i in candidates:
            region = regions[i]
            found = False
            for entry in entries:
                if entry is None:
                    continue
                for r, m, w in entry:
                    if r == region and w >= threshold:
                        ms = m + bias[i]
                        if ms < best_ms:
                            best, best_ms = i, ms
                        found = True
                        break
                if found:
                    break
        return best, start, levels

    # -- explain -----------------------------------------------------------

    def condition(self) -> str:
        return f"latency {[p.name for p in self.pools]}"

    def describe(self, net: ClientNet, ctx: RouteContext, verdict: Verdict) -> dict[str, Any]:
        view = ctx.latency
        keys = client_keys(net)
        healthy = list(self._candidates(ctx)[0])
        candidates = healthy or list(self.every)
        best, start, levels = (self.choose(keys, candidates, view) if view.keys
                               else (None, -1, keys))
        used = levels[start] if best is not None else None
        pools = []
        for i, pool in enumerate(self.pools):
            region = self.regions[i]
            evidence = []
            for key in (*keys, PROBE_KEY):
                stats = view.region_stats(key, region)
                if stats is not None:
                    evidence.append({"key": key_text(key), "level": key_level(key),
                                     "rtt_ms": round(stats[0], 2),
                                     "samples": round(stats[1], 1),
                                     "enough": stats[1] >= self.enough})
            row: dict[str, Any] = {"pool": pool.name, "region": region,
                                   "bias_ms": self.bias[i],
                                   "chain_healthy": i in healthy, "evidence": evidence}
            if best is None:
                row["skipped"] = "no measurements: nearest decides"
            elif i not in candidates:
                row["skipped"] = "chain down"
            else:
                for key in levels[start:]:
                    stats = view.region_stats(key, region)
                    if stats is not None and stats[1] >= self.enough:
                        row.update(key_used=key_text(key), rtt_ms=round(stats[0], 2),
                                   samples=round(stats[1], 1),
                                   score_ms=round(stats[0] + self.bias[i], 2))
                        break
                else:
                    row["skipped"] = (f"fewer than {self.min_samples} samples at "
                                      f"{key_text(levels[start])} and every wider key")
            pools.append(row)
        if best is not None:
            assert used is not None
            why = (f"lowest latency + bias at key {key_text(used)} ({key_level(used)}): "
                   f"{self.pools[best].name}")
        elif not view.keys:
            why = "no latency measurements at all: nearest healthy pool"
        else:
            why = (f"no candidate has {self.min_samples} samples at any key: "
                   "nearest healthy pool")
        return step(self, verdict, why, latency={
            "keys": [key_text(k) for k in keys],
            "key_used": key_text(used) if used is not None else None,
            "level_used": key_level(used) if used is not None else None,
            "min_samples": self.min_samples, "pools": pools})
