"""The latency view routing reads: measured round trips per (client key, region).

How this works: an adapter (`adapters/latency.py`) folds measurements into a
decayed mean and a decayed sample count per (client key, region) and, off the
query path, publishes a new `LatencyView` — an immutable picture — into the
world, as health changes are published. `latency` rules read it.

Client keys, most specific first:

* the client's /24 (IPv4) or /48 (IPv6): the packed address truncated, as
  bytes (3 or 6 long), as the GeoIP memo keys it;
* its GeoIP subdivision, country and continent codes (``EU-DE-HE``,
  ``EU-DE``, ``EU``), as `geos` rules write them;
* `PROBE_KEY`: the probers' own round trips to each region, a weak signal
  used only where no client data exists.

An entry is a tuple of `(region, mean_ms, weight)` triples. `weight` is the
decayed sample count scaled to a fixed reference time: the count now is
`weight * view.scale`, so no clock is read and no entry is rewritten as time
passes (`scale` is 2 ** -((now - epoch) / half_life), computed by the adapter
when it publishes the view).

The view is sharded (`SHARDS` dicts by the key's hash) so that publishing a
new one copies only the shards that changed, a piece at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SHARDS = 256  # a network key's last byte picks its shard (see `shard_of`)
V4_NET_BYTES = 3  # a /24
V6_NET_BYTES = 6  # a /48
V4_PARENT_BYTES = 2  # a /16: `parents` tells which hold any /24 with data
V6_PARENT_BYTES = 4  # a /32
PROBE_KEY = "*"  # the probers' round trips

LatencyKey = bytes | str
Entry = tuple[tuple[str, float, float], ...]  # (region, mean ms, weight)

_EMPTY_SHARD: dict[LatencyKey, Entry] = {}
_NO_PARENTS: frozenset[bytes] = frozenset()


def net_key(address: bytes) -> bytes:
    """The /24 (IPv4) or /48 (IPv6) of a packed address."""
    return address[:V4_NET_BYTES] if len(address) == 4 else address[:V6_NET_BYTES]


def parent_key(key: bytes) -> bytes:
    """The /16 (IPv4) or /32 (IPv6) a network key lies in."""
    return key[:V4_PARENT_BYTES] if len(key) == V4_NET_BYTES else key[:V6_PARENT_BYTES]


def geo_keys(continent: str | None, country: str | None,
             subdivision: str | None) -> tuple[str, ...]:
    """The GeoIP keys of a place, most specific first."""
    if not continent:
        return ()
    if not country:
        return (continent,)
    if not subdivision:
        return (f"{continent}-{country}", continent)
    return (f"{continent}-{country}-{subdivision}", f"{continent}-{country}", continent)


def shard_of(key: LatencyKey) -> int:
    """The shard that holds a key. A network key (bytes) goes by its last byte —
    the same in every process, so the process that keeps the table can send its
    changes grouped by shard; other keys by hash (which differs per process)."""
    return key[-1] if type(key) is bytes else hash(key) & (SHARDS - 1)


def shard_parents(parents: Iterable[bytes]) -> tuple[frozenset[bytes], ...]:
    """Parent keys sharded as `LatencyView.parents` holds them."""
    shards: list[list[bytes]] = [[] for _ in range(SHARDS)]
    for parent in parents:
        shards[parent[-1]].append(parent)
    return tuple(frozenset(shard) if shard else _NO_PARENTS for shard in shards)


@dataclass(frozen=True, slots=True)
class LatencyView:
    generation: int = 0
    shards: tuple[dict[LatencyKey, Entry], ...] = (_EMPTY_SHARD,) * SHARDS
    # the /16s and /32s holding a network key, sharded as `shards` are (so that a
    # new view copies only the pieces that changed)
    parents: tuple[frozenset[bytes] | set[bytes], ...] = (_NO_PARENTS,) * SHARDS
    scale: float = 1.0  # weight -> decayed sample count now
    keys: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def has_parent(self, parent: bytes) -> bool:
        """Whether any network key lies in this /16 (IPv4) or /32 (IPv6)."""
        return parent in self.parents[parent[-1]]

    def entry(self, key: LatencyKey) -> Entry | None:
        return self.shards[key[-1] if type(key) is bytes else hash(key) & (SHARDS - 1)].get(key)

    def region_stats(self, key: LatencyKey, region: str) -> tuple[float, float] | None:
        """(mean ms, decayed sample count) for one region at one key, or None."""
        entry = self.shards[key[-1] if type(key) is bytes
                            else hash(key) & (SHARDS - 1)].get(key)
        if entry is None:
            return None
        for name, mean, weight in entry:
            if name == region:
                return mean, weight * self.scale
        return None

    @property
    def empty(self) -> bool:
        return self.keys == 0


NO_LATENCY = LatencyView()
