"""Shared building blocks for the core tests: zones from YAML, a world, queries.

Everything here is pure: `resolve` is driven with query bytes built by
dnspython in a `World`, and its reply bytes are parsed back with dnspython.
Randomness is a seeded `random.Random`, passed in.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from geostream_dns.config.loader import load_zone_text
from geostream_dns.core.build import build_snapshot
from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.health import ALL_UP, HealthView
from geostream_dns.core.model import Zone
from geostream_dns.core.resolve import resolve
from geostream_dns.core.world import World, WorldRef
from tests.support.zones import zone_text

DEFAULT_CLIENT = "233.252.0.1"  # MCAST-TEST-NET (RFC 6676): never in the test GeoIP


def load(snippet: str, origin: str = "example.com.", ttl: int = 300,
         negative_ttl: int = 300) -> Zone:
    """The zone of `snippet` under the standard header (tests/support/zones.py)."""
    text = zone_text(snippet, origin, ttl=ttl, negative_ttl=negative_ttl)
    return load_zone_text(text, f"zones/{origin}yaml")


def make_world(zones: Iterable[Zone], geo: GeoLocator | None = None,
               health: HealthView = ALL_UP, seed: int = 0) -> World:
    """A world over `zones` with seeded randomness."""
    return World.create(build_snapshot(list(zones), 1), health, geo, random.Random(seed))


def query(name: str, rdtype: str | int = "A", *, qid: int = 0x1234,
          ecs: str | None = None, edns: bool | None = None, payload: int = 1232,
          do: bool = False, options: Sequence[dns.edns.Option] = (),
          rdclass: str | int = "IN", flags: int | None = None) -> dns.message.QueryMessage:
    """A dnspython query. `ecs` is "address/prefix"; EDNS is on when asked or needed."""
    opts = list(options)
    if ecs is not None:
        address, _, prefix = ecs.partition("/")
        opts.append(dns.edns.ECSOption(address, int(prefix)))
    use_edns = edns if edns is not None else bool(opts or do or payload != 1232)
    q = dns.message.make_query(name, dns.rdatatype.RdataType.make(rdtype),
                               dns.rdataclass.RdataClass.make(rdclass),
                               use_edns=0 if use_edns else False,
                               payload=payload, want_dnssec=do, options=opts or None)
    q.id = qid
    if flags is not None:
        q.flags = flags
    return q


def unknown_option(code: int, data: bytes) -> dns.edns.GenericOption:
    """An EDNS option by number (dnspython's stubs only admit known codes)."""
    return dns.edns.GenericOption(code, data)  # type: ignore[arg-type]


def make_ref(zones: Iterable[Zone], geo: GeoLocator | None = None,
             health: HealthView = ALL_UP, seed: int = 0) -> WorldRef:
    """A world in a holder, for tests that publish new health views into it."""
    return WorldRef(make_world(zones, geo, health, seed))


def ask(world: World, q: dns.message.Message, client: str = DEFAULT_CLIENT,
        tcp: bool = False) -> dns.message.Message:
    """Resolve `q` and parse the reply (which must exist)."""
    reply, _outcome = resolve(q.to_wire(), client, world, tcp)
    assert reply is not None, "the query was dropped"
    return dns.message.from_wire(reply)


def lines(rrsets: Iterable[dns.rrset.RRset]) -> list[str]:
    """Each record as "owner ttl TYPE rdata" (names lower-cased), sorted within an RRset."""
    out: list[str] = []
    for rrset in rrsets:
        owner = rrset.name.to_text().lower()
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        out.extend(sorted(f"{owner} {rrset.ttl} {rtype} {rd.to_text().lower()}"
                          for rd in rrset))
    return out


def heads(rrsets: Iterable[dns.rrset.RRset]) -> list[str]:
    """Each RRset as "owner ttl TYPE" (no data)."""
    return [f"{r.name.to_text().lower()} {r.ttl} {dns.rdatatype.to_text(r.rdtype)}"
            for r in rrsets]


def values(reply: dns.message.Message) -> list[str]:
    """The data of the answer's last RRset, in the order sent."""
    if not reply.answer:
        return []
    return [rd.to_text() for rd in reply.answer[-1]]


def ecs_scope(reply: dns.message.Message) -> int | None:
    """The scope prefix of the reply's Client Subnet option, None without one."""
    for option in reply.options:
        if isinstance(option, dns.edns.ECSOption):
            return int(option.scopelen)
    return None


def has_flag(reply: dns.message.Message, flag: int) -> bool:
    return bool(reply.flags & flag)


AA = dns.flags.AA
TC = dns.flags.TC
