"""Client locations: what GeoIP says about an address, memoized per network.

How this works: a `GeoLocator` wraps a raw lookup function (the mmdb adapter
provides one: address -> (record fields, matched prefix length)) with a
bounded memo. Decoding a full City record costs ~14 µs, the dictionary hit
~0.1 µs, so the memo is what keeps routed names fast. Entries are keyed by the
address truncated to /24 (IPv4) or /48 (IPv6): a network at least that wide
answers for the whole key. Networks more specific than the key (rare) are
memoized by the address truncated to their own prefix in a second table
that is consulted only for keys known to be split.

The memo is generation-swept: lookups fill `young`; when it holds its share
(half of what `split`, capped at `limit/4`, leaves) it becomes `old` and a new
`young` starts; hits in `old` are promoted. So at most `limit` entries live at
once (for `limit` >= 4), and hot networks survive sweeps.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

V4_KEY_BITS = 24
V6_KEY_BITS = 48
DEFAULT_MEMO_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Location:
    """What GeoIP knows of a client network. `known` is False for unknown addresses."""

    continent: str | None = None
    country: str | None = None
    subdivision: str | None = None
    lat: float | None = None
    lon: float | None = None
    prefix_len: int = 0  # the matched GeoIP network's prefix length (for ECS scope)
    codes: frozenset[str] = field(default_factory=frozenset)  # EU, EU-DE, EU-DE-HE

    @property
    def known(self) -> bool:
        return self.continent is not None or self.country is not None

    @property
    def has_coordinates(self) -> bool:
        return self.lat is not None and self.lon is not None


def make_location(continent: str | None, country: str | None, subdivision: str | None,
                  lat: float | None, lon: float | None, prefix_len: int) -> Location:
    codes: set[str] = set()
    if continent:
        codes.add(continent)
        if country:
            codes.add(f"{continent}-{country}")
            if subdivision:
                codes.add(f"{continent}-{country}-{subdivision}")
    return Location(continent, country, subdivision, lat, lon, prefix_len, frozenset(codes))


UNKNOWN = Location()

# raw lookup: (packed address bytes, 4 or 16 long) -> Location (prefix_len set)
RawLookup = Callable[[bytes], Location]


class GeoLocator:
    def __init__(self, raw: RawLookup | None, limit: int = DEFAULT_MEMO_LIMIT) -> None:
        self.raw = raw
        self.limit = limit
        # young + old + split together never exceed `limit`.
        self._split_max = limit // 4
        self._young_max = max(1, (limit - self._split_max) // 2)
        self.young: dict[bytes, Location] = {}
        self.old: dict[bytes, Location] = {}
        self.split: dict[bytes, Location] = {}  # keys under a network narrower than the key
        self.hits = 0
        self.misses = 0

    def locate(self, address: bytes) -> Location:
        """Location of a packed IPv4 (4 bytes) or IPv6 (16 bytes) address."""
        if self.raw is None:
            return UNKNOWN
        key = address[:3] if len(address) == 4 else address[:6]
        loc = self.young.get(key)
        if loc is None:
            loc = self.old.get(key)
            if loc is not None:
                self._remember(key, loc)
        if loc is not None:
            if loc is not _SPLIT:
                self.hits += 1
                return loc
            return self._locate_split(address)
        self.misses += 1
        loc = self.raw(address)
        key_bits = V4_KEY_BITS if len(address) == 4 else V6_KEY_BITS
        if loc.prefix_len > key_bits:
            self._remember(key, _SPLIT)
            return self._remember_split(address, loc)
        self._remember(key, loc)
        return loc

    def _remember(self, key: bytes, loc: Location) -> None:
        young = self.young
        if len(young) >= self._young_max:
            self.old = young
            self.young = young = {}
        young[key] = loc

    def _locate_split(self, address: bytes) -> Location:
        # Networks narrower than the memo key: look up precisely, memoize by network.
        for prefix in range(V4_KEY_BITS + 1 if len(address) == 4 else V6_KEY_BITS + 1,
                            len(address) * 8 + 1):
            loc = self.split.get(_truncate(address, prefix) + bytes([prefix]))
            if loc is not None and loc.prefix_len == prefix:
                self.hits += 1
                return loc
        self.misses += 1
        assert self.raw is not None
        return self._remember_split(address, self.raw(address))

    def _remember_split(self, address: bytes, loc: Location) -> Location:
        if len(self.split) >= self._split_max:
            self.split.clear()
        self.split[_truncate(address, loc.prefix_len) + bytes([loc.prefix_len])] = loc
        return loc

    def __len__(self) -> int:
        return len(self.young) + len(self.old) + len(self.split)


_SPLIT = Location(prefix_len=-1)


def _truncate(address: bytes, prefix: int) -> bytes:
    value = int.from_bytes(address, "big")
    bits = len(address) * 8
    mask = ((1 << prefix) - 1) << (bits - prefix) if prefix else 0
    return (value & mask).to_bytes(len(address), "big")


def packed(ip: str) -> bytes:
    """A textual IP as packed bytes (IPv4-mapped IPv6 becomes IPv4)."""
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.packed
    return addr.packed
