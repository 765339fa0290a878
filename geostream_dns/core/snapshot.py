"""The immutable, compiled configuration every query reads.

How this works: `compile_zone` turns one validated `Zone` into a `ZoneTree`:
owner name -> {rdtype: RRsetData}, with empty non-terminals present as empty
nodes, delegation points indexed, and every routed record compiled into a
`Router` (routing is part of the tree; it cannot be left out). `build.py`
then resolves every existing (name, type) once with the same `lookup` the
slow path uses and renders each client-independent result to wire bytes; a
`Snapshot` is the trees plus that answers table (and the routed names with
what lookup found for them), frozen. The query path looks
answers up by the lower-cased question bytes.

Nothing here changes after it is built; a reload builds a new snapshot and
publishes it in a new world (core/world.py). What queries learn later
(negative answers, wildcard syntheses, routed renderings) lives in the
world's bounded memo tables, never here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.SOA

from geostream_dns.core.answer import Answer, RoutedName
from geostream_dns.core.dnssec import ALIAS_TYPE, Signer, ZoneSigning
from geostream_dns.core.health import HealthKey
from geostream_dns.core.model import HealthCheck, RecordSet, Zone
from geostream_dns.core.route.router import Router
from geostream_dns.core.wire import CLASS_IN, LOWER

# ALIAS is not a DNS type; it lives in the tree under a private-use number.
ALIAS = 65401
assert ALIAS == ALIAS_TYPE


class RRsetData:
    """One RRset of the tree: static data, a router, or an ALIAS target.

    The records may be held as uncompressed wire data (a zone loaded from the
    answer cache) and are then decoded on first use: most RRsets are answered
    from pre-rendered bytes and never need their records as objects.
    Never changed after it is made (the lazy decoding aside).
    """

    __slots__ = ("rdtype", "ttl", "router", "alias", "line", "_rdatas", "_wire")

    def __init__(self, rdtype: int, ttl: int, rdatas: tuple[dns.rdata.Rdata, ...] | None = (),
                 router: Router | None = None, alias: dns.name.Name | None = None,
                 line: int = 0, wire: tuple[bytes, ...] | None = None) -> None:
        self.rdtype = rdtype
        self.ttl = ttl
        self.router = router
        self.alias = alias
        self.line = line
        self._rdatas = rdatas if wire is None else None
        self._wire = wire

    @property
    def rdatas(self) -> tuple[dns.rdata.Rdata, ...]:
        rdatas = self._rdatas
        if rdatas is None:
            assert self._wire is not None
            rdatas = self._rdatas = tuple(
                dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RdataType.make(self.rdtype),
                                    w, 0, len(w))
                for w in self._wire)
        return rdatas

    def wire(self) -> tuple[bytes, ...]:
        """Each record as uncompressed wire data (what the answer cache keeps)."""
        if self._wire is None:
            self._wire = tuple(rdata.to_wire() for rdata in self.rdatas)  # type: ignore[misc]
        return self._wire


class ModelRef:
    """The validated zone a tree was compiled from, or how to get it: a zone loaded
    from the answer cache validates its document only when someone asks (the API
    showing it); the query path never does."""

    __slots__ = ("_zone", "_load")

    def __init__(self, zone: Zone | None = None,
                 load: Callable[[], Zone] | None = None) -> None:
        self._zone = zone
        self._load = load

    def get(self) -> Zone:
        if self._zone is None:
            assert self._load is not None
            self._zone = self._load()
        return self._zone


Node = Mapping[int, RRsetData]


@dataclass(frozen=True, slots=True)
class ZoneTree:
    origin: dns.name.Name
    soa: RRsetData  # apex SOA with the zone TTL
    negative_ttl: int  # min(SOA TTL, SOA MINIMUM), RFC 2308
    nodes: Mapping[dns.name.Name, Node]
    model_ref: ModelRef  # the validated zone this tree was compiled from
    # delegation points by lower-cased labels: suffixes are looked up without building Names
    cut_index: Mapping[tuple[bytes, ...], dns.name.Name] = field(default_factory=dict)
    regions: frozenset[str] = frozenset()  # the regions the zone names
    signer: Signer | None = None  # signs the zone's answers for DO=1 (core.dnssec)

    @property
    def model(self) -> Zone:
        return self.model_ref.get()

    @property
    def cuts(self) -> frozenset[dns.name.Name]:
        return frozenset(self.cut_index.values())

    @property
    def serial(self) -> int:
        return int(self.soa.rdatas[0].serial)  # type: ignore[attr-defined]

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


@dataclass(frozen=True, slots=True)
class ExternalTarget:
    """What an ALIAS target outside the hosted zones resolved to, as last resolved
    in the background (adapters/alias_resolver.py): its A and AAAA records, each
    with the TTL the target's own servers gave. No records: the target has none
    of that type (or does not exist)."""

    a: tuple[dns.rdata.Rdata, ...] = ()
    a_ttl: int = 0
    aaaa: tuple[dns.rdata.Rdata, ...] = ()
    aaaa_ttl: int = 0

    def rrset(self, qtype: int) -> RRsetData | None:
        """The records answering `qtype` (A or AAAA), or None when there are none."""
        if qtype == dns.rdatatype.A:
            return RRsetData(qtype, self.a_ttl, self.a) if self.a else None
        return RRsetData(qtype, self.aaaa_ttl, self.aaaa) if self.aaaa else None


@dataclass(frozen=True, slots=True)
class ZoneSet:
    """Hosted zones, found by the most specific origin containing a name; what the
    ALIAS targets outside them resolved to (absent: not resolved yet); and the
    zones that should be hosted but never loaded (`failed`, as label keys): names
    in them are answered SERVFAIL, not REFUSED, so resolvers retry elsewhere
    rather than take the zone for gone."""

    trees: Mapping[dns.name.Name, ZoneTree]
    index: Mapping[tuple[bytes, ...], ZoneTree]
    externals: Mapping[dns.name.Name, ExternalTarget] = field(default_factory=dict)
    failed: frozenset[tuple[bytes, ...]] = frozenset()

    @classmethod
    def of(cls, trees: Mapping[dns.name.Name, ZoneTree],
           externals: Mapping[dns.name.Name, ExternalTarget] | None = None) -> ZoneSet:
        return cls(trees, {label_key(origin.labels): tree for origin, tree in trees.items()},
                   externals if externals is not None else {})

    def external(self, target: dns.name.Name) -> ExternalTarget | None:
        """What an ALIAS target outside the hosted zones resolved to; None: not yet."""
        return self.externals.get(target)

    def find_zone(self, name: dns.name.Name) -> ZoneTree | None:
        labels = label_key(name.labels)
        index = self.index
        for i in range(len(labels)):
            zone = index.get(labels[i:])
            if zone is not None:
                return zone
        return None

    def unloaded(self, name: dns.name.Name, zone: ZoneTree | None) -> bool:
        """True when `name` is in a failed zone more specific than `zone` (the hosted
        zone found for it, if any)."""
        labels = label_key(name.labels)
        hosted = len(zone.origin.labels) if zone is not None else 0
        failed = self.failed
        for i in range(len(labels) - hosted):
            if labels[i:] in failed:
                return True
        return False


@dataclass(frozen=True, slots=True)
class CompiledZone:
    """One zone compiled and rendered on its own (build.compile_zone_unit), or loaded
    from the answer cache: its tree, the answers that depend on nothing but the
    zone (and which hosted zones sit below it), and the (name, type) pairs whose
    answers must be looked up once every zone is there (routed names, CNAME
    chains and ALIASes leaving the zone, names under a hosted child zone)."""

    tree: ZoneTree
    answers: Mapping[bytes, Answer]
    deferred: tuple[tuple[dns.name.Name, int], ...]
    key: str  # what it was built from: the zone's content digest and its child zones
    # every (zone, check, value) its routed records ask to check, with the check
    targets: Mapping[HealthKey, HealthCheck]
    source: Zone | None = None  # the validated zone, when compiled from one


@dataclass(frozen=True, slots=True)
class Snapshot:
    generation: int
    zone_set: ZoneSet
    # lower-cased question bytes -> pre-rendered answer (static names)
    answers: Mapping[bytes, Answer]
    # lower-cased question bytes -> what lookup found (routed names: answered per client)
    routed: Mapping[bytes, RoutedName] = field(default_factory=dict)
    # origin (text) -> the compiled zone; the next build reuses what did not change
    units: Mapping[str, CompiledZone] = field(default_factory=dict)
    # every (zone, check, value) a routed record asks to check, with its check
    health_targets: Mapping[HealthKey, HealthCheck] = field(default_factory=dict)
    # each ALIAS target outside the hosted zones -> the questions whose answers it makes
    alias_questions: Mapping[dns.name.Name, tuple[tuple[dns.name.Name, int], ...]] = field(
        default_factory=dict)

    @property
    def alias_targets(self) -> frozenset[dns.name.Name]:
        """The ALIAS targets outside the hosted zones, resolved in the background."""
        return frozenset(self.alias_questions)

    @property
    def zones(self) -> Mapping[dns.name.Name, ZoneTree]:
        return self.zone_set.trees

    def find_zone(self, name: dns.name.Name) -> ZoneTree | None:
        """The most specific hosted zone containing `name`."""
        return self.zone_set.find_zone(name)

    @property
    def failed(self) -> frozenset[tuple[bytes, ...]]:
        return self.zone_set.failed

    def unloaded(self, name: dns.name.Name, zone: ZoneTree | None) -> bool:
        return self.zone_set.unloaded(name, zone)

    @property
    def record_sets(self) -> int:
        return sum(len(node) for z in self.zones.values() for node in z.nodes.values())

    @property
    def regions(self) -> frozenset[str]:
        """Every region named by a zone of this snapshot."""
        return frozenset(name for tree in self.zones.values() for name in tree.regions)


EMPTY = Snapshot(0, ZoneSet({}, {}), {}, {})


def label_key(labels: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """A name's labels lower-cased (ASCII only, as DNS compares names)."""
    return tuple(label.translate(LOWER) for label in labels)


