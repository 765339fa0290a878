"""EDNS(0) (RFC 6891) and message size: OPT, BADVERS, DO, payload caps, TC, TCP."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from tests.e2e.conftest import (
    BIG_TXT,
    MAX_UDP,
    MEDIUM_TXT,
    MIN_UDP,
    rdata_texts,
    tcp_exchange,
    udp,
    udp_exchange,
)
from tests.support.harness import ServerProcess

BADVERS = 16


def txt_strings(reply: dns.message.Message) -> set[str]:
    return {s.strip('"') for s in rdata_texts(reply, "TXT")}


# -- OPT --------------------------------------------------------------------------------


def test_opt_answered_when_asked(server: ServerProcess) -> None:
    reply = udp(server, "static.example.com", "A", use_edns=0, payload=1232)
    assert reply.edns == 0
    assert reply.payload == MAX_UDP
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


def test_no_opt_when_not_asked(server: ServerProcess) -> None:
    reply = udp(server, "static.example.com", "A", use_edns=False)
    assert reply.edns == -1
    assert reply.opt is None
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


@pytest.mark.parametrize(("name", "rcode"), [("nosuch.example.com", dns.rcode.NXDOMAIN),
                                             ("www.example.net", dns.rcode.REFUSED),
                                             ("www.example.com", dns.rcode.NOERROR)])
def test_opt_on_every_kind_of_answer(server: ServerProcess, name: str, rcode: int) -> None:
    reply = udp(server, name, "A", use_edns=0)
    assert reply.rcode() == rcode
    assert reply.edns == 0
    assert reply.payload == MAX_UDP


def test_badvers_for_edns_version_1(server: ServerProcess) -> None:
    reply = udp(server, "static.example.com", "A", use_edns=1)
    assert reply.rcode() == BADVERS
    assert reply.answer == []
    assert reply.edns == 0, "the reply's OPT says the version we speak"


def test_unknown_edns_options_are_ignored(server: ServerProcess) -> None:
    options: list[dns.edns.Option] = [
        dns.edns.GenericOption(65001, b"\x01\x02\x03"),  # type: ignore[arg-type]
        dns.edns.GenericOption(65432, b""),  # type: ignore[arg-type]
    ]
    reply = udp(server, "static.example.com", "A", use_edns=0, options=options)
    assert reply.rcode() == dns.rcode.NOERROR
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}
    assert len(reply.options) == 0, "unknown options are not echoed"


@pytest.mark.parametrize("name", ["static.example.com", "www.example.com", "nosuch.example.com"])
def test_do_bit_echoed(server: ServerProcess, name: str) -> None:
    with_do = udp(server, name, "A", use_edns=0, want_dnssec=True)
    assert with_do.ednsflags & dns.flags.DO
    without = udp(server, name, "A", use_edns=0, want_dnssec=False)
    assert not without.ednsflags & dns.flags.DO


# -- size and truncation -------------------------------------------------------------------


def assert_truncated(reply: dns.message.Message, wire: bytes, limit: int) -> None:
    assert len(wire) <= limit
    assert reply.flags & dns.flags.TC
    assert reply.rcode() == dns.rcode.NOERROR
    assert not any(r.rdtype == dns.rdatatype.TXT for r in reply.answer), \
        "a truncated reply must not pretend to hold the whole RRset"


@pytest.mark.parametrize(("edns", "payload", "limit"), [(False, 0, MIN_UDP),
                                                        (0, 512, MIN_UDP),
                                                        (0, 1232, MAX_UDP),
                                                        (0, 4096, MAX_UDP),
                                                        (0, 65535, MAX_UDP)])
def test_big_answer_is_truncated_over_udp(server: ServerProcess, edns: int | bool, payload: int,
                                          limit: int) -> None:
    kwargs: dict[str, object] = {"use_edns": edns}
    if edns is not False:
        kwargs["payload"] = payload
    query = dns.message.make_query("big.e2e.test", "TXT", **kwargs)  # type: ignore[arg-type]
    reply, wire = udp_exchange(query, server.host, server.port)
    assert_truncated(reply, wire, limit)
    if edns is not False:
        assert reply.payload == MAX_UDP, "we advertise 1232 whatever the client offers"


def test_big_answer_in_full_over_tcp(server: ServerProcess) -> None:
    for edns in (False, 0):
        query = dns.message.make_query("big.e2e.test", "TXT", use_edns=edns)
        reply, wire = tcp_exchange(query, server.host, server.port)
        assert not reply.flags & dns.flags.TC
        assert len(wire) > MAX_UDP
        assert txt_strings(reply) == set(BIG_TXT)


def test_medium_answer_fits_1232_but_not_512(server: ServerProcess) -> None:
    query = dns.message.make_query("medium.e2e.test", "TXT", use_edns=False)
    reply, wire = udp_exchange(query, server.host, server.port)
    assert_truncated(reply, wire, MIN_UDP)

    query = dns.message.make_query("medium.e2e.test", "TXT", use_edns=0, payload=1232)
    reply, wire = udp_exchange(query, server.host, server.port)
    assert MIN_UDP < len(wire) <= MAX_UDP
    assert not reply.flags & dns.flags.TC
    assert txt_strings(reply) == set(MEDIUM_TXT)


def test_medium_answer_respects_a_smaller_client_payload(server: ServerProcess) -> None:
    query = dns.message.make_query("medium.e2e.test", "TXT", use_edns=0, payload=800)
    reply, wire = udp_exchange(query, server.host, server.port)
    assert_truncated(reply, wire, 800)


def test_truncated_reply_keeps_the_question_and_id(server: ServerProcess) -> None:
    query = dns.message.make_query("BiG.e2e.TEST", "TXT", use_edns=False)
    reply, wire = udp_exchange(query, server.host, server.port)
    assert reply.flags & dns.flags.TC
    assert reply.question[0].name.to_text() == "BiG.e2e.TEST."
    question = query.to_wire()[12:]  # no EDNS: everything after the header is the question
    assert wire[12:12 + len(question)] == question
