"""Validation of the ``records`` block: each record set, then the zone's shape.

Works in two passes. The first reads every record on its own (type, TTL,
values, routing) into a :class:`Draft` that keeps its owner name, type, line
and path even when its values are invalid. The second looks at the drafts
together, by owner name: one set per type, CNAME and ALIAS beside other data,
delegations and their glue, ALIAS targets, and the apex NS hosts.

Paths name a record as written: ``records.www`` for a single mapping,
``records.www[1]`` for the second item of a list, ``records.@`` for the apex
(written ``''`` or ``'@'``). List indexes are 0-based.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdatatype

from geostream_dns.config.fields import (
    Checker,
    absolute_name,
    as_list,
    as_map,
    as_str,
    as_ttl,
    check_keys,
    describe,
    index,
    join,
    label_problem,
)
from geostream_dns.config.routing_spec import parse_routing
from geostream_dns.config.values import build_rdata, is_generic_type
from geostream_dns.config.yamlpos import PosDict, PosList
from geostream_dns.core.model import RECORD_TYPES, ROUTABLE_TYPES, RecordSet, Region, Routing
from geostream_dns.core.snapshot import ALIAS as ALIAS_TYPE

RECORD_KEYS = ("type", "ttl", "value", "values", "routing")
GLUE_TYPES = ("A", "AAAA")
AT_CUT_TYPES = ("NS", "DS")  # what belongs at a delegation point



@dataclass
class Draft:
    """One record set as read, valid or not; ``rrset`` is None when it is not."""

    name: dns.name.Name
    rtype: str
    line: int
    path: str
    rrset: RecordSet | None


# A DNS message is at most 65,535 bytes; keep room for the header, the
# question (up to 259 bytes) and our OPT record.
MAX_RRSET_WIRE = 65_000

def parse_records(
    ck: Checker,
    value: Any,
    line: int,
    origin: dns.name.Name,
    zone_ttl: int,
    regions: dict[str, Region],
    healthchecks: set[str],
) -> list[Draft]:
    """Every record set written under ``records``, each checked on its own."""
    path = "records"
    m = as_map(ck, value, line, path)
    if m is None:
        return []
    check_keys(ck, m, path, m.keys())  # duplicate labels
    drafts: list[Draft] = []
    for label, spec in m.items():
        kline = m.line_of(label)
        if isinstance(label, int) and not isinstance(label, bool):
            label = str(label)
        if not isinstance(label, str):
            ck.add(kline, path, f"expected a label, got {describe(label)}")
            continue
        apex = label in ("", "@")
        lpath = join(path, "@" if apex else label)
        name = _owner(ck, label, kline, lpath, origin)
        if name is None:
            continue
        if isinstance(spec, PosList):
            items = as_list(ck, spec, kline, lpath)
            for i, item in enumerate(items or ()):
                draft = _record(
                    ck,
                    item,
                    spec.lines[i],
                    index(lpath, i),
                    name,
                    zone_ttl,
                    regions,
                    healthchecks,
                )
                if draft is not None:
                    drafts.append(draft)
        elif isinstance(spec, PosDict):
            draft = _record(ck, spec, kline, lpath, name, zone_ttl, regions, healthchecks)
            if draft is not None:
                drafts.append(draft)
        else:
            ck.add(kline, lpath, f"expected a record or a list of records, got {describe(spec)}")
    return drafts


def _owner(
    ck: Checker, label: str, line: int, path: str, origin: dns.name.Name
) -> dns.name.Name | None:
    if label in ("", "@"):
        return origin
    if label.endswith("."):
        ck.add(line, path, f'"{label}" must be relative to the zone (no trailing dot)')
        return None
    why = label_problem(label.split("."))
    if why is None:
        try:
            return dns.name.from_text(label.lower(), origin)
        except dns.name.NameTooLong:
            why = f"with the zone appended it is longer than 255 bytes ({origin})"
        except dns.exception.DNSException as exc:
            why = str(exc).rstrip(".").lower()
    ck.add(line, path, f'"{label}" is not a valid label: {why}')
    return None


def _record(
    ck: Checker,
    value: Any,
    line: int,
    path: str,
    name: dns.name.Name,
    zone_ttl: int,
    regions: dict[str, Region],
    healthchecks: set[str],
) -> Draft | None:
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    before = len(ck.problems)
    check_keys(ck, m, path, RECORD_KEYS, ("type",), line)
    if "type" not in m:
        return None
    rtype = _rtype(ck, m["type"], m.line_of("type"), join(path, "type"))
    if rtype is None:
        return None
    ttl: int | None = zone_ttl
    if "ttl" in m:
        ttl = as_ttl(ck, m["ttl"], m.line_of("ttl"), join(path, "ttl"))
    routed = "routing" in m
    raw = _raw_values(ck, m, line, path, rtype, routed)
    rdatas: list[dns.rdata.Rdata] = []
    alias: str | None = None
    seen: dict[dns.rdata.Rdata, str] = {}
    for v, vline, vpath in raw:
        if rtype == "ALIAS":
            target = absolute_name(ck, v, vline, vpath)
            alias = None if target is None else target.to_text()
            continue
        rdata = build_rdata(ck, rtype, v, vline, vpath)
        if rdata is None:
            continue
        if rdata in seen:
            ck.add(vline, vpath, f"duplicate of {seen[rdata]}")
            continue
        seen[rdata] = vpath.rpartition(".")[2]
        rdatas.append(rdata)
    if rtype == "NS" and name.labels and name.labels[0] == b"*":
        ck.add(line, path, "a wildcard cannot be a delegation (RFC 4592 §4.2)")
    # Each record costs its data plus 12 bytes (compressed owner, type, class,
    # TTL, length); an answer must fit one DNS message, even over TCP.
    wire_size = sum(12 + len(r.to_digestable()) for r in rdatas)
    if wire_size > MAX_RRSET_WIRE:
        ck.add(line, path, f"the record set takes {wire_size:,} bytes on the wire; an answer "
                           f"must fit one DNS message (at most {MAX_RRSET_WIRE:,} bytes here)")
    routing: Routing | None = None
    if routed:
        rpath, rline = join(path, "routing"), m.line_of("routing")
        if rtype not in ROUTABLE_TYPES:
            ck.add(rline, rpath, f"routing only applies to {', '.join(ROUTABLE_TYPES)} records")
        else:
            routing = parse_routing(
                ck, m["routing"], rline, rpath, rtype, regions, healthchecks, bool(raw)
            )
    rrset = None
    if len(ck.problems) == before and ttl is not None:
        rrset = RecordSet(
            name=name.to_text(),
            rtype=rtype,
            ttl=ttl,
            rdatas=tuple(rdatas),
            routing=routing,
            alias=alias,
            line=line,
        )
    return Draft(name, rtype, line, path, rrset)


# Types a zone cannot hold: generated by the server (SOA, DNSSEC signatures,
# keys and denial records, made when the zone has `dnssec:`), meta types that
# only appear in messages, and reserved numbers.
_GENERATED = {"SOA": 'the SOA record is generated from the "soa" block'}
_DNSSEC = ("RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY")


def _rtype(ck: Checker, value: Any, line: int, path: str) -> str | None:
    text = as_str(ck, value, line, path)
    if text is None:
        return None
    rtype = text.upper()
    if is_generic_type(rtype):
        return _generic_type(ck, text, line, path)
    if rtype in _GENERATED:
        ck.add(line, path, _GENERATED[rtype])
        return None
    if rtype in RECORD_TYPES:
        return rtype
    hint = ""
    try:
        number = int(dns.rdatatype.from_text(rtype))
        hint = f" ({rtype} is TYPE{number})"
    except (dns.rdatatype.UnknownRdatatype, ValueError):
        pass
    ck.add(line, path, f'unknown type "{text}"; expected one of {", ".join(RECORD_TYPES)}, '
                       f"or TYPEnnn with RFC 3597 generic data for any other type{hint}")
    return None


def _generic_type(ck: Checker, text: str, line: int, path: str) -> str | None:
    number = int(text[4:])
    rdtype = dns.rdatatype.RdataType.make(number) if 0 < number <= 65535 else None
    name = dns.rdatatype.to_text(rdtype) if rdtype is not None else text
    if rdtype is None:
        ck.add(line, path, f'"{text}": a type number is 1..65535')
    elif name in RECORD_TYPES or name in _GENERATED:
        ck.add(line, path, f'"{text}" is {name}: write type {name}')
    elif dns.rdatatype.is_metatype(rdtype) or name in ("OPT", "ALIAS") or number == ALIAS_TYPE:
        ck.add(line, path, f'"{text}" ({name}) is a meta type that a zone cannot hold')
    elif name in _DNSSEC:
        ck.add(line, path, f'"{text}" ({name}) is made by the server when the zone is signed')
    else:
        return f"TYPE{number}"
    return None


def _raw_values(
    ck: Checker, m: PosDict, line: int, path: str, rtype: str, routed: bool
) -> list[tuple[Any, int, str]]:
    """(value, line, path) of each of the record's own values, as written."""
    if "value" in m and "values" in m:
        ck.add(m.line_of("values"), path, '"value" and "values" cannot both be given')
        return []
    if "value" in m:
        return [(m["value"], m.line_of("value"), join(path, "value"))]
    if "values" not in m:
        if not routed:
            ck.add(line, path, 'needs "value" or "values"')
        return []
    vpath = join(path, "values")
    items = as_list(ck, m["values"], m.line_of("values"), vpath, empty=routed)
    if items is None:
        return []
    if rtype in ("CNAME", "ALIAS") and len(items) > 1:
        ck.add(m.line_of("values"), vpath, f"a {rtype} record has exactly one value")
        return []
    return [(v, items.lines[i], index(vpath, i)) for i, v in enumerate(items)]


