"""The answer cache's format: a compiled zone survives bytes and back, and nothing
corrupt, truncated or foreign is ever taken for one."""

from __future__ import annotations

import random
from collections.abc import Callable

import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geostream_dns.core import cachefmt
from geostream_dns.core.build import assemble, children_of, compile_unit, unit_key
from geostream_dns.core.model import Zone
from geostream_dns.core.resolve import resolve
from geostream_dns.core.world import World
from tests.core.helpers import load, query

COM = """\
'':
  - {type: ALIAS, value: www.example.com.}
  - {type: MX, values: [{preference: 10, exchange: mail.example.com.}]}
www:
  type: A
  ttl: 60
  values: [192.0.2.1]
  routing:
    pools:
      us:
        region: us
        values: [{value: 192.0.2.10, healthcheck: web}, {value: 192.0.2.11, weight: 3}]
        fallback: eu
      eu: {region: eu, answer: all, values: [198.51.100.10]}
      ap: {region: ap, answer: multivalue, values: [203.0.113.10, 203.0.113.11]}
    rules:
      - geos: [EU-DE]
        pool: eu
      - subnets: [10.0.0.0/8]
        pool: ap
      - nearest: [us, eu, ap]
        bias: {ap: -100}
mail: {type: A, value: 192.0.2.25}
txt: {type: TXT, values: [hello, world]}
api: {type: CNAME, value: www.example.com.}
out: {type: CNAME, value: www.example.org.}
'*.wild': {type: A, value: 192.0.2.99}
shop: {type: NS, values: [ns1.shop.example.com.]}
ns1.shop: {type: A, value: 192.0.2.200}
y.sub: {type: A, value: 192.0.2.50}
_sip._tcp: {type: SRV, values: [{priority: 10, weight: 60, port: 5060, target: mail.example.com.}]}
"""
SUB = "y: {type: A, value: 192.0.2.51}\n"
ORG = "www: {type: A, value: 198.51.100.1}\n"


def zones() -> list[Zone]:
    return [load(COM), load(SUB, "sub.example.com."), load(ORG, "example.org.")]


def cached_units(zs: list[Zone]) -> tuple[list, list]:
    children = children_of(z.origin for z in zs)
    built = [compile_unit(z, unit_key(f"d-{z.origin}", children[z.origin]), children[z.origin])
             for z in zs]
    by_origin = {z.origin: z for z in zs}

    def loader(origin: str) -> Callable[[], Zone]:
        return lambda: by_origin[origin]

    loaded = [cachefmt.decode(cachefmt.encode(u), loader(u.tree.origin.to_text())) for u in built]
    return built, loaded


QUESTIONS = [("example.com.", "A"), ("example.com.", "MX"), ("www.example.com.", "A"),
             ("api.example.com.", "A"), ("out.example.com.", "A"), ("txt.example.com.", "TXT"),
             ("x.wild.example.com.", "A"), ("www.shop.example.com.", "A"),
             ("y.sub.example.com.", "A"), ("nothing.example.com.", "A"),
             ("mail.example.com.", "AAAA"), ("_sip._tcp.example.com.", "SRV"),
             ("www.example.org.", "A")]
CLIENTS = [("192.0.2.1", None), ("198.51.100.7", "198.51.100.0/24"), ("10.1.2.3", None)]


def test_a_loaded_zone_answers_exactly_as_the_compiled_one() -> None:
    built, loaded = cached_units(zones())
    assert [u.key for u in built] == [u.key for u in loaded]
    assert {k: a.body for u in built for k, a in u.answers.items()} == {
        k: a.body for u in loaded for k, a in u.answers.items()}
    worlds = [World.create(assemble(units, 1), rng=random.Random(5)) for units in (built, loaded)]
    for name, rtype in QUESTIONS:
        for client, ecs in CLIENTS:
            wire = query(name, rtype, ecs=ecs).to_wire()
            replies = [resolve(wire, client, w)[0] for w in worlds]
            assert replies[0] == replies[1], (name, rtype, client)
    first, second = (w.snapshot for w in worlds)
    assert first.health_targets == second.health_targets
    assert set(first.routed) == set(second.routed)


def test_records_are_decoded_only_when_needed_and_the_model_on_demand() -> None:
    zs = zones()
    _built, loaded = cached_units(zs)
    tree = loaded[0].tree
    mail = tree.nodes[next(n for n in tree.nodes if n.to_text() == "mail.example.com.")]
    data = mail[dns.rdatatype.A]
    assert data._rdatas is None  # still wire data
    assert [r.to_text() for r in data.rdatas] == ["192.0.2.25"]
    assert tree.model is zs[0]  # asked for: loaded through load_model
    assert tree.regions == {"us", "eu", "ap"}


@pytest.mark.parametrize("damage", ["truncate", "flip", "magic", "format", "empty", "json"])
def test_a_damaged_or_foreign_entry_is_refused(damage: str) -> None:
    unit = cached_units(zones())[0][0]
    data = bytearray(cachefmt.encode(unit))
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "flip":
        data[-10] ^= 0x40
    elif damage == "magic":
        data[:4] = b"PKL\x00"
    elif damage == "format":
        data[4:6] = (cachefmt.FORMAT + 1).to_bytes(2, "big")
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b'{"origin": "example.com."}')
    with pytest.raises(cachefmt.CacheFormatError):
        cachefmt.decode(bytes(data), lambda: zones()[0])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_damage_is_refused_never_a_crash(data: st.DataObject) -> None:
    unit = _unit()
    good = cachefmt.encode(unit)
    position = data.draw(st.integers(0, len(good) - 1))
    flipped = bytearray(good)
    flipped[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(cachefmt.CacheFormatError):
        cachefmt.decode(bytes(flipped), lambda: zones()[0])


_cached: list = []


def _unit():  # type: ignore[no-untyped-def]
    if not _cached:
        _cached.append(cached_units(zones())[0][0])
    return _cached[0]
