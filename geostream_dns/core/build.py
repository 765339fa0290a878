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

An ALIAS whose target is outside the hosted zones (a CDN or load balancer
name) answers with what the background resolver last found for the target.
`assemble` notes, per such target, the questions whose answers it makes
(`Snapshot.alias_questions`), and `with_externals` renders just those again
into a new snapshot when the resolver finds something new.

`build_snapshot` does both for validated zones, reusing the compiled zones of
the previous snapshot whose `Zone` object did not change (stores hand back
the very same objects for zones that did not change) and whose child zones
are the same: a one-record change among 10,000 zones compiles one zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import dns.name
import dns.rdatatype

from geostream_dns.core.answer import Answer, RoutedName, render_answer, render_signed
from geostream_dns.core.dnssec import ZoneSigning
from geostream_dns.core.health import HealthKey
from geostream_dns.core.lookup import CNAME, Resolution, lookup
from geostream_dns.core.model import HealthCheck, Zone
from geostream_dns.core.outcome import SNAPSHOT, STATIC, Outcomes
from geostream_dns.core.snapshot import (
    ALIAS,
    CompiledZone,
    ExternalTarget,
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


def unit_key(digest: str, children: frozenset[str],
             signing: ZoneSigning | None = None) -> str:
    """What a compiled zone depends on: the zone's content and its child zones (and,
    for a signed zone, its keys and signature window)."""
    key = digest + "|" + ",".join(sorted(children))
    return key if signing is None else key + "|" + signing.key_text()


def compile_unit(zone: Zone, key: str, children: frozenset[str] = frozenset(),
                 outcomes: Outcomes | None = None,
                 signing: ZoneSigning | None = None) -> CompiledZone:
    """Compile one validated zone and render what depends on it alone (signed too,
    for DO=1 queries, when the zone has `dnssec:` and `signing` is given)."""
    tree = compile_zone(zone, signing)
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
            answer = answers[key_bytes] = render_answer(name, rdtype, res, outcome)
            if answer.sign_later:
                answer.signed = render_signed(alone, name, rdtype, res, outcome)
                answer.sign_later = False
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
    if res.zone is not tree or res.external is not None:
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


def assemble(units: Iterable[CompiledZone], generation: int,
             externals: Mapping[dns.name.Name, ExternalTarget] | None = None) -> Snapshot:
    """Put compiled zones together; look up and render what each one deferred.
    `externals`: what the ALIAS targets outside the hosted zones resolved to."""
    units = list(units)
    trees = {unit.tree.origin: unit.tree for unit in units}
    zone_set = ZoneSet.of(trees, externals)
    answers: dict[bytes, Answer] = {}
    for unit in units:
        answers.update(unit.answers)
    routed: dict[bytes, RoutedName] = {}
    alias_questions: dict[dns.name.Name, list[tuple[dns.name.Name, int]]] = {}
    outcomes = Outcomes()
    for unit in units:
        for name, rdtype in unit.deferred:
            key = question_key(name, rdtype)
            res = lookup(zone_set, name, rdtype)
            if res.external is not None:
                alias_questions.setdefault(res.external, []).append((name, rdtype))
            if not key_is_safe(key):
                continue
            zone = res.zone.origin.to_text() if res.zone is not None else ""
            if res.routed:
                routed[key] = RoutedName(name, res, zone)
                answers.pop(key, None)
            elif key not in routed:
                outcome = outcomes.get(rdtype, res.rcode, zone, STATIC, SNAPSHOT)
                answer = answers[key] = render_answer(name, rdtype, res, outcome)
                if answer.sign_later:
                    answer.signed = render_signed(zone_set, name, rdtype, res, outcome)
                    answer.sign_later = False
    targets: dict[HealthKey, HealthCheck] = {}
    for unit in units:
        targets.update(unit.targets)
    return Snapshot(generation, zone_set, answers, routed,
                    {unit.tree.origin.to_text(): unit for unit in units}, targets,
                    {target: tuple(questions) for target, questions in alias_questions.items()})


def with_externals(snapshot: Snapshot,
                   externals: Mapping[dns.name.Name, ExternalTarget]) -> Snapshot:
    """The snapshot with the ALIAS targets outside the hosted zones answered from
    `externals`: only the answers of targets whose records changed are rendered
    again; the snapshot itself when none did."""
    old = snapshot.zone_set.externals
    wanted = snapshot.alias_questions
    kept = {target: externals[target] for target in wanted if target in externals}
    changed = [target for target in wanted if kept.get(target) != old.get(target)]
    if not changed and len(kept) == len(old):
        return snapshot
    zone_set = ZoneSet(snapshot.zone_set.trees, snapshot.zone_set.index, kept)
    answers = dict(snapshot.answers)
    outcomes = Outcomes()
    for target in changed:
        for name, rdtype in wanted[target]:
            key = question_key(name, rdtype)
            if not key_is_safe(key) or key in snapshot.routed:
                continue
            res = lookup(zone_set, name, rdtype)
            zone = res.zone.origin.to_text() if res.zone is not None else ""
            outcome = outcomes.get(rdtype, res.rcode, zone, STATIC, SNAPSHOT)
            answers[key] = render_answer(name, rdtype, res, outcome)
    return dataclasses.replace(snapshot, zone_set=zone_set, answers=answers)


def build_snapshot(zones: Iterable[Zone], generation: int,
                   previous: Snapshot | None = None,
                   signing: Mapping[str, ZoneSigning] | None = None) -> Snapshot:
    """Compile (or reuse) every zone and assemble the snapshot; `signing` holds the
    keys and window of each signed zone, by origin."""
    zones = list(zones)
    children = children_of(zone.origin for zone in zones)
    reusable: Mapping[str, CompiledZone] = previous.units if previous is not None else {}
    units = []
    outcomes = Outcomes()
    for zone in zones:
        signs = signing.get(zone.origin) if signing is not None and zone.dnssec else None
        key = unit_key(f"zone@{id(zone)}", children[zone.origin], signs)
        unit = reusable.get(zone.origin)
        if unit is None or unit.source is not zone or unit.key != key:
            unit = compile_unit(zone, key, children[zone.origin], outcomes, signs)
        units.append(unit)
    return assemble(units, generation,
                    previous.zone_set.externals if previous is not None else None)
