"""The answer cache's format: a compiled zone as bytes, and back, checked.

How this works: `encode` turns a `CompiledZone` (its tree, its pre-rendered
answers, the names it deferred) into msgpack behind a fixed header:

    b"GSZC" | format (2 bytes, big-endian) | SHA-256 of the payload (32) | payload

`decode` refuses anything whose magic, format or checksum is not exactly
right (`CacheFormatError`), so a corrupt, truncated or foreign entry is never
used: the caller builds the zone itself. msgpack holds only data — lists,
numbers, strings, bytes — so reading an entry can never run code (unlike
pickle).

What is kept is what a server needs to answer, in the form that is cheapest
to load: names as labels, records as uncompressed wire data (decoded into
dnspython objects only when a query needs them, see `RRsetData`), answers as
the bytes the resolver sends, and for each routed record the routing it
needs (pools, values, rules, regions, health checks). The validated zone
itself is not kept: a loaded tree gets it on demand from `load_model`.

Bump FORMAT whenever what is encoded, or how answers are rendered, changes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Callable
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import msgpack

from geostream_dns.core.answer import Answer
from geostream_dns.core.dnssec import Signer, ZoneSigning
from geostream_dns.core.model import (
    CatchAllRule,
    GeosRule,
    HealthCheck,
    LatencyRule,
    NearestRule,
    Pool,
    PoolValue,
    RecordSet,
    Region,
    Routing,
    Rule,
    Soa,
    SubnetsRule,
    Zone,
)
from geostream_dns.core.outcome import SNAPSHOT, STATIC, Outcomes
from geostream_dns.core.route.router import Router
from geostream_dns.core.snapshot import (
    ALIAS,
    CompiledZone,
    ModelRef,
    RRsetData,
    ZoneTree,
    label_key,
)

MAGIC = b"GSZC"
FORMAT = 2  # 2: signed zones (apex keys in the tree, DO=1 renderings beside answers)
_HEAD = struct.Struct("!4sH32s")


def _checked_name(labels: list[bytes]) -> dns.name.Name:
    return dns.name.Name(labels)


def _trusted_name(labels: list[bytes]) -> dns.name.Name:
    """A Name from labels this format wrote from a valid name: made without
    dnspython's per-label validation, which is most of the cost of loading a zone
    (ten times slower). Used only when it gives the very same Name (checked below)."""
    name = _new_name(dns.name.Name)
    _set(name, "labels", tuple(labels))
    return name


_new_name = dns.name.Name.__new__
_set = object.__setattr__
_sample = [b"www", b"Example", b"\x00\xff", b""]
try:
    _fast = _trusted_name(_sample)
    _name = (_trusted_name if _fast == dns.name.Name(_sample) and hash(_fast) == hash(
        dns.name.Name(_sample)) and _fast.to_wire() == dns.name.Name(_sample).to_wire()
        else _checked_name)
except (AttributeError, TypeError):  # a dnspython whose Name is built otherwise
    _name = _checked_name


class CacheFormatError(ValueError):
    """An answer cache entry that is corrupt, truncated or of another format."""


# -- encoding ----------------------------------------------------------------------------


def encode(unit: CompiledZone) -> bytes:
    tree = unit.tree
    zone = unit.source
    if zone is None:
        raise ValueError("only a zone compiled from a validated zone can be encoded")
    routers: list[Any] = []
    nodes: list[Any] = []
    for owner, node in tree.nodes.items():
        rrsets = []
        for rdtype, data in node.items():
            router_index = -1
            if data.router is not None:
                router_index = len(routers)
                routers.append(_routed_record(zone, owner, rdtype))
            rrsets.append([rdtype, data.ttl, list(data.wire()),
                           list(data.alias.labels) if data.alias is not None else None,
                           data.line, router_index])
        nodes.append([list(owner.labels), rrsets])
    payload = {
        "origin": tree.origin.to_text(),
        "key": unit.key,
        "negative_ttl": tree.negative_ttl,
        "zone": _zone_skeleton(zone),
        "nodes": nodes,
        "routers": routers,
        "answers": [[key, a.rcode, a.flags, a.ancount, a.nscount, a.arcount, a.body, a.qtype,
                     _signed(a.signed)]
                    for key, a in unit.answers.items()],
        "deferred": [[list(name.labels), rdtype] for name, rdtype in unit.deferred],
        "targets": [[check.name, target] for (_zone, _check, target), check
                    in sorted(unit.targets.items())],
    }
    body = msgpack.packb(payload, use_bin_type=True)
    return _HEAD.pack(MAGIC, FORMAT, hashlib.sha256(body).digest()) + body


def _signed(answer: Answer | None) -> list[Any] | None:
    """An answer's DO=1 rendering (signatures included), or None."""
    if answer is None:
        return None
    return [answer.rcode, answer.flags, answer.ancount, answer.nscount, answer.arcount,
            answer.body]


