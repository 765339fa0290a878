"""DNS Cookies (RFC 7873/9018), NSID (RFC 5001) and CH TXT id.server, in the pure core.

The server-cookie maths is checked against the test vectors of RFC 9018
Appendix A; the resolver tests drive `resolve` with query bytes and parse
the replies with dnspython.
"""

from __future__ import annotations

import random

import dns.edns
import dns.message
import dns.rcode
import pytest
from hypothesis import given
from hypothesis import strategies as st

from geostream_dns.core.cookies import (
    MAX_AGE,
    MAX_AHEAD,
    CookieError,
    Cookies,
    cookie_age,
    server_cookie,
    split_cookie,
)
from geostream_dns.core.resolve import limited_reply, resolve
from geostream_dns.core.world import World
from tests.core.helpers import TC, ask, load, make_world, query, unknown_option

SECRET_1 = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
SECRET_OLD = bytes.fromhex("dd3bdf9344b678b185a6f5cb60fca715")
SECRET_NEW = bytes.fromhex("445536bcd2513298075a5d379663c962")
V6_CLIENT = "2001:db8:220:1:59de:d0f4:8769:82b8"


# -- RFC 9018 Appendix A ---------------------------------------------------------------


@pytest.mark.parametrize(("secret", "client_cookie", "client", "stamp", "expected"), [
    # A.1: learning a new server cookie
    (SECRET_1, "2464c4abcf10c957", "198.51.100.100", 1559731985,
     "010000005cf79f111f8130c3eee29480"),
    # A.2: the same client, a renewed cookie
    (SECRET_1, "2464c4abcf10c957", "198.51.100.100", 1559734385,
     "010000005cf7a871d4a564a1442aca77"),
    # A.3: another client
    (SECRET_1, "fc93fc62807ddb86", "203.0.113.203", 1559734700,
     "010000005cf7a9acf73a7810aca2381e"),
    # A.4: an IPv6 client, after the secret rolled over
    (SECRET_NEW, "22681ab97d52c298", V6_CLIENT, 1559741961,
     "010000005cf7c609a6bb79d16625507a"),
])
def test_rfc9018_vectors(secret: bytes, client_cookie: str, client: str, stamp: int,
                         expected: str) -> None:
    cookies = Cookies(secret)
    made = server_cookie(secret, bytes.fromhex(client_cookie), cookies.address(client), stamp)
    assert made.hex() == expected
    # and as a reply to a query holding the client cookie alone, at that time
    cookies.now = stamp
    option, valid = cookies.respond(bytes.fromhex(client_cookie), client)
    assert not valid
    assert option == b"\x00\x0a\x00\x18" + bytes.fromhex(client_cookie + expected)


