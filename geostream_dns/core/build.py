"""Build a snapshot from zones (pure; runs off the event loop).

How this works, in two steps:

1. `compile_unit` compiles one zone on its own into a `CompiledZone`: its
   tree (routers included) and its answers rendered to wire bytes. It renders
   only what depends on nothing but the zone itself and on which hosted zones
   sit below it (`children`): an answer whose CNAME chain or ALIAS leaves the
   zone, a routed name (answered per client), and names at or below a hosted
   child zone are *deferred* instead. So a compiled zone can be kept and
   shared — between builds, and between the servers of a fleet through the
   answer cache (`core.cachefmt`) — keyed by its content and its children.
2. `assemble` puts compiled zones together: the trees into one zone set, the
   answers into one table, and the deferred names looked up once against the
   whole set (a routed name becomes a `RoutedName`, anything else is
   rendered).

`build_snapshot` does both for validated zones, reusing the compiled zones of
the previous snapshot whose `Zone` object did not change (stores hand back
the very same objects for zones that did not change) and whose child zones
are the same: a one-record change among 10,000 zones compiles one zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dns.name
import dns.rdatatype

from geostream_dns.core.answer import Answer, RoutedName, render_answer
from geostream_dns.core.health import HealthKey
from geostream_dns.core.lookup import CNAME, Resolution, lookup
from geostream_dns.core.model import HealthCheck, Zone
from geostream_dns.core.outcome import SNAPSHOT, STATIC, Outcomes
from geostream_dns.core.snapshot import (
    ALIAS,
    CompiledZone,
    Snapshot,
    ZoneSet,
    ZoneTree,
    compile_zone,
    health_targets,
    question_key,
)

_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))


def key_is_safe(key: bytes) -> bool:
    """True when a question key may be stored for the resolver's fast path.

    The resolver lower-cases the whole question (name, type and class) with one
    `translate`, and finds the end of the name at its first zero byte. So only
    keys whose type and class bytes hold no ASCII letter (they cannot change),
    and whose first zero byte is the root label's (no label holds a zero byte),
    are stored: then a mangled key or a misread end can only miss and fall to
    the slow path.
    """
    return _LETTERS.isdisjoint(key[-4:]) and key.find(0) == len(key) - 5


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.*")


def children_of(origins: Iterable[str]) -> dict[str, frozenset[str]]:
    """Each origin's hosted zones below it (text, absolute)."""
    out: dict[str, set[str]] = {origin: set() for origin in origins}
    for origin in out:
        for holder in _parents(origin):
            if holder in out:
                out[holder].add(origin)
    return {origin: frozenset(found) for origin, found in out.items()}


def _parents(origin: str) -> list[str]:
    """Every name above `origin`, as text, up to the root ("."). Plain names
    (the common case: 10,000 zones in a few milliseconds) by their text;
    others (escapes, non-ASCII) through dnspython."""
    if origin.endswith(".") and origin != "." and ".." not in origin \
            and _PLAIN.issuperset(origin):
        out, at = [], origin.find(".")
        while at != len(origin) - 1:
            out.append(origin[at + 1:])
            at = origin.find(".", at + 1)
        out.append(".")
        return out
    parents, name = [], dns.name.from_text(origin)
    while len(name) > 1:
        name = name.parent()
        parents.append(name.to_text())
    return parents


def unit_key(digest: str, children: frozenset[str]) -> str:
    """What a compiled zone depends on: the zone's content and its child zones."""
    return digest + "|" + ",".join(sorted(children))