def _zone_skeleton(zone: Zone) -> list[Any]:
    soa = zone.soa
    return [zone.origin, zone.ttl, [soa.primary, soa.email, soa.refresh, soa.retry, soa.expire,
                                    soa.negative_ttl],
            list(zone.nameservers),
            [[r.name, r.lat, r.lon] for r in zone.regions.values()],
            [[c.name, c.protocol, c.port, c.path, c.host, list(c.expect_status), c.expect_body,
              c.interval, c.timeout, c.rise, c.fall, c.verify_tls, c.quorum]
             for c in zone.healthchecks.values()],
            zone.serial, zone.source]


def _routed_record(zone: Zone, owner: dns.name.Name, rdtype: int) -> list[Any]:
    name = owner.to_text()
    rtype = "ALIAS" if rdtype == ALIAS else dns.rdatatype.to_text(
        dns.rdatatype.RdataType.make(rdtype))
    rs = next(r for r in zone.rrsets if r.name == name and r.rtype == rtype)
    assert rs.routing is not None
    pools = [[p.name, p.region, p.answer,
              [[v.rdata.to_wire(), v.weight, v.healthcheck, v.status] for v in p.values],
              p.fallback] for p in rs.routing.pools.values()]
    return [rs.name, rs.rtype, rs.ttl, [r.to_wire() for r in rs.rdatas], rs.line, pools,
            [_rule(rule) for rule in rs.routing.rules]]


def _rule(rule: Rule) -> list[Any]:
    if isinstance(rule, GeosRule):
        return ["geos", rule.line, rule.pool, list(rule.geos)]
    if isinstance(rule, SubnetsRule):
        return ["subnets", rule.line, rule.pool, [str(n) for n in rule.subnets]]
    if isinstance(rule, NearestRule):
        return ["nearest", rule.line, list(rule.pools), [list(b) for b in rule.bias]]
    if isinstance(rule, LatencyRule):
        return ["latency", rule.line, list(rule.pools), [list(b) for b in rule.bias],
                rule.min_samples]
    return ["catch-all", rule.line, rule.pool]


# -- decoding ----------------------------------------------------------------------------


def decode(data: bytes, load_model: Callable[[], Zone],
           outcomes: Outcomes | None = None,
           signing: ZoneSigning | None = None) -> CompiledZone:
    """The compiled zone of an entry; CacheFormatError unless it is whole and ours.
    A signed zone's entry needs its `signing` (its keys never go into the cache):
    answers asked later (negative ones, wildcards) are signed with it."""
    if len(data) < _HEAD.size:
        raise CacheFormatError("shorter than its header")
    magic, version, digest = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CacheFormatError("not an answer cache entry")
    if version != FORMAT:
        raise CacheFormatError(f"format {version}, this server reads {FORMAT}")
    body = memoryview(data)[_HEAD.size:]
    if hashlib.sha256(body).digest() != digest:
        raise CacheFormatError("checksum mismatch: corrupt or truncated")
    try:
        payload = msgpack.unpackb(body, raw=False, use_list=True)
        return _unit(payload, load_model, outcomes or Outcomes(), signing)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, AssertionError,
            dns.exception.DNSException, msgpack.UnpackException) as exc:
        raise CacheFormatError(f"unreadable: {exc}") from None


