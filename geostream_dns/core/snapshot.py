"""The immutable, compiled configuration every query reads.

How this works: `build_snapshot` turns validated `Zone` specs into a tree per
zone (owner name -> {rdtype: RRsetData}, with empty non-terminals present as
empty nodes and delegation points listed), then resolves every existing
(name, type) once with the same `lookup` the slow path uses and renders each
client-independent result to wire bytes (`Answer`). The query path looks those
up by the lower-cased question bytes; anything else (other types, wildcards,
NXDOMAIN, routed names) goes through `lookup` at query time and its rendering
is memoized in a bounded table owned by the resolver.

A snapshot is never mutated after it is built; a reload builds a new one and
publishes it with one assignment.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA

from geostream_dns.config.model import RecordSet, Zone
from geostream_dns.core.wire import AA, CLASS_IN, LOWER, QR

if TYPE_CHECKING:
    from geostream_dns.core.route.policy import Router

# ALIAS is not a DNS type; it lives in the tree under a private-use number.
ALIAS = 65401

_COUNTS = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class RRsetData:
    """One RRset of the tree: static data, a router, or an ALIAS target."""

    rdtype: int
    ttl: int
    rdatas: tuple[dns.rdata.Rdata, ...]
    router: Router | None = None
    alias: dns.name.Name | None = None
    line: int = 0


class Answer:
    """A pre-rendered response minus ID, RD/CD, question and OPT.

    `flags` holds QR, AA and the rcode; the resolver ORs in the query's RD and
    CD bits. `counts`/`counts_edns` are QD/AN/NS/AR, the latter with one more
    additional record for our OPT.
    """

    __slots__ = ("flags", "counts", "counts_edns", "body", "size", "rcode", "chunks",
                 "ancount", "nscount", "arcount", "zone", "qtype")

    def __init__(self, rcode: int, aa: bool, ancount: int, nscount: int, arcount: int,
                 body: bytes, chunks: tuple[bytes, ...] = (), zone: str = "",
                 qtype: int = 0) -> None:
        self.qtype = qtype
        self.rcode = rcode
        self.flags = QR | (AA if aa else 0) | rcode
        self.ancount = ancount
        self.nscount = nscount
        self.arcount = arcount
        self.counts = _COUNTS.pack(1, ancount, nscount, arcount)
        self.counts_edns = _COUNTS.pack(1, ancount, nscount, arcount + 1)
        self.body = body
        self.size = len(body)
        self.chunks = chunks
        self.zone = zone


@dataclass(slots=True)
class ZoneTree:
    origin: dns.name.Name
    soa: RRsetData  # apex SOA with the zone TTL
    negative_ttl: int  # min(SOA TTL, SOA MINIMUM), RFC 2308
    nodes: dict[dns.name.Name, dict[int, RRsetData]] = field(default_factory=dict)
    cuts: frozenset[dns.name.Name] = frozenset()
    spec: Zone | None = None
    # the cuts by lower-cased labels: suffixes are looked up without building Names
    cut_index: dict[tuple[bytes, ...], dns.name.Name] = field(default_factory=dict)

    def set_cuts(self, cuts: frozenset[dns.name.Name]) -> None:
        self.cuts = cuts
        self.cut_index = {label_key(cut.labels): cut for cut in cuts}

    def find_cut(self, name: dns.name.Name) -> dns.name.Name | None:
        """The highest delegation point at or above `name` (below the apex)."""
        if not self.cut_index:
            return None
        labels = label_key(name.labels)
        count = len(labels)
        index = self.cut_index
        for n in range(len(self.origin) + 1, count + 1):
            cut = index.get(labels[count - n:])
            if cut is not None:
                return cut
        return None


@dataclass(slots=True)
class Snapshot:
    generation: int
    zones: dict[dns.name.Name, ZoneTree]
    # lower-cased question bytes -> pre-rendered answer (static names only)
    answers: dict[bytes, Answer] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # the zones by lower-cased labels, so `find_zone` builds no Name per suffix
    zone_index: dict[tuple[bytes, ...], ZoneTree] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.zone_index = {label_key(origin.labels): tree for origin, tree in self.zones.items()}

    def find_zone(self, name: dns.name.Name) -> ZoneTree | None:
        """The most specific hosted zone containing `name`."""
        labels = label_key(name.labels)
        index = self.zone_index
        for i in range(len(labels)):
            zone = index.get(labels[i:])
            if zone is not None:
                return zone
        return None

    @property
    def record_sets(self) -> int:
        return sum(len(node) for z in self.zones.values() for node in z.nodes.values())


def label_key(labels: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """A name's labels lower-cased (ASCII only, as DNS compares names)."""
    return tuple(label.translate(LOWER) for label in labels)


def question_key(qname: dns.name.Name, qtype: int) -> bytes:
    """The lookup key the resolver computes from a query's question bytes."""
    wire_name: bytes = qname.to_wire()  # type: ignore[assignment]
    return (wire_name + struct.pack("!HH", qtype, CLASS_IN)).translate(LOWER)


def _rdtype(rtype: str) -> int:
    return ALIAS if rtype == "ALIAS" else int(dns.rdatatype.from_text(rtype))


def compile_zone(zone: Zone, router_factory: Any = None) -> ZoneTree:
    """Build the lookup tree of one validated zone."""
    origin = dns.name.from_text(zone.origin)
    soa_rdata = dns.rdtypes.ANY.SOA.SOA(
        dns.rdataclass.IN, dns.rdatatype.SOA,
        dns.name.from_text(zone.soa.primary), dns.name.from_text(zone.soa.rname),
        zone.serial, zone.soa.refresh, zone.soa.retry, zone.soa.expire, zone.soa.negative_ttl,
    )
    soa = RRsetData(dns.rdatatype.SOA, zone.ttl, (soa_rdata,))
    tree = ZoneTree(origin, soa, min(zone.ttl, zone.soa.negative_ttl), spec=zone)
    apex = tree.nodes.setdefault(origin, {})
    apex[dns.rdatatype.SOA] = soa
    ns_rdatas = tuple(
        dns.rdtypes.ANY.NS.NS(dns.rdataclass.IN, dns.rdatatype.NS, dns.name.from_text(ns))
        for ns in zone.nameservers
    )
    apex[dns.rdatatype.NS] = RRsetData(dns.rdatatype.NS, zone.ttl, ns_rdatas)
    cuts = set()
    for rs in zone.rrsets:
        owner = dns.name.from_text(rs.name)
        node = tree.nodes.setdefault(owner, {})
        node[_rdtype(rs.rtype)] = _rrset_data(rs, zone, router_factory)
        if rs.rtype == "NS" and owner != origin:
            cuts.add(owner)
        # Every ancestor up to the apex exists (empty non-terminals, RFC 4592).
        parent = owner
        while parent != origin and len(parent) > len(origin):
            parent = parent.parent()
            tree.nodes.setdefault(parent, {})
    tree.set_cuts(frozenset(cuts))
    return tree


def _rrset_data(rs: RecordSet, zone: Zone, router_factory: Any) -> RRsetData:
    rdtype = _rdtype(rs.rtype)
    router = None
    if rs.routing is not None and router_factory is not None:
        router = router_factory(rs, zone)
    alias = dns.name.from_text(rs.alias) if rs.alias else None
    return RRsetData(rdtype, rs.ttl, rs.rdatas, router, alias, rs.line)
