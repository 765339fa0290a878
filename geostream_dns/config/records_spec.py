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

import dns.name
import dns.rdata

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
from geostream_dns.config.values import build_rdata
from geostream_dns.config.yamlpos import PosDict, PosList
from geostream_dns.core.model import RECORD_TYPES, ROUTABLE_TYPES, RecordSet, Region, Routing

RECORD_KEYS = ("type", "ttl", "value", "values", "routing")
GLUE_TYPES = ("A", "AAAA")


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


def _rtype(ck: Checker, value: Any, line: int, path: str) -> str | None:
    text = as_str(ck, value, line, path)
    if text is None:
        return None
    rtype = text.upper()
    if rtype == "SOA":
        ck.add(line, path, 'the SOA record is generated from the "soa" block')
        return None
    if rtype not in RECORD_TYPES:
        ck.add(line, path, f'unknown type "{text}"; expected one of {", ".join(RECORD_TYPES)}')
        return None
    return rtype


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
    """The checks that need every record of the zone at once."""
    by_name: dict[dns.name.Name, list[Draft]] = defaultdict(list)
    for d in drafts:
        by_name[d.name].append(d)
    delegations = [n for n, ds in by_name.items() if n != origin and _has(ds, "NS")]

    def has_address(target: dns.name.Name) -> bool:
        wildcard = dns.name.Name((b"*", *target.parent().labels)) if target != origin else None
        return any(_has(by_name.get(n, []), *GLUE_TYPES) for n in (target, wildcard) if n)

    for name, ds in by_name.items():
        first: dict[str, Draft] = {}
        for d in ds:
            if d.rtype in first:
                ck.add(
                    d.line,
                    d.path,
                    f"a second {d.rtype} record set for {name} (the first is on line "
                    f"{first[d.rtype].line})",
                )
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
            elif d.rtype == "ALIAS":
                clash = [t for t in others if t in ("A", "AAAA", "CNAME")]
                if clash:
                    ck.add(
                        d.line,
                        d.path,
                        f"an ALIAS cannot share its name with {', '.join(clash)} records",
                    )
                _check_alias_target(ck, d, origin, has_address)
        cuts = [c for c in delegations if name.is_subdomain(c)]
        if not cuts:
            continue
        cut = min(cuts, key=lambda c: len(c.labels))  # the topmost zone cut
        for d in ds:
            if d.rtype in GLUE_TYPES or (d.rtype == "NS" and name == cut):
                continue
            ck.add(
                d.line,
                d.path,
                f"only glue (A, AAAA) can be at or below the delegation {cut}, not {d.rtype}",
            )
    for cut in delegations:
        for d in by_name[cut]:
            if d.rtype != "NS" or d.rrset is None:
                continue
            for rdata in d.rrset.rdatas:
                target = rdata.target  # type: ignore[attr-defined]
                if target.is_subdomain(cut) and not has_address(target):
                    ck.add(
                        d.line,
                        d.path,
                        f"{target} is inside the delegation and needs an A or AAAA glue record",
                    )
    for ns, line, path in nameservers:
        if ns.is_subdomain(origin) and not has_address(ns):
            ck.add(line, path, f"{ns} is inside the zone but has no A or AAAA record")


def _check_alias_target(
    ck: Checker, d: Draft, origin: dns.name.Name, has_address: Callable[[dns.name.Name], bool]
) -> None:
    if d.rrset is None or d.rrset.alias is None:
        return
    target = dns.name.from_text(d.rrset.alias)
    vpath = join(d.path, "value")
    if not target.is_subdomain(origin):
        ck.add(d.line, vpath, f"the ALIAS target {target} must be inside the zone {origin}")
    elif not has_address(target):
        ck.add(d.line, vpath, f"the ALIAS target {target} has no A or AAAA record")


def _has(drafts: list[Draft], *rtypes: str) -> bool:
    return any(d.rtype in rtypes for d in drafts)
