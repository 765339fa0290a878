"""core/geo.py: the memoized GeoIP look-up (per /24 and /48, split keys, bounded).

The session database (tests/core/conftest.py) holds 198.51.100.0/24 as two /25
networks (Frankfurt and Paris) and 2001:db8:4::/48 as two /49 networks, so
both memo keys have a network narrower than themselves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geostream_dns.core.geo import UNKNOWN, GeoLocator, Location, RawLookup, make_location, packed


def p(ip: str) -> bytes:
    return ipaddress.ip_address(ip).packed


def test_a_second_address_of_the_same_24_is_a_memo_hit(
        make_geo: Callable[..., GeoLocator]) -> None:
    geo = make_geo()
    first = geo.locate(p("192.0.2.1"))
    assert (geo.hits, geo.misses) == (0, 1)
    assert first.codes == {"NA", "NA-US", "NA-US-VA"}
    assert (first.lat, first.lon, first.prefix_len) == (38.9, -77.4, 24)
    assert geo.locate(p("192.0.2.254")) is first
    assert geo.locate(p("192.0.2.1")) is first
    assert (geo.hits, geo.misses) == (2, 1)


def test_the_next_24_is_a_miss(make_geo: Callable[..., GeoLocator]) -> None:
    geo = make_geo()
    geo.locate(p("203.0.113.1"))
    geo.locate(p("203.0.112.1"))
    assert (geo.hits, geo.misses) == (0, 2)


@pytest.mark.parametrize("order", [("low", "high"), ("high", "low")])
def test_both_halves_of_a_split_24_are_located_precisely(
        make_geo: Callable[..., GeoLocator], order: tuple[str, str]) -> None:
    geo = make_geo()
    addresses = {"low": ("198.51.100.1", "198.51.100.127"),
                 "high": ("198.51.100.128", "198.51.100.254")}
    countries = {"low": "DE", "high": "FR"}
    for half in order:  # the first address of each half misses, the second hits
        first, second = addresses[half]
        a = geo.locate(p(first))
        b = geo.locate(p(second))
        assert a == b
        assert (a.country, a.prefix_len) == (countries[half], 25)
    assert (geo.hits, geo.misses) == (2, 2)
    # And again, in the other order, from the memo only.
    for half in reversed(order):
        assert geo.locate(p(addresses[half][1])).country == countries[half]
    assert geo.misses == 2


def test_ipv6_is_memoized_per_48(make_geo: Callable[..., GeoLocator]) -> None:
    geo = make_geo()
    munich = geo.locate(p("2001:db8:1::1"))
    assert (munich.codes, munich.prefix_len) == ({"EU", "EU-DE", "EU-DE-BY"}, 48)
    assert geo.locate(p("2001:db8:1:ffff:ffff::1")) is munich
    assert (geo.hits, geo.misses) == (1, 1)
    new_york = geo.locate(p("2001:db8:2::1"))
    assert new_york.country == "US" and geo.misses == 2
    # The IPv4 key 32.1.13 and the IPv6 key 2001:0db8:0001 never collide.
    assert geo.locate(p("32.1.13.184")) is not munich


def test_ipv6_networks_narrower_than_48(make_geo: Callable[..., GeoLocator]) -> None:
    geo = make_geo()
    low = geo.locate(p("2001:db8:4::1"))
    high = geo.locate(p("2001:db8:4:8000::1"))
    assert (low.country, low.prefix_len) == ("DE", 49)
    assert (high.country, high.prefix_len) == ("FR", 49)
    assert geo.locate(p("2001:db8:4:7fff::1")) == low
    assert geo.locate(p("2001:db8:4:ffff::1")) == high
    assert geo.misses == 2


def test_unknown_addresses_are_memoized_with_their_network(
        make_geo: Callable[..., GeoLocator]) -> None:
    geo = make_geo()
    loc = geo.locate(p("233.252.0.1"))
    assert not loc.known and loc.codes == frozenset()
    assert loc.prefix_len == 3  # the empty part of the tree it fell into
    assert geo.locate(p("233.252.0.99")) is loc
    assert geo.hits == 1


def test_without_a_database_everyone_is_unknown() -> None:
    geo = GeoLocator(None)
    assert geo.locate(p("192.0.2.1")) is UNKNOWN
    assert not UNKNOWN.known and UNKNOWN.prefix_len == 0 and len(geo) == 0


@pytest.mark.parametrize("limit", [4, 8, 64])
def test_the_memo_never_holds_more_than_its_limit(city_raw: RawLookup, limit: int) -> None:
    geo = GeoLocator(city_raw, limit=limit)
    for i in range(300):
        geo.locate(bytes([10, i % 256, i // 256, 1]))  # a new /24 each time
        geo.locate(bytes([198, 51, 100, i % 256]))  # the split /24, both halves
        geo.locate(p(f"2001:db8:{i:x}::1"))  # a new /48 each time
        geo.locate(p(f"2001:db8:4:{(i * 509) % 65536:x}::1"))  # the split /48
        assert len(geo) <= limit


def test_hot_networks_survive_sweeps(city_raw: RawLookup) -> None:
    geo = GeoLocator(city_raw, limit=16)
    hot = p("192.0.2.1")
    geo.locate(hot)
    for i in range(1_000):
        geo.locate(bytes([10, i % 256, i // 256, 1]))
        if i % 4 == 0:
            before = geo.misses
            geo.locate(hot)
            assert geo.misses == before, f"the hot /24 was swept after {i} cold look-ups"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.sampled_from(["198.51.100.0/24", "192.0.2.0/23", "10.0.0.0/30", "203.0.113.0/24"]),
    st.sampled_from(["2001:db8:4::/47", "2001:db8:1::/48", "2001:db8:ff::/120"]),
).flatmap(lambda net: st.integers(0, ipaddress.ip_network(net).num_addresses - 1).map(
    lambda host: str(ipaddress.ip_network(net).network_address + host))),
    min_size=1, max_size=60), st.sampled_from([4, 6, 1000]))
def test_the_memo_always_agrees_with_the_database(city_raw: RawLookup, ips: list[str],
                                                  limit: int) -> None:
    geo = GeoLocator(city_raw, limit=limit)
    for ip in ips * 2:
        assert geo.locate(p(ip)) == city_raw(p(ip)), ip
    assert geo.hits + geo.misses == 2 * len(ips)


def test_make_location_codes() -> None:
    assert make_location("EU", "DE", "HE", 50.1, 8.7, 25).codes == {"EU", "EU-DE", "EU-DE-HE"}
    assert make_location("EU", "DE", None, None, None, 16).codes == {"EU", "EU-DE"}
    assert make_location("EU", None, "HE", None, None, 16).codes == {"EU"}
    loc = make_location(None, "DE", None, None, None, 8)
    assert loc.known and loc.codes == frozenset() and not loc.has_coordinates
    assert Location(lat=0.0, lon=0.0).has_coordinates


@pytest.mark.parametrize(("ip", "want"), [
    ("192.0.2.1", b"\xc0\x00\x02\x01"),
    ("::ffff:192.0.2.1", b"\xc0\x00\x02\x01"),
    ("2001:db8::1", p("2001:db8::1")),
])
def test_packed(ip: str, want: bytes) -> None:
    assert packed(ip) == want
