"""Build a complete snapshot from validated zones (pure; runs off the event loop).

How this works: given the snapshot being served (``previous``), a build is
incremental. A zone whose validated ``Zone`` object is the very one the
previous snapshot was compiled from (stores keep the objects of zones that
did not change) keeps its compiled tree and its pre-rendered answers; only
changed zones are compiled and rendered. Answers that depend on another zone
than the one holding their name (CNAME chains or ALIASes leaving the zone,
names under a hosted child zone) are noted at render time and always
rendered again. When zones are added or removed, every answer may move (a
new child zone takes names from its parent), so the build is a full one, as
it is without a previous snapshot or with another router factory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dns.name
import dns.rdatatype

from geostream_dns.config.model import Zone
from geostream_dns.core.resolve import ForeignAnswers, precompute_answers, store_answer
from geostream_dns.core.snapshot import ALIAS, Snapshot, ZoneTree, compile_zone

FOREIGN = "foreign_answers"  # Snapshot.extra key: the ForeignAnswers of the snapshot
FACTORY = "router_factory"  # Snapshot.extra key: the router factory it was built with
_ADDRESS = (int(dns.rdatatype.A), int(dns.rdatatype.AAAA))


def build_snapshot(zones: Iterable[Zone], generation: int,
                   router_factory: Callable[..., Any] | None = None,
                   previous: Snapshot | None = None) -> Snapshot:
    reusable: dict[dns.name.Name, ZoneTree] = {}
    if (previous is not None and FOREIGN in previous.extra
            and previous.extra.get(FACTORY) is router_factory):
        reusable = previous.zones
    trees: dict[dns.name.Name, ZoneTree] = {}
    changed: list[ZoneTree] = []
    for zone in zones:
        tree = reusable.get(dns.name.from_text(zone.origin))
        if tree is None or tree.spec is not zone:
            tree = compile_zone(zone, router_factory)
            changed.append(tree)
        trees[tree.origin] = tree
    snapshot = Snapshot(generation, trees)
    foreign: ForeignAnswers = {}
    snapshot.extra[FOREIGN] = foreign
    snapshot.extra[FACTORY] = router_factory
    if previous is None or not reusable or set(reusable) != set(trees):
        precompute_answers(snapshot, foreign=foreign)
        return snapshot
    stale = {tree.origin.to_text() for tree in changed}
    before: ForeignAnswers = previous.extra[FOREIGN]
    snapshot.answers = {key: answer for key, answer in previous.answers.items()
                        if answer.zone not in stale and key not in before}
    precompute_answers(snapshot, changed, foreign)
    changed_origins = {tree.origin for tree in changed}
    for name, rdtype, _ in before.values():
        # Every unchanged zone holding the name renders it again (changed zones were
        # rendered whole above); a name may sit in a parent zone and in its child.
        for tree in _holders(trees, name, rdtype):
            if tree.origin not in changed_origins:
                store_answer(snapshot, tree, name, rdtype, foreign)
    return snapshot


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
