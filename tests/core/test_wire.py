"""core/wire.py: the hand parser of queries (header, question, OPT, Client Subnet).

Properties: any bytes parse or raise `WireError` (nothing else escapes); a
query dnspython renders parses back to the same fields. Then one test per
FORMERR case of RFC 6891 / RFC 7871.
"""

from __future__ import annotations

import ipaddress
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geostream_dns.core import wire
from geostream_dns.core.wire import MalformedQuery, Query, parse_query, udp_limit
from geostream_dns.errors import WireError
from tests.core.helpers import unknown_option

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
HEADER_1Q = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)


def opt_rr(owner: bytes = b"\x00", payload: int = 1232, ttl: int = 0,
           rdata: bytes = b"") -> bytes:
    return owner + struct.pack("!HHIH", 41, payload, ttl, len(rdata)) + rdata


def with_additional(*records: bytes) -> bytes:
    """The fixed question followed by `records` in the additional section."""
    head = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, len(records))
    return head + QUESTION + b"".join(records)


def ecs_option(body: bytes) -> bytes:
    return struct.pack("!HH", 8, len(body)) + body


def ecs_query(body: bytes) -> bytes:
    return with_additional(opt_rr(rdata=ecs_option(body)))


# -- any bytes: a Query or a WireError, nothing else -------------------------------


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, byte flips and appended junk of a valid query."""
    n = len(data)
    return st.one_of(
        st.integers(0, n).map(lambda i: data[:i]),
        st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
            lambda t: data[:t[0]] + bytes([t[1]]) + data[t[0] + 1:]),
        st.binary(min_size=1, max_size=40).map(lambda junk: data + junk),
    )


_SEED_QUERIES = [
    dns.message.make_query("www.example.com", "A").to_wire(),
    dns.message.make_query("Www.Example.COM", "TXT", use_edns=0, want_dnssec=True,
                           options=[dns.edns.ECSOption("198.51.100.0", 24)]).to_wire(),
    dns.message.make_query("a.b.c.example.org", "AAAA", use_edns=0,
                           options=[dns.edns.ECSOption("2001:db8::", 48),
                                    unknown_option(65001, b"xyz")]).to_wire(),
]

any_bytes = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(_SEED_QUERIES).flatmap(_mutations),
)


@PROPERTY
@given(any_bytes)
def test_any_bytes_parse_or_raise_wire_error(data: bytes) -> None:
    try:
        q = parse_query(data)
    except MalformedQuery as exc:
        # A readable header is what earns FORMERR; without one the packet is dropped.
        if exc.header_ok:
            assert len(data) >= 12 and not data[2] & 0x80
            assert exc.msg_id == int.from_bytes(data[:2], "big")
        return
    except WireError as exc:  # pragma: no cover - the parser always says header_ok
        pytest.fail(f"a WireError that is not a MalformedQuery: {exc!r}")
    assert isinstance(q, Query)
    assert q.question == data[12:12 + len(q.question)]
    assert q.question.startswith(q.qname)


# -- what dnspython renders parses back to the same fields -------------------------

label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                min_size=1, max_size=20)
names = st.lists(label, min_size=1, max_size=6).map(lambda labels: ".".join(labels) + ".")
v4 = st.integers(0, 2**32 - 1).map(lambda i: str(ipaddress.IPv4Address(i)))
v6 = st.integers(0, 2**128 - 1).map(lambda i: str(ipaddress.IPv6Address(i)))
ecs_options = st.one_of(
    st.tuples(v4, st.integers(0, 32)),
    st.tuples(v6, st.integers(0, 128)),
).map(lambda t: dns.edns.ECSOption(t[0], t[1]))
other_options = st.builds(unknown_option, st.integers(9, 65535).filter(
    lambda c: c not in (10, 11, 12, 13, 14, 15)), st.binary(max_size=20))


@st.composite
def queries(draw: st.DrawFn) -> dns.message.Message:
    qname = draw(names)
    qtype = draw(st.integers(1, 65535).filter(lambda t: t != 41))
    qclass = draw(st.sampled_from([1, 3, 254, 255]))
    edns = draw(st.booleans())
    options: list[dns.edns.Option] = []
    if edns:
        if draw(st.booleans()):
            options.append(draw(ecs_options))
        options.extend(draw(st.lists(other_options, max_size=2)))
    q = dns.message.make_query(qname, dns.rdatatype.RdataType.make(qtype),
                               dns.rdataclass.RdataClass.make(qclass),
                               use_edns=0 if edns else False,
                               payload=draw(st.integers(0, 65535)),
                               want_dnssec=edns and draw(st.booleans()),
                               options=options or None)
    q.id = draw(st.integers(0, 65535))
    q.flags = draw(st.sampled_from([0, dns.flags.RD, dns.flags.CD, dns.flags.AD,
                                    dns.flags.RD | dns.flags.CD | dns.flags.AD]))
    q.set_opcode(draw(st.sampled_from([dns.opcode.QUERY, dns.opcode.NOTIFY])))
    return q


@PROPERTY
@given(queries())
def test_parse_of_render_gives_back_every_field(q: dns.message.Message) -> None:
    data = q.to_wire()
    parsed = parse_query(data)
    (question,) = q.question
    assert parsed.msg_id == q.id
    assert parsed.flags == q.flags
    assert parsed.opcode == q.opcode()
    assert parsed.qname == question.name.to_wire()  # letter case preserved
    assert (parsed.qtype, parsed.qclass) == (question.rdtype, question.rdclass)
    assert parsed.question == data[12:12 + len(parsed.qname) + 4]
    assert parsed.key == parsed.question.lower()  # bytes.lower() maps ASCII A-Z only
    if q.edns < 0:
        assert parsed.edns is None
        assert udp_limit(parsed.edns) == 512
        return
    assert parsed.edns is not None
    assert parsed.edns.payload == q.payload
    assert parsed.edns.version == 0
    assert parsed.edns.do == bool(q.ednsflags & dns.flags.DO)
    assert udp_limit(parsed.edns) == min(max(q.payload, 512), 1232)
    assert parsed.edns.options == tuple((o.otype, o.to_wire()) for o in q.options)
    ecs = [o for o in q.options if isinstance(o, dns.edns.ECSOption)]
    if not ecs:
        assert parsed.edns.ecs is None
        return
    (option,) = ecs
    got = parsed.edns.ecs
    assert got is not None
    assert (got.family, got.source_prefix, got.scope_prefix) == (
        option.family, option.srclen, 0)
    network = ipaddress.ip_network(f"{option.address}/{option.srclen}", strict=False)
    full = network.network_address.packed
    assert got.address == full[:(option.srclen + 7) // 8]
    assert got.address_bytes() == full
    # The option a response carries back differs from the query's only in the scope.
    body = option.to_wire()
    assert body is not None
    assert got.to_option(0) == struct.pack("!HH", 8, len(body)) + body


def test_key_lowers_ascii_letters_only() -> None:
    q = parse_query(dns.message.make_query("WwW.ExAmPlE.CoM", "A").to_wire())
    assert q.key == b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
    assert q.qname == b"\x03WwW\x07ExAmPlE\x03CoM\x00"


# -- FORMERR: Client Subnet (RFC 7871 §6) ----------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (struct.pack("!HBB", 3, 0, 0), "family 3 is not IPv4 or IPv6"),
        (struct.pack("!HBB", 0, 0, 0), "family 0 is not IPv4 or IPv6"),
        (struct.pack("!HBB", 1, 33, 0) + b"\xc0\x00\x02\x01\x00", "source prefix 33 exceeds 32"),
        (struct.pack("!HBB", 2, 129, 0) + b"\x20\x01" + b"\x00" * 15,
         "source prefix 129 exceeds 128"),
        (struct.pack("!HBB", 1, 24, 0) + b"\xc0\x00\x02\x00", "address length does not match"),
        (struct.pack("!HBB", 1, 24, 0) + b"\xc0\x00", "address length does not match"),
        (struct.pack("!HBB", 1, 0, 0) + b"\x00", "address length does not match"),
        (struct.pack("!HBB", 2, 48, 0) + b"\x20\x01\x0d\xb8", "address length does not match"),
        (struct.pack("!HBB", 1, 25, 0) + b"\xc6\x33\x64\xc0", "bits set past"),
        (struct.pack("!HBB", 1, 23, 0) + b"\xc6\x33\x65", "bits set past"),
        (struct.pack("!HBB", 2, 33, 0) + b"\x20\x01\x0d\xb8\x01", "bits set past"),
        (struct.pack("!HBB", 1, 24, 24) + b"\xc0\x00\x02", "scope prefix must be 0"),
        (struct.pack("!HB", 1, 24), "shorter than 4 bytes"),
    ],
    ids=["family-3", "family-0", "v4-prefix-33", "v6-prefix-129", "address-too-long",
         "address-too-short", "prefix-0-with-address", "v6-address-too-short",
         "v4-bits-past-25", "v4-bits-past-23", "v6-bits-past-33", "scope-in-query",
         "option-too-short"],
)
def test_client_subnet_formerr(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedQuery, match=reason) as info:
        parse_query(ecs_query(body))
    # FORMERR, not a drop: the header and the question were readable.
    assert info.value.header_ok
    assert info.value.msg_id == 0xBEEF
    assert info.value.question == QUESTION


@pytest.mark.parametrize(
    ("body", "family", "prefix", "full"),
    [
        (struct.pack("!HBB", 1, 0, 0), 1, 0, b"\x00" * 4),
        (struct.pack("!HBB", 1, 32, 0) + b"\xc6\x33\x64\x07", 1, 32, b"\xc6\x33\x64\x07"),
        (struct.pack("!HBB", 1, 25, 0) + b"\xc6\x33\x64\x80", 1, 25, b"\xc6\x33\x64\x80"),
        (struct.pack("!HBB", 2, 0, 0), 2, 0, b"\x00" * 16),
        (struct.pack("!HBB", 2, 56, 0) + bytes.fromhex("20010db8000100"), 2, 56,
         bytes.fromhex("20010db8000100") + b"\x00" * 9),
        (struct.pack("!HBB", 2, 128, 0) + b"\x20\x01" + b"\x00" * 13 + b"\x01", 2, 128,
         b"\x20\x01" + b"\x00" * 13 + b"\x01"),
    ],
    ids=["v4-0", "v4-32", "v4-25", "v6-0", "v6-56", "v6-128"],
)
def test_client_subnet_valid_edges(body: bytes, family: int, prefix: int, full: bytes) -> None:
    q = parse_query(ecs_query(body))
    assert q.edns is not None and q.edns.ecs is not None
    assert (q.edns.ecs.family, q.edns.ecs.source_prefix) == (family, prefix)
    assert q.edns.ecs.address_bytes() == full


def test_two_client_subnet_options_are_formerr() -> None:
    body = struct.pack("!HBB", 1, 24, 0) + b"\xc0\x00\x02"
    data = with_additional(opt_rr(rdata=ecs_option(body) + ecs_option(body)))
    with pytest.raises(MalformedQuery, match="more than one Client Subnet"):
        parse_query(data)


def test_client_subnet_is_not_read_under_edns_version_1() -> None:
    # BADVERS is answered before the options matter; the option is kept as data.
    data = with_additional(opt_rr(ttl=1 << 16, rdata=ecs_option(struct.pack("!HBB", 3, 0, 0))))
    q = parse_query(data)
    assert q.edns is not None
    assert (q.edns.version, q.edns.ecs) == (1, None)


# -- FORMERR: OPT (RFC 6891 §6.1.1) ----------------------------------------------


def test_two_opt_records_are_formerr() -> None:
    with pytest.raises(MalformedQuery, match="more than one OPT") as info:
        parse_query(with_additional(opt_rr(), opt_rr()))
    assert info.value.header_ok


def test_opt_with_a_non_root_owner_is_formerr() -> None:
    owner = dns.name.from_text("example.com.").to_wire()
    assert owner is not None
    with pytest.raises(MalformedQuery, match="OPT owner is not the root") as info:
        parse_query(with_additional(opt_rr(owner=owner)))
    assert info.value.header_ok


def test_opt_with_a_compressed_owner_is_formerr() -> None:
    with pytest.raises(MalformedQuery, match="OPT owner is not the root"):
        parse_query(with_additional(opt_rr(owner=b"\xc0\x0c")))


@pytest.mark.parametrize(
    ("rdata", "reason"),
    [(b"\x00\x08\x00", "truncated EDNS option header"),
     (b"\x00\x08\x00\x08\x00\x01", "truncated EDNS option")],
)
def test_truncated_opt_options_are_formerr(rdata: bytes, reason: str) -> None:
    with pytest.raises(MalformedQuery, match=reason):
        parse_query(with_additional(opt_rr(rdata=rdata)))


def test_edns_fields() -> None:
    data = with_additional(opt_rr(payload=4096, ttl=0x8000, rdata=b"\xfd\xe9\x00\x01x"))
    q = parse_query(data)
    assert q.edns == wire.Edns(4096, 0, True, None, ((65001, b"x"),))
    assert udp_limit(q.edns) == 1232


# -- the header and the question -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "header_ok", "reason"),
    [
        (b"", False, "shorter than a header"),
        (HEADER_1Q[:11], False, "shorter than a header"),
        (struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + QUESTION, False, "QR set"),
        (struct.pack("!HHHHHH", 1, 0, 0, 0, 0, 0), True, "QDCOUNT is 0"),
        (struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + QUESTION * 2, True, "QDCOUNT is 2"),
        (HEADER_1Q + QUESTION[:-1], True, "question runs past"),
        (HEADER_1Q + b"\x03www", True, "name runs past"),
        (HEADER_1Q + b"\xc0\x0c\x00\x01\x00\x01", True, "compressed or invalid label"),
        (HEADER_1Q + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", True, "invalid label"),
        (HEADER_1Q + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
         + b"\x3f" + b"d" * 63 + b"\x00\x00\x01\x00\x01", True, "longer than 255"),
        (HEADER_1Q + QUESTION + b"\x00", True, "trailing bytes"),
        (struct.pack("!HHHHHH", 1, 0, 1, 1, 0, 0) + QUESTION + b"\x00", True,
         "runs past the end"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 1) + QUESTION + b"\x00\x00\x29", True,
         "runs past the end"),
        (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 1) + QUESTION + opt_rr()[:-1] + b"\x01",
         True, "RDATA runs past"),
    ],
    ids=["empty", "11-bytes", "qr-set", "qdcount-0", "qdcount-2", "short-question",
         "short-name", "compressed-qname", "label-type-01", "name-256-octets", "trailing",
         "short-answer-rr", "short-additional-rr", "short-rdata"],
)
def test_malformed(data: bytes, header_ok: bool, reason: str) -> None:
    with pytest.raises(MalformedQuery, match=reason) as info:
        parse_query(data)
    assert info.value.header_ok is header_ok


def test_longest_legal_name_parses() -> None:
    # 3 x 63-octet labels + one 61-octet label + the root: exactly 255 octets.
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00"
    assert len(name) == 255
    q = parse_query(HEADER_1Q + name + b"\x00\x01\x00\x01")
    assert q.qname == name


def test_records_in_answer_and_authority_are_skipped() -> None:
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\xc0\x00\x02\x01"
    data = struct.pack("!HHHHHH", 7, 0, 1, 1, 1, 1) + QUESTION + rr + rr + opt_rr()
    q = parse_query(data)
    assert q.edns is not None and q.qtype == 1


def test_opcode_is_read_from_the_flags() -> None:
    q = dns.message.make_query("example.com", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    assert parse_query(q.to_wire()).opcode == dns.opcode.NOTIFY


def test_udp_limit() -> None:
    assert udp_limit(None) == 512
    assert [udp_limit(wire.Edns(p, 0, False, None, ())) for p in (0, 511, 512, 1232, 65535)] == [
        512, 512, 512, 1232, 1232]