def test_rfc9018_a2_a_cookie_40_minutes_old_is_valid_and_renewed() -> None:
    cookies = Cookies(SECRET_1, now=1559734385)
    sent = bytes.fromhex("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
    option, valid = cookies.respond(sent, "198.51.100.100")
    assert valid
    assert option[4:].hex() == "2464c4abcf10c957010000005cf7a871d4a564a1442aca77"


def test_rfc9018_a3_reserved_bytes_the_client_sent_are_hashed_and_the_reply_is_fresh() -> None:
    sent = bytes.fromhex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5")
    # Within its hour the cookie (reserved bytes abcdef included in the hash) is valid,
    # and is replaced by one with the reserved bytes zero.
    cookies = Cookies(SECRET_1, now=0x5CF78F71 + 60)
    option, valid = cookies.respond(sent, "203.0.113.203")
    assert valid and option[12:16] == b"\x01\x00\x00\x00"
    # the same cookie from another address is not ours
    assert not cookies.respond(sent, "203.0.113.204")[1]
    # The RFC's reply comes 1 h 52 min after the cookie was made: past its hour here,
    # so not valid, but the fresh cookie is the RFC's byte for byte.
    cookies.now = 1559734700
    option, valid = cookies.respond(sent, "203.0.113.203")
    assert not valid
    assert option[4:].hex() == "fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e"


def test_rfc9018_a4_the_previous_secret_is_still_accepted_and_the_reply_uses_the_new() -> None:
    sent = bytes.fromhex("22681ab97d52c298010000005cf7c57926556bd0934c72f8")
    cookies = Cookies(SECRET_NEW, previous=SECRET_OLD, now=1559741961)
    option, valid = cookies.respond(sent, V6_CLIENT)
    assert valid
    assert option[4:].hex() == "22681ab97d52c298010000005cf7c609a6bb79d16625507a"
    # without the previous secret it is not valid (and a fresh cookie is sent anyway)
    cookies.use(SECRET_NEW)
    option, valid = cookies.respond(sent, V6_CLIENT)
    assert not valid and option[4:].hex().endswith("a6bb79d16625507a")


def test_a_fresh_valid_cookie_is_echoed_as_sent() -> None:
    cookies = Cookies(SECRET_1, now=1_000_000)
    first, _ = cookies.respond(b"clientck", "192.0.2.1")
    cookies.now += 600
    again, valid = cookies.respond(first[4:], "192.0.2.1")
    assert valid and again == first


@pytest.mark.parametrize(("age", "valid"), [
    (0, True), (MAX_AGE, True), (MAX_AGE + 1, False), (-MAX_AHEAD, True),
    (-MAX_AHEAD - 1, False),
])
def test_cookie_lifetime(age: int, valid: bool) -> None:
    cookies = Cookies(SECRET_1, now=5_000_000)
    made = server_cookie(SECRET_1, b"12345678", cookies.address("192.0.2.1"), 5_000_000 - age)
    assert cookies.respond(b"12345678" + made, "192.0.2.1")[1] is valid


def test_ages_wrap_in_serial_arithmetic() -> None:
    assert cookie_age(0xFFFFFF00, 0x100) == 0x200
    assert cookie_age(0x100, 0xFFFFFF00) == -0x200


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 41, 60])
def test_malformed_cookie_lengths(length: int) -> None:
    with pytest.raises(CookieError):
        split_cookie(bytes(length))


@given(st.binary(min_size=0, max_size=48), st.integers(0, 2**32 - 1))
def test_any_option_data_gives_a_cookie_or_cookie_error(value: bytes, now: int) -> None:
    cookies = Cookies(SECRET_1, now=now)
    try:
        option, valid = cookies.respond(value, "192.0.2.1")
    except CookieError:
        assert len(value) not in (8, *range(16, 41))
        return
    assert option[:4] == b"\x00\x0a\x00\x18" and option[4:12] == value[:8]
    assert cookies.respond(option[4:], "192.0.2.1")[1]  # what we send is valid


# -- in the resolver ---------------------------------------------------------------------

ZONE = """
www: {type: A, value: 192.0.2.10}
geo:
  type: A
  routing:
    pools:
      a: {values: [192.0.2.1]}
      b: {values: [192.0.2.2]}
    rules:
      - subnets: [198.51.100.0/24]
        pool: a
      - pool: b
"""
CLIENT = "198.51.100.7"


@pytest.fixture
def world() -> World:
    w = make_world([load(ZONE)])
    w.cookies.use(SECRET_1)
    w.cookies.now = 1_700_000_000
    return w.with_snapshot(w.snapshot)  # the cookies travel with new worlds


def cookie_of(reply: dns.message.Message) -> bytes | None:
    for option in reply.options:
        if option.otype == dns.edns.OptionType.COOKIE:
            return option.to_wire()
    return None


def cookie_query(name: str, cookie: bytes, **kwargs: object) -> dns.message.Message:
    return query(name, options=[unknown_option(10, cookie)], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["www.example.com.", "geo.example.com.", "WwW.example.COM."])
def test_a_cookie_query_gets_the_same_answer_plus_a_server_cookie(world: World,
                                                                  name: str) -> None:
    plain = ask(world, query(name, edns=True), CLIENT)
    for _ in range(3):  # first the slow path, then the memoized shape
        reply = ask(world, cookie_query(name, b"clientck"), CLIENT)
        assert reply.answer == plain.answer and reply.rcode() == dns.rcode.NOERROR
        cookie = cookie_of(reply)
        assert cookie is not None and cookie[:8] == b"clientck" and len(cookie) == 24
    _, outcome = resolve(cookie_query(name, b"clientck").to_wire(), CLIENT, world)
    assert not outcome.cookie
    # presenting the server cookie: valid, echoed, and said so in the outcome
    _, outcome = resolve(cookie_query(name, cookie).to_wire(), CLIENT, world)
    assert outcome.cookie
    reply = ask(world, cookie_query(name, cookie), CLIENT)
    assert cookie_of(reply) == cookie and reply.answer == plain.answer
    # the same cookie from another address, or with a bad hash: answered, not valid
    _, outcome = resolve(cookie_query(name, cookie).to_wire(), "198.51.100.8", world)
    assert not outcome.cookie
    bad = cookie[:-1] + bytes([cookie[-1] ^ 1])
    reply = ask(world, cookie_query(name, bad), CLIENT)
    assert reply.answer == plain.answer and cookie_of(reply) == cookie