def question_key(qname: dns.name.Name, qtype: int) -> bytes:
    """The lookup key the resolver computes from a query's question bytes."""
    wire_name: bytes = qname.to_wire()  # type: ignore[assignment]
    return (wire_name + struct.pack("!HH", qtype, CLASS_IN)).translate(LOWER)


def _rdtype(rtype: str) -> int:
    return ALIAS if rtype == "ALIAS" else int(dns.rdatatype.from_text(rtype))


def compile_zone(zone: Zone, signing: ZoneSigning | None = None) -> ZoneTree:
    """Build the lookup tree of one validated zone, routers included; with
    `signing`, a signed zone: its keys at the apex and a signer on the tree."""
    origin = dns.name.from_text(zone.origin)
    soa_rdata = dns.rdtypes.ANY.SOA.SOA(
        dns.rdataclass.IN, dns.rdatatype.SOA,
        dns.name.from_text(zone.soa.primary), dns.name.from_text(zone.soa.rname),
        zone.serial, zone.soa.refresh, zone.soa.retry, zone.soa.expire, zone.soa.negative_ttl,
    )
    soa = RRsetData(dns.rdatatype.SOA, zone.ttl, (soa_rdata,))
    nodes: dict[dns.name.Name, dict[int, RRsetData]] = {}
    apex = nodes.setdefault(origin, {})
    apex[dns.rdatatype.SOA] = soa
    ns_rdatas = tuple(
        dns.rdtypes.ANY.NS.NS(dns.rdataclass.IN, dns.rdatatype.NS, dns.name.from_text(ns))
        for ns in zone.nameservers
    )
    apex[dns.rdatatype.NS] = RRsetData(dns.rdatatype.NS, zone.ttl, ns_rdatas)
    cuts = set()
    for rs in zone.rrsets:
        owner = dns.name.from_text(rs.name)
        node = nodes.setdefault(owner, {})
        node[_rdtype(rs.rtype)] = _rrset_data(rs, zone)
        if rs.rtype == "NS" and owner != origin:
            cuts.add(owner)
        # Every ancestor up to the apex exists (empty non-terminals, RFC 4592).
        parent = owner
        while parent != origin and len(parent) > len(origin):
            parent = parent.parent()
            nodes.setdefault(parent, {})
    signer = None
    if signing is not None and zone.dnssec is not None:
        signer = Signer(origin, signing)
        for rdtype, rdatas in signer.apex_rrsets(zone.ttl).items():
            apex[rdtype] = RRsetData(rdtype, zone.ttl, rdatas)
    return ZoneTree(origin, soa, min(zone.ttl, zone.soa.negative_ttl), nodes, ModelRef(zone),
                    {label_key(cut.labels): cut for cut in cuts}, frozenset(zone.regions),
                    signer)


def _rrset_data(rs: RecordSet, zone: Zone) -> RRsetData:
    rdtype = _rdtype(rs.rtype)
    router = Router(rs, zone) if rs.routing is not None else None
    alias = dns.name.from_text(rs.alias) if rs.alias else None
    return RRsetData(rdtype, rs.ttl, rs.rdatas, router, alias, rs.line)


def health_targets(trees: Mapping[dns.name.Name, ZoneTree]) -> dict[HealthKey, HealthCheck]:
    """Every distinct (zone, check, value) that a routed record asks to check."""
    out: dict[HealthKey, HealthCheck] = {}
    for tree in trees.values():
        for node in tree.nodes.values():
            for data in node.values():
                if data.router is None:
                    continue
                for pool in data.router.pools.values():
                    for value in pool.values:
                        if value.health_key is not None and value.check is not None:
                            out[value.health_key] = value.check
    return out
