"""Signed answers of every kind, validated with dnspython's DNSSEC validation
(`dns.dnssec.validate`, with the `cryptography` backend), in a world built
with a zone's keys, for both algorithms and both key schemes; compact denial
(RFC 9824) checked record by record; signatures made once, never per query."""

from __future__ import annotations

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from geostream_dns.config.loader import load_zone_text
from geostream_dns.core.dnssec import NXNAME, ds_records
from geostream_dns.core.model import Zone
from geostream_dns.core.world import World
from tests.core.helpers import ask, query
from tests.dnssec.signing import check_signed, dnskeys, signed_world, signing_for
from tests.support.zones import zone_text

A, AAAA, NS, DS = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.NS, dns.rdatatype.DS)
NSEC, RRSIG, SOA = dns.rdatatype.NSEC, dns.rdatatype.RRSIG, dns.rdatatype.SOA
ORIGIN = dns.name.from_text("example.com.")
DS_DIGEST = "2BB183AF5F22588179A53B0A98631FAD1A292118E50B2A2F4A0A2A2A2A2A2A2A"

RECORDS = f"""
www: {{type: A, value: 192.0.2.1}}
'*.wild': {{type: A, value: 192.0.2.9}}
a.b.c: {{type: TXT, value: deep}}
alias: {{type: CNAME, value: www.example.com.}}
chain: {{type: CNAME, value: alias.example.com.}}
dangling: {{type: CNAME, value: gone.example.com.}}
big: {{type: TXT, values: [{", ".join(f'"{"x" * 213}{i}"' for i in range(5))}]}}
insecure: {{type: NS, values: [ns1.insecure.example.com.]}}
ns1.insecure: {{type: A, value: 192.0.2.53}}
secure:
  - {{type: NS, values: [ns1.insecure.example.com.]}}
  - {{type: DS, value: {{key_tag: 60485, algorithm: 13, digest_type: 2, digest: {DS_DIGEST}}}}}
geo:
  type: A
  routing:
    pools:
      near: {{values: [{{value: 192.0.2.10}}]}}
      far: {{answer: all, values: [{{value: 192.0.2.20}}, {{value: 192.0.2.21}}]}}
      many: {{answer: multivalue, values: [192.0.2.30, 192.0.2.31, 192.0.2.32]}}
      split: {{answer: weighted, values: [{{value: 192.0.2.40, weight: 1}},
                                         {{value: 192.0.2.41, weight: 1}}]}}
    rules:
      - {{subnets: [10.1.0.0/16], pool: near}}
      - {{subnets: [10.2.0.0/16], pool: many}}
      - {{subnets: [10.3.0.0/16], pool: split}}
      - pool: far
"""

SCHEMES = [("ecdsap256sha256", "ksk-zsk"), ("ed25519", "ksk-zsk"), ("ecdsap256sha256", "csk")]


def signed_zone(algorithm: str = "ecdsap256sha256", keys: str = "ksk-zsk") -> Zone:
    text = zone_text(RECORDS, dnssec=f"{{algorithm: {algorithm}, keys: {keys}}}")
    return load_zone_text(text, "zones/example.com.yaml")


@pytest.fixture(params=SCHEMES, ids=[f"{a}-{k}" for a, k in SCHEMES])
def world(request: pytest.FixtureRequest) -> tuple[World, dict[dns.name.Name, dns.rrset.RRset]]:
    zone = signed_zone(*request.param)
    signing = signing_for([zone])
    return (signed_world([zone], signing=signing),
            {ORIGIN: dnskeys("example.com.", signing["example.com."])})


def types_of(reply: dns.message.Message, section: str = "authority") -> list[int]:
    return [r.rdtype for r in getattr(reply, section) if r.rdtype != RRSIG]


def nsec(reply: dns.message.Message) -> dns.rrset.RRset:
    found = [r for r in reply.authority if r.rdtype == NSEC]
    assert len(found) == 1, reply
    return found[0]


def _types(rrset: dns.rrset.RRset) -> list[int]:
    out = []
    for window, bits in rrset[0].windows:
        for i, byte in enumerate(bits):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    out.append(window * 256 + i * 8 + bit)
    return out


def test_static_answer_is_signed_and_validates(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("www.example.com.", "A", do=True))
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert [r.rdtype for r in reply.answer] == [A, RRSIG]
    assert check_signed(reply, keys) == 1
    # DO=0 (with or without EDNS): the same answer without signatures
    for plain in (query("www.example.com.", "A", edns=True), query("www.example.com.", "A")):
        assert [r.rdtype for r in ask(w, plain).answer] == [A]


