"""Shared pieces of the DNSSEC tests: signed zones, keys, and a validator.

`check_signed(reply, keys)` validates every RRset of a reply that has an
RRSIG with dnspython's `dns.dnssec.validate` against the zone's DNSKEY set,
and fails when an RRset that must be signed has none.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

import dns.dnssec
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset

from geostream_dns.adapters.dnssec_keys import first_keys, signing_of
from geostream_dns.core.build import build_snapshot
from geostream_dns.core.dnssec import ZoneSigning
from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.model import Zone
from geostream_dns.core.world import World

RRSIG = dns.rdatatype.RRSIG


def signing_for(zones: Iterable[Zone], now: float | None = None) -> dict[str, ZoneSigning]:
    out = {}
    when = time.time() if now is None else now
    for zone in zones:
        if zone.dnssec is not None:
            found = signing_of(first_keys(zone.origin, zone.dnssec, int(when), None), None, when)
            assert found is not None
            out[zone.origin] = found
    return out


def signed_world(zones: list[Zone], geo: GeoLocator | None = None,
                 signing: dict[str, ZoneSigning] | None = None) -> World:
    signing = signing if signing is not None else signing_for(zones)
    return World.create(build_snapshot(zones, 1, signing=signing), geo=geo,
                        rng=random.Random(0))


def dnskeys(origin: str, signing: ZoneSigning, ttl: int = 300) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(dns.name.from_text(origin), ttl,
                                     [k.dnskey for k in signing.keys if k.published])


def check_signed(reply: dns.message.Message, keys: dict[dns.name.Name, dns.rrset.RRset],
                 unsigned: frozenset[int] = frozenset()) -> int:
    """Validate every signed RRset of the answer and authority sections; return how
    many were validated. An RRset without its RRSIG fails, unless its type is in
    `unsigned` (NS and glue of a referral)."""
    count = 0
    for section in (reply.answer, reply.authority):
        sigs = {(r.name, r.covers): r for r in section if r.rdtype == RRSIG}
        for rrset in section:
            if rrset.rdtype == RRSIG:
                continue
            sig = sigs.get((rrset.name, rrset.rdtype))
            if sig is None:
                assert rrset.rdtype in unsigned, f"unsigned RRset {rrset}"
                continue
            dns.dnssec.validate(rrset, sig, keys)
            count += 1
    return count
