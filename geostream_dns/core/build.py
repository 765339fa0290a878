"""Build a snapshot from validated zones (pure; runs off the event loop).

How this works: every zone is compiled into a tree (routers included), then
every existing (name, type) is looked up once and its answer rendered into
the snapshot's answers table as wire bytes; a routed name's `RoutedName`
goes into the routed table instead, its answer decided per client network.

Given the snapshot being served (``previous``) a build is incremental. A
zone whose validated ``Zone`` object is the very one the previous tree was
compiled from (stores keep the objects of zones that did not change) keeps
its tree and its answers; only changed zones are compiled and rendered.
Answers that depend on another zone than the one holding their name (CNAME
chains or ALIASes leaving the zone, names under a hosted child zone) are
noted at render time and always rendered again. When zones are added or
removed, every answer may move (a new child zone takes names from its
parent), so the build is a full one, as it is without a previous snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.name
import dns.rdatatype

from geostream_dns.core.answer import Answer, RoutedName, render_answer
from geostream_dns.core.lookup import Resolution, lookup
from geostream_dns.core.model import Zone
from geostream_dns.core.outcome import SNAPSHOT, STATIC, Outcomes
from geostream_dns.core.snapshot import (
    ALIAS,
    Snapshot,
    ZoneSet,
    ZoneTree,
    compile_zone,
    health_targets,
    question_key,
)

_ADDRESS = (int(dns.rdatatype.A), int(dns.rdatatype.AAAA))
_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))

Answers = dict[bytes, Answer]
RoutedNames = dict[bytes, RoutedName]
Foreign = dict[bytes, tuple[dns.name.Name, int, dns.name.Name]]


def build_snapshot(zones: Iterable[Zone], generation: int,
                   previous: Snapshot | None = None) -> Snapshot:
    reusable = previous.zones if previous is not None else {}
    trees: dict[dns.name.Name, ZoneTree] = {}
    changed: list[ZoneTree] = []
    for zone in zones:
        tree = reusable.get(dns.name.from_text(zone.origin))
        if tree is None or tree.model is not zone:
            tree = compile_zone(zone)
            changed.append(tree)
        trees[tree.origin] = tree
    zone_set = ZoneSet.of(trees)
    builder = _Renderer(zone_set)
    if previous is None or not reusable or set(reusable) != set(trees):
        for tree in trees.values():
            builder.render_zone(tree)
    else:
        stale = {tree.origin.to_text() for tree in changed}
        before = previous.foreign
        builder.answers.update(
            (key, answer) for key, answer in previous.answers.items()
            if answer.zone not in stale and key not in before)
        builder.routed.update(
            (key, name) for key, name in previous.routed.items()
            if name.zone not in stale and key not in before)
        for tree in changed:
            builder.render_zone(tree)
        changed_origins = {tree.origin for tree in changed}
        for name, rdtype, _ in before.values():
            # Every unchanged zone holding the name renders it again (changed zones were
            # rendered whole above); a name may sit in a parent zone and in its child.
            for tree in _holders(trees, name, rdtype):
                if tree.origin not in changed_origins:
                    builder.render(tree, name, rdtype)
    return Snapshot(generation, zone_set, builder.answers, builder.routed, builder.foreign,
                    health_targets(trees))


class _Renderer:
    """Fills an answers table (and notes foreign answers) for a zone set."""

    def __init__(self, zone_set: ZoneSet) -> None:
        self.zone_set = zone_set
        self.answers: Answers = {}
        self.routed: RoutedNames = {}
        self.foreign: Foreign = {}
        self.outcomes = Outcomes()

    def render_zone(self, tree: ZoneTree) -> None:
        for name, node in tree.nodes.items():
            for rdtype in node:
                if rdtype == ALIAS:  # answered as A/AAAA below
                    continue
                self.render(tree, name, rdtype)
            if ALIAS in node:
                self.render(tree, name, dns.rdatatype.A)
                self.render(tree, name, dns.rdatatype.AAAA)

    def render(self, tree: ZoneTree, name: dns.name.Name, rdtype: int) -> None:
        key = question_key(name, rdtype)
        if not key_is_safe(key):
            return
        res = lookup(self.zone_set, name, rdtype)
        zone = res.zone.origin.to_text() if res.zone is not None else ""
        if res.routed:
            self.routed[key] = RoutedName(name, res, zone)
            self.answers.pop(key, None)
        else:
            self.routed.pop(key, None)
            outcome = self.outcomes.get(rdtype, res.rcode, zone, STATIC, SNAPSHOT)
            self.answers[key] = render_answer(name, rdtype, res, outcome)
        if not _within(self.zone_set, tree, name, res):
            self.foreign[key] = (name, rdtype, tree.origin)


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


def _within(zones: ZoneSet, zone: ZoneTree, name: dns.name.Name, res: Resolution) -> bool:
    """True when the answer to `name` is made of `zone` alone."""
    if res.zone is not zone:
        return False
    if len(res.answer) > 1 and any(zones.find_zone(p.owner) is not zone for p in res.answer):
        return False
    node = zone.nodes.get(name)
    alias = node.get(ALIAS) if node is not None else None
    return alias is None or alias.alias is None or zones.find_zone(alias.alias) is zone


def _holders(trees: dict[dns.name.Name, ZoneTree], name: dns.name.Name,
             rdtype: int) -> list[ZoneTree]:
    """The trees with a node `name` that a full build would render `rdtype` from."""
    out = []
    for depth in range(len(name), 0, -1):
        tree = trees.get(name.split(depth)[1] if depth < len(name) else name)
        if tree is None:
            continue
        node = tree.nodes.get(name)
        if node is not None and (rdtype in node or (rdtype in _ADDRESS and ALIAS in node)):
            out.append(tree)
    return out
