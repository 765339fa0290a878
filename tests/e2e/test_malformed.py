"""Odd and hostile input: opcodes, counts, garbage, short packets, QR=1, classes."""

from __future__ import annotations

import random
import socket
import struct

import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.update
import pytest

from tests.e2e.conftest import (
    check_reply,
    frame,
    rcode_of,
    rdata_texts,
    recv_framed,
    tcp_connect,
    udp_exchange,
    udp_raw,
    udp_silent,
)
from tests.support.harness import ServerProcess

FORMERR, NOTIMP, REFUSED = dns.rcode.FORMERR, dns.rcode.NOTIMP, dns.rcode.REFUSED
QUESTION = b"\x06static\x07example\x03com\x00" + struct.pack("!HH", 1, 1)


def header(msg_id: int = 0x4242, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", msg_id, flags, qd, an, ns, ar)


def assert_still_serving(srv: ServerProcess) -> None:
    assert srv.alive(), "the server process died"
    query = dns.message.make_query("static.example.com", "A")
    reply, _ = udp_exchange(query, srv.host, srv.port)
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


def raw_reply(srv: ServerProcess, data: bytes) -> bytes:
    wire = udp_raw(data, srv.host, srv.port)
    assert wire[:2] == data[:2], "reply ID differs"
    assert wire[2] & 0x80, "QR not set in the reply"
    assert not wire[3] & 0x80, "RA set"
    return wire


# -- opcodes ------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [dns.opcode.NOTIFY, dns.opcode.STATUS, dns.opcode.IQUERY, 3,
                                    15])
def test_opcodes_other_than_query_get_notimp(server: ServerProcess, opcode: int) -> None:
    query = dns.message.make_query("example.com", "SOA")
    query.set_opcode(dns.opcode.Opcode(opcode))
    wire = raw_reply(server, query.to_wire())
    assert rcode_of(wire) == NOTIMP
    assert (wire[2] >> 3) & 0x0F == opcode, "opcode echoed"
    assert_still_serving(server)


def test_update_gets_notimp(server: ServerProcess) -> None:
    update = dns.update.UpdateMessage("example.com")
    update.add("evil", 300, "A", "192.0.2.66")
    wire = raw_reply(server, update.to_wire())
    assert rcode_of(wire) == NOTIMP
    assert (wire[2] >> 3) & 0x0F == dns.opcode.UPDATE
    query = dns.message.make_query("evil.example.com", "A")
    assert udp_exchange(query, server.host, server.port)[0].rcode() == dns.rcode.NXDOMAIN


# -- counts and garbage ------------------------------------------------------------------


