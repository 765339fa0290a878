"""Build a complete snapshot from validated zones (pure; runs off the event loop)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from geostream_dns.config.model import Zone
from geostream_dns.core.resolve import precompute_answers
from geostream_dns.core.snapshot import Snapshot, compile_zone


def build_snapshot(zones: Iterable[Zone], generation: int,
                   router_factory: Callable[..., Any] | None = None) -> Snapshot:
    trees = {}
    for zone in zones:
        tree = compile_zone(zone, router_factory)
        trees[tree.origin] = tree
    snapshot = Snapshot(generation, trees)
    precompute_answers(snapshot)
    return snapshot


