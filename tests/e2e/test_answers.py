"""Answer semantics against the real server: flags, negative answers,
wildcards, empty non-terminals, CNAME chains, delegations, ALIAS, ANY, 0x20."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from tests.e2e.conftest import rdata_texts, tcp_exchange, udp, udp_exchange
from tests.support.harness import ServerProcess

NOERROR, NXDOMAIN, REFUSED = dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED
WWW_VALUES = {"192.0.2.10", "192.0.2.11", "198.51.100.10", "198.51.100.11",
              "203.0.113.10", "203.0.113.11"}
# zone -> (TTL of the SOA in negative answers, SOA MINIMUM): the TTL is
# min(zone TTL, negative_ttl) (RFC 2308 §3); MINIMUM is negative_ttl as written.
NEGATIVE_SOA = {"example.com.": (300, 300),   # ttl 300, negative_ttl 300
                "example.org.": (600, 600),   # ttl 3600, negative_ttl 600
                "e2e.test.": (120, 600)}      # ttl 120, negative_ttl 600


def assert_negative(reply: dns.message.Message, rcode: int, zone: str) -> None:
    """NXDOMAIN/NODATA shape (RFC 2308): AA, empty answer, the zone SOA in authority."""
    assert reply.rcode() == rcode
    assert reply.flags & dns.flags.AA
    assert reply.answer == []
    soas = [r for r in reply.authority if r.rdtype == dns.rdatatype.SOA]
    assert len(soas) == 1, reply.authority
    soa = soas[0]
    assert soa.name == dns.name.from_text(zone)
    assert (soa.ttl, soa[0].minimum) == NEGATIVE_SOA[zone]


# -- flags ------------------------------------------------------------------------


def test_authoritative_answer_sets_aa_and_not_ra(server: ServerProcess) -> None:
    reply = udp(server, "static.example.com", "A")
    assert reply.rcode() == NOERROR
    assert reply.flags & dns.flags.AA
    assert not reply.flags & dns.flags.RA
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}
    assert reply.answer[0].ttl == 3600


@pytest.mark.parametrize("rd", [True, False])
def test_rd_is_copied_from_the_query(server: ServerProcess, rd: bool) -> None:
    query = dns.message.make_query("static.example.com", "A")
    if not rd:
        query.flags &= ~dns.flags.RD
    reply, _ = udp_exchange(query, server.host, server.port)
    assert bool(reply.flags & dns.flags.RD) == rd
    assert not reply.flags & dns.flags.RA


def test_positive_soa_has_the_zone_ttl(server: ServerProcess) -> None:
    reply = udp(server, "example.org", "SOA")
    assert reply.flags & dns.flags.AA
    assert reply.answer[0].ttl == 3600
    assert reply.answer[0][0].minimum == 600


@pytest.mark.parametrize("name", ["static.example.com", "www.example.com", "nosuch.example.com",
                                  "foo.static.example.com"])
def test_cd_is_copied_from_the_query(server: ServerProcess, name: str) -> None:
    """RFC 4035 §3.1.6: the CD bit is copied into the response, on every code path."""
    for cd in (True, False):
        query = dns.message.make_query(name, "A")
        if cd:
            query.flags |= dns.flags.CD
        reply, _ = udp_exchange(query, server.host, server.port)
        assert bool(reply.flags & dns.flags.CD) == cd, f"CD={cd} not echoed for {name}"
        assert not reply.flags & dns.flags.AD


@pytest.mark.parametrize("name", ["www.example.net", "example.co", "com", ".",
                                  "example.com.evil.test", "xexample.com"])
def test_names_outside_hosted_zones_are_refused(server: ServerProcess, name: str) -> None:
    reply = udp(server, name, "A")
    assert reply.rcode() == REFUSED
    assert reply.answer == []
    assert not reply.flags & dns.flags.AA


# -- negative answers -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "zone"), [("nosuch.example.com", "example.com."),
                                            ("a.b.nosuch.example.com", "example.com."),
                                            ("nosuch.example.org", "example.org."),
                                            ("nosuch.e2e.test", "e2e.test.")])
def test_nxdomain_carries_soa_with_negative_ttl(server: ServerProcess,
                                                name: str, zone: str) -> None:
    assert_negative(udp(server, name, "A"), NXDOMAIN, zone)


@pytest.mark.parametrize(("name", "rdtype", "zone"), [("mail.example.com", "AAAA", "example.com."),
                                                      ("static.example.com", "TXT", "example.com."),
                                                      ("example.org", "MX", "example.org."),
                                                      ("example.org", "TXT", "example.org."),
                                                      ("big.e2e.test", "A", "e2e.test.")])
def test_nodata_carries_soa_with_negative_ttl(server: ServerProcess, name: str, rdtype: str,
                                              zone: str) -> None:
    assert_negative(udp(server, name, rdtype), NOERROR, zone)


@pytest.mark.parametrize("rdtype", ["TYPE65401", "DNSKEY", "RRSIG", "NSEC", "HTTPS", "TYPE97"])
def test_other_types_at_the_alias_apex_are_nodata(server: ServerProcess, rdtype: str) -> None:
    """Includes the private type number the ALIAS is stored under: it never leaks."""
    assert_negative(udp(server, "example.com", rdtype), NOERROR, "example.com.")


# -- wildcards (RFC 4592) -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["foo.static.example.com", "a.b.static.example.com"])
def test_wildcard_synthesizes_with_the_query_name_as_owner(server: ServerProcess,
                                                           name: str) -> None:
    reply = udp(server, name, "A")
    assert reply.rcode() == NOERROR
    assert reply.flags & dns.flags.AA
    assert len(reply.answer) == 1
    assert reply.answer[0].name == dns.name.from_text(name)
    assert rdata_texts(reply, "A") == {"192.0.2.99"}


def test_wildcard_nodata_for_another_type(server: ServerProcess) -> None:
    assert_negative(udp(server, "foo.static.example.com", "AAAA"), NOERROR, "example.com.")


def test_wildcard_owner_queried_literally(server: ServerProcess) -> None:
    reply = udp(server, "*.static.example.com", "A")
    assert reply.rcode() == NOERROR
    assert rdata_texts(reply, "A") == {"192.0.2.99"}


def test_existing_name_is_not_synthesized(server: ServerProcess) -> None:
    reply = udp(server, "static.example.com", "A")
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}
    assert_negative(udp(server, "static.example.com", "MX"), NOERROR, "example.com.")


@pytest.mark.parametrize("name", ["empty.nonterminal.example.com", "nonterminal.example.com",
                                  "_tcp.example.com"])
def test_empty_non_terminal_is_nodata_not_nxdomain(server: ServerProcess, name: str) -> None:
    assert_negative(udp(server, name, "A"), NOERROR, "example.com.")


@pytest.mark.parametrize("name", ["x.empty.nonterminal.example.com", "x.nonterminal.example.com",
                                  "x.deep.empty.nonterminal.example.com"])
def test_missing_names_below_an_empty_non_terminal_are_nxdomain(server: ServerProcess,
                                                                name: str) -> None:
    assert_negative(udp(server, name, "A"), NXDOMAIN, "example.com.")


def test_data_below_an_empty_non_terminal_answers(server: ServerProcess) -> None:
    reply = udp(server, "deep.empty.nonterminal.example.com", "TXT")
    assert reply.rcode() == NOERROR
    assert rdata_texts(reply, "TXT") == {
        '"empty.nonterminal.example.com exists but has no data"'}


# -- CNAME chains ---------------------------------------------------------------------------


def test_cname_chain_to_a_static_name(server: ServerProcess) -> None:
    reply = udp(server, "docs.example.com", "A")
    assert reply.rcode() == NOERROR
    assert reply.flags & dns.flags.AA
    owners = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer]
    assert owners == [("docs.example.com.", "CNAME"), ("static.example.com.", "A")]
    assert rdata_texts(reply, "CNAME") == {"static.example.com."}
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


def test_cname_chain_to_a_routed_name(server: ServerProcess) -> None:
    reply = udp(server, "api.example.com", "A")
    assert reply.rcode() == NOERROR
    assert rdata_texts(reply, "CNAME") == {"www.example.com."}
    addresses = rdata_texts(reply, "A")
    assert addresses and addresses <= WWW_VALUES
    assert {r.name.to_text() for r in reply.answer if r.rdtype == dns.rdatatype.A} == {
        "www.example.com."}


@pytest.mark.parametrize(("rdtype", "address"), [("A", "198.51.100.80"),
                                                 ("AAAA", "2001:db8:1::80")])
def test_cname_to_the_apex(server: ServerProcess, rdtype: str, address: str) -> None:
    reply = udp(server, "www.example.org", rdtype)
    assert reply.rcode() == NOERROR
    assert rdata_texts(reply, "CNAME") == {"example.org."}
    assert rdata_texts(reply, rdtype) == {address}


def test_cname_query_returns_only_the_cname(server: ServerProcess) -> None:
    reply = udp(server, "docs.example.com", "CNAME")
    assert reply.rcode() == NOERROR
    assert len(reply.answer) == 1
    assert reply.answer[0].rdtype == dns.rdatatype.CNAME
    assert rdata_texts(reply, "CNAME") == {"static.example.com."}


def test_cname_chain_ending_in_nodata(server: ServerProcess) -> None:
    reply = udp(server, "docs.example.com", "TXT")
    assert reply.rcode() == NOERROR
    assert rdata_texts(reply, "CNAME") == {"static.example.com."}
    assert rdata_texts(reply, "TXT") == set()
    assert [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]


# -- delegations ------------------------------------------------------------------------------


def assert_referral(reply: dns.message.Message) -> None:
    assert reply.rcode() == NOERROR
    assert not reply.flags & dns.flags.AA, "a referral is not authoritative"
    assert reply.answer == []
    ns = [r for r in reply.authority if r.rdtype == dns.rdatatype.NS]
    assert len(ns) == 1 and ns[0].name == dns.name.from_text("shop.example.com")
    assert rdata_texts(reply, "NS", "authority") == {"ns1.shop.example.com.",
                                                     "ns2.shop.example.com."}
    glue = {(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), rd.to_text())
            for r in reply.additional for rd in r}
    assert glue == {("ns1.shop.example.com.", "A", "192.0.2.200"),
                    ("ns2.shop.example.com.", "AAAA", "2001:db8::200")}


@pytest.mark.parametrize(("name", "rdtype"), [("www.shop.example.com", "A"),
                                              ("shop.example.com", "NS"),
                                              ("shop.example.com", "A"),
                                              ("a.b.shop.example.com", "AAAA"),
                                              ("ns1.shop.example.com", "A")])
def test_names_at_or_below_a_cut_get_a_referral(server: ServerProcess,
                                                name: str, rdtype: str) -> None:
    assert_referral(udp(server, name, rdtype))


def test_ds_at_the_cut_is_answered_by_the_parent(server: ServerProcess) -> None:
    assert_negative(udp(server, "shop.example.com", "DS"), NOERROR, "example.com.")


# -- ALIAS at the apex -----------------------------------------------------------------------


def test_alias_apex_answers_a_from_the_target(server: ServerProcess) -> None:
    reply = udp(server, "example.com", "A")
    assert reply.rcode() == NOERROR
    assert reply.flags & dns.flags.AA
    assert [r.name.to_text() for r in reply.answer] == ["example.com."]
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.A]
    addresses = rdata_texts(reply, "A")
    assert addresses and addresses <= WWW_VALUES


def test_alias_apex_aaaa_is_nodata_when_the_target_has_none(server: ServerProcess) -> None:
    assert_negative(udp(server, "example.com", "AAAA"), NOERROR, "example.com.")


# -- ANY (RFC 8482) ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example.com", "static.example.com", "ns2.example.com",
                                  "example.org"])
def test_any_gets_one_rrset(server: ServerProcess, name: str) -> None:
    reply = udp(server, name, "ANY")
    assert reply.rcode() == NOERROR
    assert reply.flags & dns.flags.AA
    assert len(reply.answer) == 1, reply.answer
    assert reply.answer[0].name == dns.name.from_text(name)


def test_any_over_tcp_is_minimal_too(server: ServerProcess) -> None:
    query = dns.message.make_query("example.com", "ANY")
    reply, _ = tcp_exchange(query, server.host, server.port)
    assert reply.rcode() == NOERROR
    assert len(reply.answer) == 1, reply.answer


def test_any_at_a_wildcard_is_synthesized(server: ServerProcess) -> None:
    reply = udp(server, "foo.static.example.com", "ANY")
    assert reply.rcode() == NOERROR
    assert [(r.name.to_text(), r.rdtype) for r in reply.answer] == [
        ("foo.static.example.com.", dns.rdatatype.A)]


def test_any_for_a_missing_name_is_nxdomain(server: ServerProcess) -> None:
    assert_negative(udp(server, "nosuch.example.com", "ANY"), NXDOMAIN, "example.com.")


# -- letter case (0x20) -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answers"), [
    ("wWw.ExAmPlE.cOm", "A", NOERROR, True),            # routed
    ("sTaTiC.eXaMpLe.CoM", "A", NOERROR, True),         # static, pre-rendered
    ("FoO.sTaTiC.ExAmPlE.cOm", "A", NOERROR, True),     # wildcard
    ("DoCs.ExAmPlE.CoM", "A", NOERROR, True),           # CNAME chain
    ("NoSuCh.ExAmPlE.cOm", "A", NXDOMAIN, False),       # NXDOMAIN
    ("wWw.ShOp.ExAmPlE.cOm", "A", NOERROR, False),      # referral
    ("WwW.eXaMpLe.NeT", "A", REFUSED, False),           # not ours
])
def test_question_case_is_echoed_exactly(server: ServerProcess, name: str, rdtype: str, rcode: int,
                                         answers: bool) -> None:
    query = dns.message.make_query(name, rdtype)
    sent = query.to_wire()
    reply, wire = udp_exchange(query, server.host, server.port)
    question = sent[12:12 + len(name) + 2 + 4]  # qname wire length is len(text) + 2
    assert wire[4:6] == b"\x00\x01"
    assert wire[12:12 + len(question)] == question, "question bytes differ from the query's"
    assert reply.question[0].name.to_text() == name + "."
    assert reply.rcode() == rcode
    if answers:
        assert reply.answer
        assert reply.answer[0].name.to_text() == name + ".", "owner must echo the query's case"