def test_dnskey_cds_cdnskey_at_the_apex(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("example.com.", "DNSKEY", do=True))
    assert check_signed(reply, keys) == 1
    dnskey = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    sep = [rd for rd in dnskey if rd.flags & 1]
    assert sep
    cds = ask(w, query("example.com.", "CDS", do=True))
    assert check_signed(cds, keys) == 1
    digests = {rd.to_text() for r in cds.answer if r.rdtype == dns.rdatatype.CDS for rd in r}
    assert digests == {dns.dnssec.make_ds(ORIGIN, k, "SHA256").to_text() for k in sep}
    assert check_signed(ask(w, query("example.com.", "CDNSKEY", do=True)), keys) == 1


def test_nxdomain_is_compact_denial(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("nothere.example.com.", "A", do=True))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert types_of(reply) == [SOA, NSEC]
    assert check_signed(reply, keys) == 2
    found = nsec(reply)
    assert found.name == dns.name.from_text("nothere.example.com.")
    assert found[0].next == dns.name.from_text("\\000.nothere.example.com.")
    assert set(_types(found)) == {RRSIG, NSEC, NXNAME}
    # without DO the answer stays an NXDOMAIN without NSEC
    plain = ask(w, query("nothere.example.com.", "A", edns=True))
    assert plain.rcode() == dns.rcode.NXDOMAIN and NSEC not in types_of(plain)
    # the same name asked again gets the same (memoized) denial
    assert ask(w, query("nothere.example.com.", "A", do=True)).to_wire() == reply.to_wire()


def test_no_zone_walking(world: tuple[World, dict]) -> None:
    """Every NSEC covers only the name asked: the next name is its own successor,
    so no answer names another name of the zone."""
    w, _keys = world
    names = ("aaa.example.com.", "zzz.example.com.", "www.example.com.", "x.a.b.c.example.com.")
    for name in names:
        for rdtype in ("A", "MX"):
            reply = ask(w, query(name, rdtype, do=True))
            for r in reply.authority:
                if r.rdtype == NSEC:
                    assert r[0].next == dns.name.Name((b"\x00", *r.name.labels))


def test_nodata_lists_the_types_that_exist(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("www.example.com.", "AAAA", do=True))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert check_signed(reply, keys) == 2
    assert set(_types(nsec(reply))) == {A, RRSIG, NSEC}
    apex = ask(w, query("example.com.", "AAAA", do=True))
    assert set(_types(nsec(apex))) >= {SOA, NS, dns.rdatatype.DNSKEY, RRSIG, NSEC}
    assert check_signed(apex, keys) == 2


def test_empty_non_terminal_is_nodata_with_an_empty_bitmap(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("b.c.example.com.", "A", do=True))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert set(_types(nsec(reply))) == {RRSIG, NSEC}
    assert check_signed(reply, keys) == 2


def test_wildcard_answers_and_nodata(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("x.wild.example.com.", "A", do=True))
    assert [r.rdtype for r in reply.answer] == [A, RRSIG]
    assert check_signed(reply, keys) == 1
    nodata = ask(w, query("y.wild.example.com.", "MX", do=True))
    assert set(_types(nsec(nodata))) == {A, RRSIG, NSEC}
    assert check_signed(nodata, keys) == 2


def test_cname_chain_every_link_signed(world: tuple[World, dict]) -> None:
    w, keys = world
    reply = ask(w, query("chain.example.com.", "A", do=True))
    assert types_of(reply, "answer") == [dns.rdatatype.CNAME, dns.rdatatype.CNAME, A]
    assert check_signed(reply, keys) == 3
    dangling = ask(w, query("dangling.example.com.", "A", do=True))
    assert dangling.rcode() == dns.rcode.NOERROR  # compact denial of the target
    assert nsec(dangling).name == dns.name.from_text("gone.example.com.")
    assert check_signed(dangling, keys) == 3


def test_referrals_with_and_without_ds(world: tuple[World, dict]) -> None:
    w, keys = world
    unsigned = frozenset({NS, A})
    insecure = ask(w, query("www.insecure.example.com.", "A", do=True))
    assert not insecure.flags & dns.flags.AA
    assert types_of(insecure) == [NS, NSEC]
    assert set(_types(nsec(insecure))) == {NS, RRSIG, NSEC}  # no DS bit: insecure
    assert check_signed(insecure, keys, unsigned) == 1
    secure = ask(w, query("www.secure.example.com.", "A", do=True))
    assert types_of(secure) == [NS, DS]
    assert check_signed(secure, keys, unsigned) == 1
    # DS asked at the cut: the parent answers (signed), or proves there is none
    assert check_signed(ask(w, query("secure.example.com.", "DS", do=True)), keys) == 1
    no_ds = ask(w, query("insecure.example.com.", "DS", do=True))
    assert DS not in set(_types(nsec(no_ds))) and check_signed(no_ds, keys) == 2