def check_zone_shape(
    ck: Checker,
    drafts: list[Draft],
    origin: dns.name.Name,
    nameservers: list[tuple[dns.name.Name, int, str]],
) -> None:
    """The checks that need every record of the zone at once.

    Two things real zones hold, and BIND and Route 53 serve, are warnings, not
    problems: data at or below a delegation (beside its NS, or under it), which is
    answered with the referral like every name below a cut, and an in-zone name
    server host without an address.
    """
    by_name: dict[dns.name.Name, list[Draft]] = defaultdict(list)
    for d in drafts:
        by_name[d.name].append(d)
    delegations = [n for n, ds in by_name.items() if n != origin and _has(ds, "NS")]

    def has_address(target: dns.name.Name) -> bool:
        wildcard = dns.name.Name((b"*", *target.parent().labels)) if target != origin else None
        return any(_has(by_name.get(n, []), *GLUE_TYPES) for n in (target, wildcard) if n)

    def cut_above(name: dns.name.Name) -> dns.name.Name | None:
        cuts = [c for c in delegations if name.is_subdomain(c)]
        return min(cuts, key=lambda c: len(c.labels)) if cuts else None  # the topmost

    for name, ds in by_name.items():
        _check_name(ck, name, ds, origin)
        for d in ds:
            if d.rtype == "ALIAS":
                _check_alias_target(ck, d, origin, has_address, cut_above)
        cut = cut_above(name)
        if cut is None:
            continue
        for d in ds:
            if d.rtype in GLUE_TYPES or (d.rtype in AT_CUT_TYPES and name == cut):
                continue
            where = "beside" if name == cut else "below"
            ck.warn(d.line, d.path, f"{d.rtype} data {where} the delegation {cut} is not "
                                    f"served: queries get the referral")
    for cut in delegations:
        for d in by_name[cut]:
            if d.rtype != "NS" or d.rrset is None:
                continue
            for rdata in d.rrset.rdatas:
                target = rdata.target  # type: ignore[attr-defined]
                if target.is_subdomain(cut) and not has_address(target):
                    ck.warn(d.line, d.path, f"{target} is inside the delegation but has no A "
                                            f"or AAAA glue record")
    for ns, line, path in nameservers:
        if ns.is_subdomain(origin) and not has_address(ns):
            ck.warn(line, path, f"{ns} is inside the zone but has no A or AAAA record")