def _unit(payload: dict[str, Any], load_model: Callable[[], Zone],
          outcomes: Outcomes, signing: ZoneSigning | None = None) -> CompiledZone:
    skeleton = _zone(payload["zone"])
    origin = dns.name.from_text(payload["origin"])
    zone_text = origin.to_text()
    # Routing is compiled on the first query that needs it, not here.
    routers = [Router.later(spec[0], spec[1], zone_text, _later(spec, skeleton))
               for spec in payload["routers"]]
    nodes: dict[dns.name.Name, dict[int, RRsetData]] = {}
    cuts: dict[tuple[bytes, ...], dns.name.Name] = {}
    for labels, rrsets in payload["nodes"]:
        owner = _name(labels)
        node: dict[int, RRsetData] = {}
        for rdtype, ttl, wire, alias, line, router_index in rrsets:
            node[rdtype] = RRsetData(
                rdtype, ttl, None, routers[router_index] if router_index >= 0 else None,
                _name(alias) if alias is not None else None, line, tuple(wire))
            if rdtype == dns.rdatatype.NS and owner != origin:
                cuts[label_key(owner.labels)] = owner
        nodes[owner] = node
    soa = nodes[origin][dns.rdatatype.SOA]
    signed_entry = any(row[8] is not None for row in payload["answers"])
    if signed_entry and signing is None:
        raise CacheFormatError("a signed zone's entry, but no keys to sign it with")
    signer = Signer(origin, signing) if signing is not None and signed_entry else None
    tree = ZoneTree(origin, soa, int(payload["negative_ttl"]), nodes, ModelRef(load=load_model),
                    cuts, frozenset(skeleton.regions), signer)
    answers = {}
    for key, rcode, flags, an, ns, ar, body, qtype, signed in payload["answers"]:
        outcome = outcomes.get(qtype, rcode, zone_text, STATIC, SNAPSHOT)
        answer = Answer(rcode, False, an, ns, ar, body, outcome, (), zone_text, qtype,
                        extra_flags=flags)
        if signed is not None:
            s_rcode, s_flags, s_an, s_ns, s_ar, s_body = signed
            answer.signed = Answer(s_rcode, False, s_an, s_ns, s_ar, s_body, outcome, (),
                                   zone_text, qtype, extra_flags=s_flags)
        answers[key] = answer
    deferred = tuple((_name(labels), rdtype) for labels, rdtype in payload["deferred"])
    checks = skeleton.healthchecks
    targets = {(zone_text, check, target): checks[check] for check, target in payload["targets"]}
    return CompiledZone(tree, answers, deferred, str(payload["key"]), targets)


def _later(spec: list[Any], skeleton: Zone) -> Callable[[], tuple[RecordSet, Zone]]:
    return lambda: (_record_set(spec), skeleton)


def _zone(raw: list[Any]) -> Zone:
    """The parts of the zone its routers need (no record sets)."""
    origin, ttl, soa, nameservers, regions, checks, serial, source = raw
    return Zone(origin, ttl, Soa(*soa), tuple(nameservers),
                {name: Region(name, lat, lon) for name, lat, lon in regions},
                {c[0]: HealthCheck(c[0], c[1], c[2], c[3], c[4], tuple(c[5]), c[6], c[7], c[8],
                                   c[9], c[10], c[11], c[12]) for c in checks},
                (), serial, source)


def _rdata(rdtype: int, wire: bytes) -> dns.rdata.Rdata:
    return dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype), wire,
                               0, len(wire))


def _record_set(spec: list[Any]) -> RecordSet:
    name, rtype, ttl, own, line, pools, rules = spec
    rdtype = ALIAS if rtype == "ALIAS" else int(dns.rdatatype.from_text(rtype))
    return RecordSet(
        name, rtype, ttl, tuple(_rdata(rdtype, w) for w in own),
        Routing({p[0]: Pool(p[0], p[1], p[2],
                            tuple(PoolValue(_rdata(rdtype, w), weight, check, status)
                                  for w, weight, check, status in p[3]), p[4])
                 for p in pools},
                tuple(_decode_rule(r) for r in rules)),
        None, line)


def _decode_rule(raw: list[Any]) -> Rule:
    kind, line = raw[0], raw[1]
    if kind == "geos":
        return GeosRule(raw[2], tuple(raw[3]), line)
    if kind == "subnets":
        return SubnetsRule(raw[2], tuple(ipaddress.ip_network(n) for n in raw[3]), line)
    if kind == "nearest":
        return NearestRule(tuple(raw[2]), tuple((p, float(km)) for p, km in raw[3]), line)
    if kind == "latency":
        return LatencyRule(tuple(raw[2]), tuple((p, float(ms)) for p, ms in raw[3]),
                           int(raw[4]), line)
    if kind == "catch-all":
        return CatchAllRule(raw[2], line)
    raise ValueError(f"unknown rule kind {kind!r}")
