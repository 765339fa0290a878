"""Zones that should be hosted but never loaded answer SERVFAIL, not REFUSED; the
most specific zone decides."""

from __future__ import annotations

import dataclasses

import dns.message
import dns.rcode

from geostream_dns.core.build import build_snapshot
from geostream_dns.core.resolve import resolve
from geostream_dns.core.snapshot import label_key
from geostream_dns.core.world import World
from tests.core.helpers import load


def world_with_failed(*failed: str) -> World:
    snapshot = build_snapshot([load("www: {type: A, value: 192.0.2.1}")], 1)
    keys = frozenset(label_key(dns.name.from_text(f).labels) for f in failed)
    return World.create(dataclasses.replace(
        snapshot, zone_set=dataclasses.replace(snapshot.zone_set, failed=keys)))


def rcode(world: World, name: str) -> int:
    reply, _ = resolve(dns.message.make_query(name, "A").to_wire(), "192.0.2.9", world)
    assert reply is not None
    return dns.message.from_wire(reply).rcode()


def test_failed_zone_answers_servfail_and_others_are_unchanged() -> None:
    world = world_with_failed("example.net.", "sub.example.com.")
    assert rcode(world, "www.example.net") == dns.rcode.SERVFAIL
    assert rcode(world, "EXAMPLE.NET") == dns.rcode.SERVFAIL  # any letter case
    assert rcode(world, "x.sub.example.com") == dns.rcode.SERVFAIL  # below a hosted zone
    assert rcode(world, "www.example.com") == dns.rcode.NOERROR
    assert rcode(world, "nothing.example.com") == dns.rcode.NXDOMAIN
    assert rcode(world, "www.example.org") == dns.rcode.REFUSED


def test_a_hosted_zone_below_a_failed_one_still_answers() -> None:
    world = world_with_failed("com.")
    assert rcode(world, "www.example.com") == dns.rcode.NOERROR
    assert rcode(world, "www.example2.com") == dns.rcode.SERVFAIL
