"""The UDP transport's limiter (adapters/rrl.py): networks, kinds and exemptions."""

from __future__ import annotations

import dns.message
import pytest

from geostream_dns.adapters.rrl import ResponseLimiter
from geostream_dns.config.settings import RrlSettings, parse_exempt
from geostream_dns.core.outcome import STATIC, Outcome
from geostream_dns.core.rrl import DROP, SEND

ANSWER = Outcome(1, 0, "example.com.", STATIC, "snapshot")
NXDOMAIN = Outcome(1, 3, "example.com.", STATIC, "snapshot")
REFUSED = Outcome(1, 5, "", "slow", "none")


def q(name: str, rdtype: str = "A") -> bytes:
    return dns.message.make_query(name, rdtype).to_wire()


def limiter(**options: object) -> ResponseLimiter:
    settings = {"rate": 2, "window": 5, "slip": 0, "exempt": ("none",), **options}
    return ResponseLimiter(RrlSettings(**settings))  # type: ignore[arg-type]


def burst(rl: ResponseLimiter, data: bytes, client: str, outcome: Outcome = ANSWER,
          count: int = 3) -> list[int]:
    return [rl.check(data, client, outcome) for _ in range(count)]


def test_one_network_is_one_account_per_question() -> None:
    rl = limiter()
    assert burst(rl, q("www.example.com"), "198.51.100.1", count=2) == [SEND, SEND]
    # same /24, same question (letter case does not matter): limited
    assert burst(rl, q("WWW.example.com"), "198.51.100.200", count=1) == [DROP]
    # another question, another /24, the same host in another type: separate accounts
    assert burst(rl, q("ftp.example.com"), "198.51.100.1", count=2) == [SEND, SEND]
    assert burst(rl, q("www.example.com"), "198.51.101.1", count=2) == [SEND, SEND]
    assert burst(rl, q("www.example.com", "AAAA"), "198.51.100.1", count=2) == [SEND, SEND]


def test_nxdomain_is_charged_per_zone_and_errors_per_zone_apart() -> None:
    rl = limiter()
    assert [rl.check(q(f"n{i}.example.com"), "198.51.100.1", NXDOMAIN)
            for i in range(3)] == [SEND, SEND, DROP]
    # errors (REFUSED for names we do not host) have an account of their own
    assert [rl.check(q(f"x{i}.example.org"), "198.51.100.1", REFUSED)
            for i in range(3)] == [SEND, SEND, DROP]


def test_ipv6_networks_are_56_bits_by_default() -> None:
    rl = limiter()
    data = q("www.example.com")
    assert burst(rl, data, "2001:db8:0:ff::1", count=2) == [SEND, SEND]
    assert burst(rl, data, "2001:db8:0:12::2", count=1) == [DROP]  # same /56
    assert burst(rl, data, "2001:db8:0:100::1", count=1) == [SEND]  # another /56


def test_prefixes_are_settings() -> None:
    rl = limiter(prefix_v4=16, prefix_v6=64)
    data = q("www.example.com")
    assert burst(rl, data, "198.51.1.1", count=2) == [SEND, SEND]
    assert burst(rl, data, "198.51.200.1", count=1) == [DROP]
    assert burst(rl, data, "2001:db8::1", count=2) == [SEND, SEND]
    assert burst(rl, data, "2001:db8:0:1::1", count=1) == [SEND]


def test_ipv4_mapped_addresses_count_as_ipv4() -> None:
    rl = limiter()
    data = q("www.example.com")
    assert burst(rl, data, "::ffff:198.51.100.1", count=2) == [SEND, SEND]
    assert burst(rl, data, "198.51.100.9", count=1) == [DROP]


def test_exempt_networks_are_never_limited() -> None:
    rl = limiter(exempt=("198.51.100.0/24", "2001:db8::/32"))
    data = q("www.example.com")
    assert burst(rl, data, "198.51.100.1", count=50) == [SEND] * 50
    assert burst(rl, data, "2001:db8::1", count=50) == [SEND] * 50
    assert burst(rl, data, "203.0.113.1") == [SEND, SEND, DROP]


def test_the_default_exempts_loopback() -> None:
    rl = ResponseLimiter(RrlSettings(rate=1, slip=0))
    data = q("www.example.com")
    assert burst(rl, data, "127.0.0.1", count=20) == [SEND] * 20
    assert burst(rl, data, "::1", count=20) == [SEND] * 20
    assert burst(rl, data, "198.51.100.1") == [SEND, DROP, DROP]


def test_the_table_is_bounded_whatever_the_sources() -> None:
    rl = limiter(table_size=100)
    data = q("www.example.com")
    for i in range(5000):
        rl.check(data, f"10.{i // 256 % 256}.{i % 256}.1", ANSWER)
    assert rl.accounts == 100


@pytest.mark.parametrize(("options", "message"), [
    ({"rate": -1}, "--rrl-rate"), ({"window": 0}, "--rrl-window"), ({"slip": -2}, "--rrl-slip"),
    ({"table_size": 0}, "--rrl-table-size"), ({"prefix_v4": 33}, "--rrl-prefix-v4"),
    ({"prefix_v6": 0}, "--rrl-prefix-v6"), ({"exempt": ("10.0.0.0/33",)}, "--rrl-exempt"),
    ({"exempt": ("none", "10.0.0.0/8")}, "--rrl-exempt none"),
])
def test_bad_settings_name_their_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RrlSettings(**options)  # type: ignore[arg-type]


def test_parse_exempt() -> None:
    assert parse_exempt(["none"]) == ()
    assert [str(n) for n in parse_exempt(["192.0.2.7", "2001:db8::/32"])] == [
        "192.0.2.7/32", "2001:db8::/32"]
