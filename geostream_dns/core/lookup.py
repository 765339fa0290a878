"""Name lookup inside the hosted zones: the RFC 1034 §4.3.2 algorithm.

`lookup(zones, qname, qtype)` says what the answer is made of, not how it
is rendered: a `Resolution` with the rcode, the AA bit and the RRsets of each
section. Answer parts may be routed (their records are chosen per client by
`core.route`), everything else is static. It handles zone cuts (referrals with
glue, except DS at the cut which the parent answers), wildcards with the
closest-encloser rule and empty non-terminals (RFC 4592), CNAME chains across
hosted zones (RFC 6604 rcode of the last name), ALIAS flattening and minimal
ANY answers (RFC 8482).

An ALIAS answers A and AAAA with its target's records and the target's TTL.
A target inside the hosted zones is looked up here; a target outside them (or
below a delegation) is *external*: its records are what the background
resolver last found (`ZoneSet.external`), and until it has found anything the
answer is SERVFAIL, so resolvers retry rather than cache an empty answer. A
resolution that used an external target names it (`Resolution.external`), so
its answer can be rendered again when the target's records change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import dns.name
import dns.rdatatype

from geostream_dns.core.render import RRs
from geostream_dns.core.snapshot import ALIAS, ExternalTarget, Node, RRsetData, ZoneTree
from geostream_dns.core.wire import NOERROR, NXDOMAIN, REFUSED, SERVFAIL

MAX_CHAIN = 12  # CNAME hops followed before giving up (loops end here too)
WILDCARD = b"*"

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
CNAME = dns.rdatatype.CNAME
NS = dns.rdatatype.NS
SOA = dns.rdatatype.SOA
DS = dns.rdatatype.DS
ANY = dns.rdatatype.ANY

# The RRset a minimal ANY answer (RFC 8482 §4.2) returns, in order of preference.
ANY_PREFERENCE = (A, AAAA, CNAME, dns.rdatatype.MX, dns.rdatatype.TXT, NS, SOA)


@dataclass(frozen=True, slots=True)
class Part:
    """One answer RRset: `data` answered with owner `owner` and TTL `ttl`."""

    owner: dns.name.Name
    data: RRsetData
    ttl: int

    @property
    def routed(self) -> bool:
        return self.data.router is not None

    def static_rrs(self) -> RRs:
        return RRs(self.owner, self.data.rdtype, self.ttl, self.data.rdatas)


@dataclass(frozen=True, slots=True)
class Resolution:
    rcode: int
    aa: bool
    answer: tuple[Part, ...] = ()
    authority: tuple[RRs, ...] = ()
    additional: tuple[RRs, ...] = ()
    zone: ZoneTree | None = None
    external: dns.name.Name | None = None  # the external ALIAS target the answer comes from

    @property
    def routed(self) -> bool:
        return any(p.data.router is not None for p in self.answer)


REFUSED_RESOLUTION = Resolution(REFUSED, False)
SERVFAIL_RESOLUTION = Resolution(SERVFAIL, False)  # a zone that should be here never loaded


class ZoneFinder(Protocol):
    @property
    def failed(self) -> frozenset[tuple[bytes, ...]]: ...

    def find_zone(self, name: dns.name.Name) -> ZoneTree | None: ...

    def external(self, target: dns.name.Name) -> ExternalTarget | None: ...
    def unloaded(self, name: dns.name.Name, zone: ZoneTree | None) -> bool: ...


def lookup(zones: ZoneFinder, qname: dns.name.Name, qtype: int) -> Resolution:
    zone = zones.find_zone(qname)
    if zones.failed and zones.unloaded(qname, zone):
        return SERVFAIL_RESOLUTION
    if zone is None:
        return REFUSED_RESOLUTION
    if qtype == DS and qname == zone.origin and len(qname) > 1:
        # DS belongs to the parent side of a cut (RFC 4035 §3.1.4.1): a hosted
        # parent that delegates this zone answers it, with its own data and keys.
        parent = zones.find_zone(qname.parent())
        if parent is not None and parent.find_cut(qname) == qname:
            zone = parent
    answer: list[Part] = []
    seen: set[dns.name.Name] = set()
    name = qname
    while True:
        cut = zone.find_cut(name)
        if cut is not None and not (qtype == DS and name == cut):
            if answer:  # a CNAME led below a cut: the resolver follows the referral itself
                return Resolution(NOERROR, True, tuple(answer), zone=zone)
            return _referral(zone, cut)
        node = zone.nodes.get(name)
        if node is None:
            node = _wildcard(zone, name)
            if node is None:
                return Resolution(NXDOMAIN, True, tuple(answer), (_negative_soa(zone),), zone=zone)
        if qtype == ANY:
            return _minimal_any(zone, name, node, answer)
        found = node.get(qtype) if qtype != ALIAS else None
        if found is not None:
            answer.append(Part(name, found, found.ttl))
            return Resolution(NOERROR, True, tuple(answer), zone=zone)
        if qtype in (A, AAAA) and ALIAS in node:
            target = node[ALIAS].alias
            assert target is not None
            if is_external(zones, target):
                resolved = zones.external(target)
                if resolved is None:  # not resolved yet: nothing to answer with
                    return Resolution(SERVFAIL, False, zone=zone, external=target)
                flattened = resolved.rrset(qtype)
                if flattened is None:
                    return Resolution(NOERROR, True, tuple(answer), (_negative_soa(zone),),
                                      zone=zone, external=target)
                answer.append(Part(name, flattened, flattened.ttl))
                return Resolution(NOERROR, True, tuple(answer), zone=zone, external=target)
            flattened = _flatten_alias(zones, target, qtype)
            if flattened is not None:  # answered with the target's own TTL
                answer.append(Part(name, flattened, flattened.ttl))
                return Resolution(NOERROR, True, tuple(answer), zone=zone)
        cname = node.get(CNAME)
        if cname is None:
            return Resolution(NOERROR, True, tuple(answer), (_negative_soa(zone),), zone=zone)
        answer.append(Part(name, cname, cname.ttl))
        seen.add(name)
        if cname.router is not None or len(answer) >= MAX_CHAIN:
            # A routed CNAME's target depends on the client; the resolver
            # follows it with a new query.
            return Resolution(NOERROR, True, tuple(answer), zone=zone)
        target = cname.rdatas[0].target  # type: ignore[attr-defined]
        next_zone = zones.find_zone(target)
        if next_zone is None or target in seen:
            return Resolution(NOERROR, True, tuple(answer), zone=zone)
        zone, name = next_zone, target


def _wildcard(zone: ZoneTree, name: dns.name.Name) -> Node | None:
    """The wildcard node that synthesizes `name`, if any (RFC 4592 §3.3.1)."""
    encloser = name.parent()
    while encloser not in zone.nodes:
        if len(encloser) <= len(zone.origin):
            return None
        encloser = encloser.parent()
    return zone.nodes.get(dns.name.Name((WILDCARD, *encloser.labels)))


def _negative_soa(zone: ZoneTree) -> RRs:
    return RRs(zone.origin, SOA, zone.negative_ttl, zone.soa.rdatas)


def _referral(zone: ZoneTree, cut: dns.name.Name) -> Resolution:
    ns = zone.nodes[cut][NS]
    glue: list[RRs] = []
    for rdata in ns.rdatas:
        target = rdata.target  # type: ignore[attr-defined]
        if not target.is_subdomain(zone.origin):
            continue
        node = zone.nodes.get(target)
        for rdtype in (A, AAAA):
            data = node.get(rdtype) if node is not None else None
            if data is not None and data.router is None:
                glue.append(RRs(target, rdtype, data.ttl, data.rdatas))
    return Resolution(NOERROR, False, (), (RRs(cut, NS, ns.ttl, ns.rdatas),), tuple(glue), zone)


def is_external(zones: ZoneFinder, target: dns.name.Name) -> bool:
    """True for an ALIAS target the hosted zones do not answer for: outside every
    hosted zone, or at or below a delegation."""
    target_zone = zones.find_zone(target)
    return target_zone is None or target_zone.find_cut(target) is not None


def _flatten_alias(zones: ZoneFinder, target: dns.name.Name, qtype: int) -> RRsetData | None:
    """The in-zone target's records of `qtype` (routed when the target is)."""
    target_zone = zones.find_zone(target)
    if target_zone is None:
        return None
    node = target_zone.nodes.get(target)
    if node is None:  # a target only a wildcard covers (config accepts it)
        node = _wildcard(target_zone, target)
    return node.get(qtype) if node is not None else None


def _minimal_any(zone: ZoneTree, name: dns.name.Name, node: Node,
                 answer: list[Part]) -> Resolution:
    for rdtype in ANY_PREFERENCE:
        data = node.get(rdtype)
        if data is not None:
            answer.append(Part(name, data, data.ttl))
            return Resolution(NOERROR, True, tuple(answer), zone=zone)
    for other, data in sorted(node.items()):
        if other != ALIAS:
            answer.append(Part(name, data, data.ttl))
            return Resolution(NOERROR, True, tuple(answer), zone=zone)
    return Resolution(NOERROR, True, tuple(answer), (_negative_soa(zone),), zone=zone)