@pytest.mark.parametrize(("label", "packet"), [
    ("qdcount 0", header(qd=0)),
    ("qdcount 0 with a question anyway", header(qd=0) + QUESTION),
    ("qdcount 2", header(qd=2) + QUESTION + QUESTION),
    ("qdcount 2 one question", header(qd=2) + QUESTION),
    ("garbage after the header", header() + b"\xff\xfe\xfd\xfc\xfb"),
    ("header only, qdcount 1", header()),
    ("question without type and class", header() + QUESTION[:-4]),
    ("question missing one byte", header() + QUESTION[:-1]),
    ("trailing bytes after the question", header() + QUESTION + b"\x00\x00\x07"),
    ("compression pointer loop in qname", header() + b"\xc0\x0c" + b"\x00\x01\x00\x01"),
    ("label longer than 63", header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"),
    ("name longer than 255", header() + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01"),
    ("arcount 1 without a record", header(ar=1) + QUESTION),
    ("OPT with a truncated option", header(ar=1) + QUESTION
     + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x06\x00\x0a\x00\x08\x01\x02"),
    ("two OPT records", header(ar=2) + QUESTION
     + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00") * 2),
    ("ECS with a bad family", header(ar=1) + QUESTION
     + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x08\x00\x08\x00\x04\x00\x07\x00\x00"),
])
def test_unparseable_with_readable_header_gets_formerr(server: ServerProcess, label: str,
                                                       packet: bytes) -> None:
    wire = raw_reply(server, packet)
    assert rcode_of(wire) == FORMERR, label
    assert struct.unpack("!H", wire[6:8])[0] == 0, "FORMERR carries no answers"
    assert_still_serving(server)


@pytest.mark.parametrize("packet", [b"", b"\x12", b"\x12\x34\x01\x00",
                                    header()[:11], b"\xff" * 11])
def test_shorter_than_a_header_is_dropped(server: ServerProcess, packet: bytes) -> None:
    assert udp_silent(packet, server.host, server.port)
    assert_still_serving(server)


def test_qr_set_is_dropped(server: ServerProcess) -> None:
    query = dns.message.make_query("static.example.com", "A")
    reply, wire = udp_exchange(query, server.host, server.port)
    assert reply.answer
    assert udp_silent(wire, server.host, server.port), "a response sent to us was answered"
    as_query = bytearray(query.to_wire())
    as_query[2] |= 0x80
    assert udp_silent(bytes(as_query), server.host, server.port)
    assert udp_silent(header(flags=0x8000) + b"\xff\xff", server.host, server.port)
    assert_still_serving(server)


# -- classes and transfers ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["version.bind", "id.server", "hostname.bind"])
def test_chaos_queries_refused_or_answered(server: ServerProcess, name: str) -> None:
    query = dns.message.make_query(name, "TXT", rdclass=dns.rdataclass.CH)
    reply, _ = udp_exchange(query, server.host, server.port)
    assert reply.rcode() in (dns.rcode.NOERROR, REFUSED, dns.rcode.NXDOMAIN)
    for rrset in reply.answer:
        assert rrset.rdclass == dns.rdataclass.CH
    assert_still_serving(server)


@pytest.mark.parametrize("rdclass", [dns.rdataclass.ANY, dns.rdataclass.NONE,
                                     dns.rdataclass.HS, 42])
def test_other_classes_get_a_sane_reply(server: ServerProcess, rdclass: int) -> None:
    qclass = dns.rdataclass.RdataClass.make(rdclass)
    query = dns.message.make_query("static.example.com", "A", rdclass=qclass)
    reply, _ = udp_exchange(query, server.host, server.port)
    assert reply.question == query.question
    assert reply.rcode() in (dns.rcode.NOERROR, REFUSED, NOTIMP)
    for rrset in reply.answer:  # whatever it says must be true
        assert rrset.rdclass == dns.rdataclass.IN
        assert rdata_texts(reply, "A") <= {"192.0.2.80", "192.0.2.81"}
    assert_still_serving(server)


def test_axfr_over_udp_is_refused(server: ServerProcess) -> None:
    query = dns.message.make_query("example.com", "AXFR")
    reply, _ = udp_exchange(query, server.host, server.port)
    assert reply.rcode() in (REFUSED, NOTIMP, FORMERR)
    assert reply.answer == []


# -- TCP ----------------------------------------------------------------------------------


def test_formerr_over_tcp_keeps_the_connection(server: ServerProcess) -> None:
    garbage = header(msg_id=0x0BAD) + b"\xff\xfe"
    query = dns.message.make_query("mail.example.com", "A")
    with tcp_connect(server.host, server.port) as sock:
        sock.sendall(frame(garbage) + frame(query.to_wire()))
        first = recv_framed(sock)
        assert first[:2] == b"\x0b\xad" and rcode_of(first) == FORMERR
        reply = check_reply(query, recv_framed(sock))
    assert rdata_texts(reply, "A") == {"192.0.2.25"}


def test_short_message_over_tcp_closes_only_that_connection(server: ServerProcess) -> None:
    with tcp_connect(server.host, server.port) as sock:
        sock.sendall(frame(b"\x01\x02\x03"))
        sock.settimeout(2.0)
        try:
            data = sock.recv(1)
        except ConnectionResetError:
            data = b""
        assert data == b"", "no reply for a message shorter than a header"
    assert_still_serving(server)


# -- fuzz ---------------------------------------------------------------------------------


def test_random_and_mutated_packets_never_stop_the_server(server: ServerProcess) -> None:
    rng = random.Random(20240607)
    base = dns.message.make_query("www.example.com", "A", use_edns=0).to_wire()
    packets = [rng.randbytes(rng.randrange(0, 80)) for _ in range(150)]
    for _ in range(250):
        mutated = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        if rng.random() < 0.3:
            del mutated[rng.randrange(len(mutated)):]
        packets.append(bytes(mutated))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server.host, server.port))
        sock.settimeout(0.001)
        for packet in packets:
            sock.send(packet)
            try:  # drain replies as we go, so nothing piles up in our buffer
                while sock.recv(65535):
                    pass
            except (TimeoutError, ConnectionRefusedError):
                pass
    with tcp_connect(server.host, server.port) as sock:
        sock.sendall(b"".join(frame(p) for p in packets[:40] if len(p) >= 12))
    assert_still_serving(server)
    failed = [e for e in server.log_events() if e.get("event") == "query.failed"]
    assert not failed, f"inputs raised inside the server: {failed[:3]}"