def test_routed_variants_per_client_network(world: tuple[World, dict]) -> None:
    w, keys = world
    near = ask(w, query("geo.example.com.", "A", do=True, ecs="10.1.2.0/24"))
    far = ask(w, query("geo.example.com.", "A", do=True, ecs="10.9.2.0/24"))
    assert {rd.to_text() for rd in near.answer[0]} == {"192.0.2.10"}
    assert {rd.to_text() for rd in far.answer[0]} == {"192.0.2.20", "192.0.2.21"}
    for reply in (near, far):
        assert check_signed(reply, keys) == 1
        assert any(isinstance(o, dns.edns.ECSOption) for o in reply.options)
    for ecs in ("10.2.0.0/24", "10.3.0.0/24"):  # multivalue (shuffled) and weighted
        for _ in range(6):
            assert check_signed(ask(w, query("geo.example.com.", "A", do=True, ecs=ecs)),
                                keys) == 1
    # no ECS: by source address, DO=1 and DO=0 kept apart
    assert check_signed(ask(w, query("geo.example.com.", "A", do=True), "10.1.9.9"), keys) == 1
    assert RRSIG not in types_of(ask(w, query("geo.example.com.", "A", edns=True), "10.1.9.9"),
                                 "answer")


def test_signatures_are_made_once_never_per_query() -> None:
    zone = signed_zone()
    w = signed_world([zone])
    signer = w.snapshot.zones[ORIGIN].signer
    assert signer is not None
    built = signer.made
    for _ in range(3):  # static answers: signed at build time
        ask(w, query("www.example.com.", "A", do=True))
        ask(w, query("example.com.", "DNSKEY", do=True))
    assert signer.made == built
    ask(w, query("geo.example.com.", "A", do=True, ecs="10.9.0.0/24"))  # first variant: signed
    first = signer.made
    assert first > built
    for i in range(20):  # other networks with the same decision: the same signed rendering
        ask(w, query("geo.example.com.", "A", do=True, ecs=f"10.9.{i}.0/24"))
        ask(w, query("geo.example.com.", "A", do=True), f"10.9.{i}.1")
    assert signer.made == first
    ask(w, query("gone1.example.com.", "A", do=True))
    denial = signer.made
    for _ in range(5):
        ask(w, query("gone1.example.com.", "A", do=True))
    assert signer.made == denial


def test_a_signed_answer_too_big_for_udp_sets_tc_and_is_whole_over_tcp() -> None:
    zone = signed_zone()
    signing = signing_for([zone])
    w = signed_world([zone], signing=signing)
    keys = {ORIGIN: dnskeys("example.com.", signing["example.com."])}
    # about 1,180 bytes without signatures: fits in 1232; with its RRSIG it does not
    plain = ask(w, query("big.example.com.", "TXT", edns=True))
    assert not plain.flags & dns.flags.TC and len(plain.to_wire()) <= 1232
    udp = ask(w, query("big.example.com.", "TXT", do=True, payload=4096))
    tcp = ask(w, query("big.example.com.", "TXT", do=True), tcp=True)
    assert len(tcp.to_wire()) > 1232
    assert udp.flags & dns.flags.TC and not udp.answer
    assert not tcp.flags & dns.flags.TC and check_signed(tcp, keys) == 1
    small = ask(w, query("www.example.com.", "A", do=True, payload=512))
    assert not small.flags & dns.flags.TC and check_signed(small, keys) == 1


def test_unsigned_zone_ignores_do() -> None:
    zone = load_zone_text(zone_text(RECORDS), "zones/example.com.yaml")
    w = signed_world([zone])
    reply = ask(w, query("nothere.example.com.", "A", do=True))
    assert reply.rcode() == dns.rcode.NXDOMAIN and RRSIG not in types_of(reply)


def test_ds_for_the_parent_names_the_ksk() -> None:
    zone = signed_zone()
    signing = signing_for([zone])["example.com."]
    ds = ds_records(ORIGIN, signing.keys)
    ksks = [k for k in signing.keys if k.role == "ksk"]
    assert len(ds) == 1 and ds[0].key_tag == ksks[0].tag