def compile_unit(zone: Zone, key: str, children: frozenset[str] = frozenset(),
                 outcomes: Outcomes | None = None) -> CompiledZone:
    """Compile one validated zone and render what depends on it alone."""
    tree = compile_zone(zone)
    outcomes = outcomes if outcomes is not None else Outcomes()
    child_names = tuple(dns.name.from_text(c) for c in children)
    alone = ZoneSet.of({tree.origin: tree})
    zone_text = tree.origin.to_text()
    answers: dict[bytes, Answer] = {}
    deferred: list[tuple[dns.name.Name, int]] = []
    for name, rdtype in _questions(tree):
        if any(name.is_subdomain(child) for child in child_names):
            deferred.append((name, rdtype))
            continue
        res = lookup(alone, name, rdtype)
        if res.routed or not _self_contained(tree, name, res, child_names):
            deferred.append((name, rdtype))
            continue
        key_bytes = question_key(name, rdtype)
        if key_is_safe(key_bytes):
            outcome = outcomes.get(rdtype, res.rcode, zone_text, STATIC, SNAPSHOT)
            answers[key_bytes] = render_answer(name, rdtype, res, outcome)
    return CompiledZone(tree, answers, tuple(deferred), key, health_targets({tree.origin: tree}),
                        zone)


def _questions(tree: ZoneTree) -> Iterable[tuple[dns.name.Name, int]]:
    """Every (name, type) the zone holds data for; an ALIAS answers A and AAAA."""
    for name, node in tree.nodes.items():
        for rdtype in node:
            if rdtype != ALIAS:
                yield name, rdtype
        if ALIAS in node:
            yield name, dns.rdatatype.A
            yield name, dns.rdatatype.AAAA


def _self_contained(tree: ZoneTree, name: dns.name.Name, res: Resolution,
                    children: tuple[dns.name.Name, ...]) -> bool:
    """True when the answer would be the same whatever other zones are hosted:
    every record is the zone's own, and no CNAME or ALIAS on the way points out
    of the zone (or into a hosted child zone)."""
    if res.zone is not tree:
        return False
    origin = tree.origin

    def inside(target: dns.name.Name) -> bool:
        return target.is_subdomain(origin) and not any(target.is_subdomain(c)
                                                       for c in children)

    owners = [name, *(part.owner for part in res.answer)]
    for owner in owners:
        if not inside(owner):
            return False
        node = tree.nodes.get(owner)
        alias = node.get(ALIAS) if node is not None else None
        if alias is not None and alias.alias is not None and not inside(alias.alias):
            return False
    for part in res.answer:
        if part.data.rdtype == CNAME:
            if not inside(part.data.rdatas[0].target):  # type: ignore[attr-defined]
                return False
    return True


def assemble(units: Iterable[CompiledZone], generation: int) -> Snapshot:
    """Put compiled zones together; look up and render what each one deferred."""
    units = list(units)
    trees = {unit.tree.origin: unit.tree for unit in units}
    zone_set = ZoneSet.of(trees)
    answers: dict[bytes, Answer] = {}
    for unit in units:
        answers.update(unit.answers)
    routed: dict[bytes, RoutedName] = {}
    outcomes = Outcomes()
    for unit in units:
        for name, rdtype in unit.deferred:
            key = question_key(name, rdtype)
            if not key_is_safe(key):
                continue
            res = lookup(zone_set, name, rdtype)
            zone = res.zone.origin.to_text() if res.zone is not None else ""
            if res.routed:
                routed[key] = RoutedName(name, res, zone)
                answers.pop(key, None)
            elif key not in routed:
                outcome = outcomes.get(rdtype, res.rcode, zone, STATIC, SNAPSHOT)
                answers[key] = render_answer(name, rdtype, res, outcome)
    targets: dict[HealthKey, HealthCheck] = {}
    for unit in units:
        targets.update(unit.targets)
    return Snapshot(generation, zone_set, answers, routed,
                    {unit.tree.origin.to_text(): unit for unit in units}, targets)


def build_snapshot(zones: Iterable[Zone], generation: int,
                   previous: Snapshot | None = None) -> Snapshot:
    """Compile (or reuse) every zone and assemble the snapshot."""
    zones = list(zones)
    children = children_of(zone.origin for zone in zones)
    reusable: Mapping[str, CompiledZone] = previous.units if previous is not None else {}
    units = []
    outcomes = Outcomes()
    for zone in zones:
        key = unit_key(f"zone@{id(zone)}", children[zone.origin])
        unit = reusable.get(zone.origin)
        if unit is None or unit.source is not zone or unit.key != key:
            unit = compile_unit(zone, key, children[zone.origin], outcomes)
        units.append(unit)
    return assemble(units, generation)
