"""Routing seen from the wire: client location from the source address or
EDNS Client Subnet (RFC 7871), the pool it picks, and the ECS scope sent back.

The servers run on the deterministic test GeoIP database (tests/support/geoip.py):
198.51.100.0/25 and 2001:db8:1::/48 are in Germany, 203.0.113.0/24 in
Singapore and 192.0.2.0/24 in Virginia; 10/8 and loopback are unknown to it.
The servers run with --no-probe (the sample's values are documentation
addresses nothing may contact), so every pool value counts as healthy.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.name
import dns.rcode
import pytest

from tests.e2e.conftest import rdata_texts, udp_exchange, udp_raw
from tests.support.harness import ServerProcess

US_EAST = {"192.0.2.10", "192.0.2.11"}          # answer: weighted (one value)
EU_CENTRAL = {"198.51.100.10", "198.51.100.11"}  # answer: all
AP_SOUTHEAST = {"203.0.113.10", "203.0.113.11"}  # answer: multivalue


def ask(srv: ServerProcess, name: str, address: str | None = None, prefix: int = 0,
        rdtype: str = "A") -> tuple[dns.message.Message, dns.edns.ECSOption | None]:
    options: list[dns.edns.Option] = (
        [] if address is None else [dns.edns.ECSOption(address, prefix)])
    query = dns.message.make_query(name, rdtype, use_edns=0, options=options)
    reply, _ = udp_exchange(query, srv.host, srv.port)
    assert reply.rcode() == dns.rcode.NOERROR
    ecs = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    if address is None:
        assert ecs == [], "no ECS in the reply to a query without it"
        return reply, None
    assert len(ecs) == 1, "the reply carries ECS back (RFC 7871 §7.2.1)"
    got = ecs[0]
    assert (got.address, got.srclen) == (dns.edns.ECSOption(address, prefix).address, prefix)
    assert 0 <= got.scopelen <= prefix, "scope never exceeds the source prefix"
    return reply, got


def test_loopback_client_gets_the_first_nearest_pool(server: ServerProcess) -> None:
    reply, _ = ask(server, "www.example.com")
    values = rdata_texts(reply, "A")
    assert len(values) == 1 and values <= US_EAST


@pytest.mark.parametrize(("address", "prefix"), [("198.51.100.0", 25), ("2001:db8:1::", 48)])
def test_ecs_in_germany_gets_eu_central(server: ServerProcess, address: str, prefix: int) -> None:
    reply, ecs = ask(server, "www.example.com", address, prefix)
    assert rdata_texts(reply, "A") == EU_CENTRAL
    assert ecs is not None and ecs.scopelen > 0, "a geo answer depends on the location"


def test_ecs_in_a_listed_subnet_gets_its_pool(server: ServerProcess) -> None:
    reply, ecs = ask(server, "www.example.com", "10.1.2.0", 24)
    values = rdata_texts(reply, "A")
    assert len(values) == 1 and values <= US_EAST
    assert ecs is not None and ecs.scopelen >= 8, "the decision depends on 10/8 at least"


def test_ecs_in_singapore_gets_the_nearest_pool(server: ServerProcess) -> None:
    reply, _ = ask(server, "www.example.com", "203.0.113.0", 24)
    assert rdata_texts(reply, "A") == AP_SOUTHEAST  # multivalue: both healthy values


def test_ecs_in_the_usa_gets_us_east(server: ServerProcess) -> None:
    reply, _ = ask(server, "www.example.com", "192.0.2.0", 24)
    values = rdata_texts(reply, "A")
    assert len(values) == 1 and values <= US_EAST


def test_ecs_source_prefix_zero_means_no_location(server: ServerProcess) -> None:
    reply, ecs = ask(server, "www.example.com", "0.0.0.0", 0)
    values = rdata_texts(reply, "A")
    assert len(values) == 1 and values <= US_EAST
    assert ecs is not None and ecs.scopelen == 0


def test_static_answer_with_ecs_has_scope_zero(server: ServerProcess) -> None:
    reply, ecs = ask(server, "static.example.com", "198.51.100.0", 25)
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}
    assert ecs is not None and ecs.scopelen == 0


def test_alias_apex_follows_the_target_routing(server: ServerProcess) -> None:
    reply, _ = ask(server, "example.com", "198.51.100.0", 25)
    assert [r.name.to_text() for r in reply.answer] == ["example.com."]
    assert rdata_texts(reply, "A") == EU_CENTRAL


def test_cname_into_a_routed_name_routes_the_target(server: ServerProcess) -> None:
    reply, _ = ask(server, "api.example.com", "203.0.113.0", 24)
    assert rdata_texts(reply, "CNAME") == {"www.example.com."}
    assert rdata_texts(reply, "A") == AP_SOUTHEAST


def _ecs_packet(name: str, body: bytes) -> bytes:
    option = struct.pack("!HH", 8, len(body)) + body
    return (struct.pack("!HHHHHH", 0x5151, 0x0100, 1, 0, 0, 1)
            + dns.name.from_text(name).to_digestable() + struct.pack("!HH", 1, 1)
            + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", len(option)) + option)


@pytest.mark.parametrize("name", ["www.example.com", "static.example.com"])  # routed, static
@pytest.mark.parametrize(("label", "body"), [
    ("scope prefix set in a query", struct.pack("!HBB", 1, 24, 8) + bytes([85, 214, 132])),
    ("address bits past the source prefix", struct.pack("!HBB", 1, 23, 0) + bytes([85, 214, 133])),
    ("unknown family", struct.pack("!HBB", 7, 24, 0) + bytes([85, 214, 132])),
    ("source prefix over 32", struct.pack("!HBB", 1, 33, 0) + bytes([85, 214, 132, 1, 1])),
    ("address longer than the prefix", struct.pack("!HBB", 1, 8, 0) + bytes([85, 214, 132])),
    ("address shorter than the prefix", struct.pack("!HBB", 1, 24, 0) + bytes([85])),
    ("option body under 4 bytes", b"\x00\x01"),
])
def test_invalid_client_subnet_gets_formerr(server: ServerProcess, name: str, label: str,
                                            body: bytes) -> None:
    """RFC 7871 §7.1.1/§6: a malformed ECS option is a FORMERR, on every code path."""
    packet = _ecs_packet(name, body)
    for _ in range(2):  # the second time through any memo
        wire = udp_raw(packet, server.host, server.port)
        assert wire[:2] == b"\x51\x51"
        assert wire[3] & 0x0F == dns.rcode.FORMERR, label
        assert wire[6:8] == b"\x00\x00", "no answer records"