def test_a_cookie_beside_other_options_and_ecs(world: World) -> None:
    options = [dns.edns.ECSOption("198.51.100.0", 24), unknown_option(65001, b"x"),
               unknown_option(10, b"clientck")]
    for _ in range(2):
        reply = ask(world, query("geo.example.com.", options=options))
        assert [rd.to_text() for rd in reply.answer[0]] == ["192.0.2.1"]
        cookie = cookie_of(reply)
        assert cookie is not None and cookie[:8] == b"clientck"


@pytest.mark.parametrize("length", [0, 7, 9, 15, 41])
def test_a_malformed_cookie_is_formerr(world: World, length: int) -> None:
    for _ in range(2):
        reply = ask(world, cookie_query("www.example.com.", bytes(length)))
        assert reply.rcode() == dns.rcode.FORMERR


def test_errors_carry_the_cookie_too(world: World) -> None:
    reply = ask(world, cookie_query("www.example.org.", b"clientck"))
    assert reply.rcode() == dns.rcode.REFUSED
    cookie = cookie_of(reply)
    assert cookie is not None and cookie[:8] == b"clientck"


def test_nsid_answers_the_server_id() -> None:
    w = World.create(make_world([load(ZONE)]).snapshot, server_id=b"ns1.example.net",
                     rng=random.Random(1))
    for name in ("www.example.com.", "nowhere.example.org."):
        reply = ask(w, query(name, options=[dns.edns.NSIDOption(b"")]))
        nsids = [o for o in reply.options if o.otype == dns.edns.OptionType.NSID]
        assert len(nsids) == 1 and nsids[0].nsid == b"ns1.example.net"  # type: ignore[attr-defined]
    reply = ask(w, query("www.example.com.", edns=True))
    assert not reply.options


@pytest.mark.parametrize("name", ["id.server.", "hostname.bind.", "ID.Server."])
def test_ch_txt_id_server(name: str) -> None:
    w = World.create(make_world([load(ZONE)]).snapshot, server_id=b"ns1.example.net")
    reply = ask(w, query(name, "TXT", rdclass="CH"))
    assert reply.rcode() == dns.rcode.NOERROR
    assert [rd.to_text() for rd in reply.answer[0]] == ['"ns1.example.net"']
    assert reply.answer[0].rdclass == dns.rdataclass.CH
    assert reply.question[0].name.to_text() == name  # the case as sent


@pytest.mark.parametrize(("name", "rdtype"), [("version.bind.", "TXT"), ("id.server.", "A"),
                                               ("example.com.", "TXT")])
def test_other_ch_queries_are_refused(name: str, rdtype: str) -> None:
    w = World.create(make_world([load(ZONE)]).snapshot, server_id=b"ns1")
    assert ask(w, query(name, rdtype, rdclass="CH")).rcode() == dns.rcode.REFUSED


def test_limited_reply_is_truncated_and_no_bigger_than_the_query(world: World) -> None:
    q = query("www.example.com.", edns=True).to_wire()
    reply = limited_reply(q, CLIENT, world)
    assert reply is not None and len(reply) <= len(q)
    parsed = dns.message.from_wire(reply)
    assert parsed.flags & TC and not parsed.answer and parsed.id == 0x1234
    no_edns = query("www.example.com.").to_wire()
    reply = limited_reply(no_edns, CLIENT, world)
    assert reply is not None and len(reply) == len(no_edns)


def test_limited_reply_to_a_client_cookie_is_badcookie_with_a_fresh_cookie(world: World) -> None:
    reply = limited_reply(cookie_query("www.example.com.", b"clientck").to_wire(), CLIENT, world)
    assert reply is not None
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.BADCOOKIE and not parsed.flags & TC
    cookie = cookie_of(parsed)
    assert cookie is not None and world.cookies.respond(cookie, CLIENT)[1]


def test_limited_reply_to_garbage_is_nothing(world: World) -> None:
    assert limited_reply(b"\x00\x01", CLIENT, world) is None