def test_compact_answers_ok_restores_nxdomain(world: tuple[World, dict]) -> None:
    """A client that sets CO (RFC 9824) gets NXDOMAIN with the same signed NSEC,
    and CO back; without CO the rcode is NOERROR."""
    w, keys = world
    q = query("gone2.example.com.", "A", do=True)
    q.ednsflags |= 0x4000
    reply = ask(w, q)
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.ednsflags & 0x4000
    assert set(_types(nsec(reply))) == {RRSIG, NSEC, NXNAME} and check_signed(reply, keys) == 2
    assert ask(w, q).to_wire() == reply.to_wire()  # memoized by its OPT record
    plain = ask(w, query("gone2.example.com.", "A", do=True))
    assert plain.rcode() == dns.rcode.NOERROR and not plain.ednsflags & 0x4000
    nodata_q = query("www.example.com.", "AAAA", do=True)
    nodata_q.ednsflags |= 0x4000
    nodata = ask(w, nodata_q)  # NODATA is NOERROR with or without CO
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.ednsflags & 0x4000


def test_an_explicit_nxname_query_is_formerr(world: tuple[World, dict]) -> None:
    w, _keys = world
    assert ask(w, query("www.example.com.", NXNAME, do=True)).rcode() == dns.rcode.FORMERR


def test_ds_of_a_hosted_child_zone_is_answered_by_its_parent() -> None:
    parent = load_zone_text(zone_text(
        "sub: [{type: NS, values: [ns1.example.net.]},"
        f" {{type: DS, value: {{key_tag: 60485, algorithm: 13, digest_type: 2,"
        f" digest: {DS_DIGEST}}}}}]\n"
        "nods: {type: NS, values: [ns1.example.net.]}\n",
        dnssec="{algorithm: ecdsap256sha256}"), "zones/example.com.yaml")
    child = load_zone_text(zone_text("www: {type: A, value: 192.0.2.7}\n", "sub.example.com.",
                                     dnssec="{algorithm: ed25519}"), "zones/sub.example.com.yaml")
    nods = load_zone_text(zone_text("www: {type: A, value: 192.0.2.8}\n", "nods.example.com."),
                          "zones/nods.example.com.yaml")
    signing = signing_for([parent, child, nods])
    w = signed_world([parent, child, nods], signing=signing)
    parent_keys = {ORIGIN: dnskeys("example.com.", signing["example.com."])}
    sub = dns.name.from_text("sub.example.com.")
    child_keys = {sub: dnskeys("sub.example.com.", signing["sub.example.com."])}
    ds = ask(w, query("sub.example.com.", "DS", do=True))
    assert [r.rdtype for r in ds.answer] == [DS, RRSIG]
    assert ds.answer[1][0].signer == ORIGIN and check_signed(ds, parent_keys) == 1
    no_ds = ask(w, query("nods.example.com.", "DS", do=True))  # parent proves there is none
    assert not no_ds.answer and check_signed(no_ds, parent_keys) == 2
    # everything else below the cut is the child's, signed with the child's keys
    www = ask(w, query("www.sub.example.com.", "A", do=True))
    assert www.answer[1][0].signer == sub and check_signed(www, child_keys) == 1
    assert check_signed(ask(w, query("sub.example.com.", "DNSKEY", do=True)), child_keys) == 1


@pytest.mark.parametrize("name, ecs", [("www.example.com.", None),
                                       ("geo.example.com.", "10.1.2.0/24"),
                                       ("nothing.example.com.", None)])
def test_cookie_queries_get_the_signed_answer_with_our_cookie(
        world: tuple[World, dict], name: str, ecs: str | None) -> None:
    """A COOKIE option beside DO=1: the signed answer the same query without the
    cookie gets, with our COOKIE option; asked again (the reply kept for the
    second, then the cookie presented back) it stays whole and valid."""
    w, keys = world
    plain = ask(w, query(name, "A", do=True, ecs=ecs))
    client_cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"clientck")
    cookie_query = query(name, "A", do=True, ecs=ecs, options=[client_cookie])
    for _ in range(3):
        reply = ask(w, cookie_query)
        assert reply.rcode() == plain.rcode()
        assert check_signed(reply, keys) >= 1
        assert [(r.name, r.rdtype) for r in reply.answer + reply.authority] == \
            [(r.name, r.rdtype) for r in plain.answer + plain.authority]
        cookies = [o for o in reply.options if o.otype == dns.edns.OptionType.COOKIE]
        assert len(cookies) == 1 and cookies[0].to_wire()[:8] == b"clientck"
        assert len(cookies[0].to_wire()) == 24
    presented = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, cookies[0].to_wire())
    again = ask(w, query(name, "A", do=True, ecs=ecs, options=[presented]))
    assert check_signed(again, keys) >= 1
    assert [o.to_wire() for o in again.options if o.otype == dns.edns.OptionType.COOKIE] \
        == [cookies[0].to_wire()]
