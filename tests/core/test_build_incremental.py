"""Incremental snapshot builds give exactly the answers a full build gives.

A build reuses the compiled trees and pre-rendered answers of zones whose
`Zone` object did not change (core/build.py). Zones here reach into each
other (CNAME chains across zones, a hosted child zone under its parent, a
parent holding names under the child, an ALIAS, a routed name), and any sequence of edits,
additions and removals must leave the incremental snapshot equal to a fresh
one.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from geostream_dns.core.build import build_snapshot
from geostream_dns.core.model import Zone
from geostream_dns.core.snapshot import EMPTY, Snapshot
from tests.core.helpers import load

VARIANTS: dict[str, list[str]] = {
    "example.com.": [
        """
        www: {type: A, value: 192.0.2.1}
        api: {type: CNAME, value: www.example.org.}
        deep: {type: CNAME, value: x.sub.example.com.}
        '@': {type: ALIAS, value: www.example.com.}
        '*.w': {type: A, value: 192.0.2.9}
        y.sub: {type: A, value: 192.0.2.50}
        """,
        """
        www: {type: A, value: 192.0.2.2}
        api: {type: CNAME, value: www.example.org.}
        deep: {type: CNAME, value: x.sub.example.com.}
        """,
        """
        www: {type: A, values: [192.0.2.1, 192.0.2.3]}
        api: {type: CNAME, value: api2.example.com.}
        api2: {type: CNAME, value: www.example.org.}
        mx: {type: MX, value: {preference: 10, exchange: www.example.org.}}
        """,
        """
        '@': {type: ALIAS, value: y.sub.example.com.}
        y.sub: {type: A, value: 192.0.2.51}
        shop: {type: NS, value: ns1.shop.example.com.}
        ns1.shop: {type: A, value: 192.0.2.52}
        """,
    ],
    "example.org.": [
        "www: {type: A, value: 198.51.100.1}",
        """
        www: {type: A, value: 198.51.100.2}
        txt: {type: TXT, value: hello}
        """,
        "www: {type: CNAME, value: www.example.com.}",
        """
        www:
          type: A
          values: [198.51.100.9]
          routing:
            pools: {eu: {region: eu, values: [198.51.100.10]}}
            rules: [{pool: eu}]
        """,
    ],
    "sub.example.com.": [
        """
        x: {type: A, value: 203.0.113.1}
        y: {type: A, value: 203.0.113.2}
        """,
        "x: {type: A, value: 203.0.113.3}",
        "x: {type: CNAME, value: www.example.org.}",
    ],
}
ZONES: dict[tuple[str, int], Zone] = {
    (origin, i): load(text, origin=origin)
    for origin, texts in VARIANTS.items() for i, text in enumerate(texts)
}
# A step: for each zone, its variant or None (not hosted).
STEPS = st.fixed_dictionaries({
    origin: st.none() | st.integers(0, len(texts) - 1) for origin, texts in VARIANTS.items()})


def rendered(snapshot: Snapshot) -> dict[bytes, tuple[Any, ...]]:
    out: dict[bytes, tuple[Any, ...]] = {
        key: (a.flags, a.heads, a.heads_edns, a.body, a.chunks, a.zone)
        for key, a in snapshot.answers.items()}
    out.update((key, ("routed", r.qname, r.zone)) for key, r in snapshot.routed.items())
    assert len(out) == len(snapshot.answers) + len(snapshot.routed)  # never in both
    return out


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEPS, min_size=1, max_size=8))
def test_incremental_builds_equal_full_builds(steps: list[dict[str, int | None]]) -> None:
    previous = EMPTY
    for generation, step in enumerate(steps, start=1):
        zones = [ZONES[(origin, v)] for origin, v in step.items() if v is not None]
        incremental = build_snapshot(zones, generation, previous=previous)
        full = build_snapshot(zones, generation)
        assert rendered(incremental) == rendered(full)
        assert set(incremental.zones) == set(full.zones)
        assert {o: set(u.deferred) for o, u in incremental.units.items()} == {
            o: set(u.deferred) for o, u in full.units.items()}
        assert incremental.health_targets == full.health_targets
        previous = incremental


def test_unchanged_zones_keep_their_trees_and_answers() -> None:
    com, org, sub = ZONES[("example.com.", 0)], ZONES[("example.org.", 0)], ZONES[
        ("sub.example.com.", 0)]
    first = build_snapshot([com, org, sub], 1)
    second = build_snapshot([com, ZONES[("example.org.", 1)], sub], 2, previous=first)
    assert second.units["example.com."] is first.units["example.com."]
    assert second.units["sub.example.com."] is first.units["sub.example.com."]
    assert second.units["example.org."] is not first.units["example.org."]
    com_tree = next(t for t in first.zones.values() if t.model is com)
    assert second.zones[com_tree.origin] is com_tree
    reused = [k for k, a in second.answers.items() if first.answers.get(k) is a]
    assert reused  # static answers of example.com. and sub.example.com. were not re-rendered
    # y.sub.example.com. is written in example.com. but answered by the hosted child
    # zone sub.example.com.: deferred, so it is looked up again on every build.
    deferred = {name.to_text() for name, _ in second.units["example.com."].deferred}
    assert "y.sub.example.com." in deferred


def test_a_new_child_zone_recompiles_its_parent() -> None:
    com, sub = ZONES[("example.com.", 0)], ZONES[("sub.example.com.", 0)]
    alone = build_snapshot([com], 1)
    both = build_snapshot([com, sub], 2, previous=alone)
    assert both.units["example.com."] is not alone.units["example.com."]
    assert rendered(both) == rendered(build_snapshot([com, sub], 2))