def _check_name(ck: Checker, name: dns.name.Name, ds: list[Draft], origin: dns.name.Name) -> None:
    """One record set per type, and what may stand beside what at one name."""
    first: dict[str, Draft] = {}
    for d in ds:
        if d.rtype in first:
            ck.add(d.line, d.path, f"a second {d.rtype} record set for {name} (the first is "
                                   f"on line {first[d.rtype].line})")
        first.setdefault(d.rtype, d)
    others = sorted({d.rtype for d in ds})
    for d in ds:
        if d.rtype == "CNAME" and name == origin:
            ck.add(d.line, d.path, "a CNAME cannot be at the zone apex")
        elif d.rtype == "CNAME" and len(others) > 1:
            rest = ", ".join(t for t in others if t != "CNAME")
            ck.add(d.line, d.path, f"a CNAME cannot share its name with other records ({rest})")
        elif d.rtype == "NS" and name == origin:
            ck.add(d.line, d.path, 'the apex NS records come from "nameservers"')
        elif d.rtype == "DS" and (name == origin or "NS" not in others):
            ck.add(d.line, d.path, "DS records belong at a delegation (a name with NS records "
                                   "below the apex)")
        elif d.rtype == "ALIAS":
            clash = [t for t in others if t in ("A", "AAAA", "CNAME")]
            if clash:
                ck.add(d.line, d.path,
                       f"an ALIAS cannot share its name with {', '.join(clash)} records")


def _check_alias_target(
    ck: Checker,
    d: Draft,
    origin: dns.name.Name,
    has_address: Callable[[dns.name.Name], bool],
    cut_above: Callable[[dns.name.Name], dns.name.Name | None],
) -> None:
    """An in-zone target needs an address; a target outside the zone (another hosted
    zone, a CDN or load balancer name, or a name below one of this zone's delegations)
    is resolved by the server, not checked here."""
    if d.rrset is None or d.rrset.alias is None:
        return
    target = dns.name.from_text(d.rrset.alias)
    if target.is_subdomain(origin) and cut_above(target) is None and not has_address(target):
        ck.add(d.line, join(d.path, "value"), f"the ALIAS target {target} has no A or AAAA "
                                              f"record")


def _has(drafts: list[Draft], *rtypes: str) -> bool:
    return any(d.rtype in rtypes for d in drafts)
