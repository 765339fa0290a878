"""TCP (RFC 7766): pipelining, split messages, idle timeout."""

from __future__ import annotations

import pathlib
import socket
import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest

from tests.e2e.conftest import (
    NO_PROBE,
    IdleWatch,
    check_reply,
    frame,
    prepare_zones,
    rdata_texts,
    recv_framed,
    tcp_connect,
    tcp_exchange,
)
from tests.support.harness import ServerProcess, running

PIPELINED = [("static.example.com", "A", {"192.0.2.80", "192.0.2.81"}),
             ("ns2.example.com", "AAAA", {"2001:db8::53"}),
             ("foo.static.example.com", "A", {"192.0.2.99"})]


def test_tcp_answers(server: ServerProcess) -> None:
    query = dns.message.make_query("static.example.com", "A")
    reply, _ = tcp_exchange(query, server.host, server.port)
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


def test_pipelined_queries_in_one_write(server: ServerProcess) -> None:
    queries = {}
    for i, (name, rdtype, _) in enumerate(PIPELINED):
        q = dns.message.make_query(name, rdtype)
        q.id = 0x1000 + i
        queries[q.id] = q
    with tcp_connect(server.host, server.port) as sock:
        sock.sendall(b"".join(frame(q.to_wire()) for q in queries.values()))
        replies = [recv_framed(sock) for _ in PIPELINED]
        # the connection stays open for more
        extra = dns.message.make_query("mail.example.com", "A")
        sock.sendall(frame(extra.to_wire()))
        assert rdata_texts(check_reply(extra, recv_framed(sock)), "A") == {"192.0.2.25"}
    seen = set()
    for wire in replies:
        msg_id = int.from_bytes(wire[:2], "big")
        assert msg_id in queries and msg_id not in seen
        seen.add(msg_id)
        reply = check_reply(queries[msg_id], wire)
        expected = PIPELINED[msg_id - 0x1000][2]
        rdtype = PIPELINED[msg_id - 0x1000][1]
        assert reply.question == queries[msg_id].question
        assert rdata_texts(reply, rdtype) == expected
    assert seen == set(queries)


def test_many_pipelined_queries(server: ServerProcess) -> None:
    names = [("mail.example.com", "192.0.2.25"), ("mail2.example.com", "198.51.100.25"),
             ("sip.example.com", "192.0.2.60"), ("ns1.example.com", "192.0.2.53")]
    queries = []
    for i in range(60):
        q = dns.message.make_query(names[i % len(names)][0], "A")
        q.id = i
        queries.append(q)
    with tcp_connect(server.host, server.port) as sock:
        sock.sendall(b"".join(frame(q.to_wire()) for q in queries))
        replies = [recv_framed(sock) for _ in queries]
    by_id = {int.from_bytes(w[:2], "big"): w for w in replies}
    assert sorted(by_id) == list(range(60))
    for i, q in enumerate(queries):
        assert rdata_texts(check_reply(q, by_id[i]), "A") == {names[i % len(names)][1]}


def test_answer_after_client_half_close(server: ServerProcess) -> None:
    query = dns.message.make_query("static.example.com", "A")
    with tcp_connect(server.host, server.port) as sock:
        sock.sendall(frame(query.to_wire()))
        sock.shutdown(socket.SHUT_WR)
        reply = check_reply(query, recv_framed(sock))
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


def test_message_split_across_segments(server: ServerProcess) -> None:
    query = dns.message.make_query("docs.example.com", "A", use_edns=0)
    data = frame(query.to_wire())
    with tcp_connect(server.host, server.port) as sock:
        for i in range(len(data)):
            sock.send(data[i:i + 1])
            time.sleep(0.002)
        reply = check_reply(query, recv_framed(sock))
    assert rdata_texts(reply, "A") == {"192.0.2.80", "192.0.2.81"}


def test_two_messages_split_at_odd_boundaries(server: ServerProcess) -> None:
    q1 = dns.message.make_query("mail.example.com", "A")
    q2 = dns.message.make_query("mail2.example.com", "A")
    data = frame(q1.to_wire()) + frame(q2.to_wire())
    with tcp_connect(server.host, server.port) as sock:
        for chunk in (data[:1], data[1:7], data[7:len(data) - 3], data[len(data) - 3:]):
            sock.send(chunk)
            time.sleep(0.01)
        r1 = check_reply(q1, recv_framed(sock))
        r2 = check_reply(q2, recv_framed(sock))
    assert rdata_texts(r1, "A") == {"192.0.2.25"}
    assert rdata_texts(r2, "A") == {"198.51.100.25"}


def test_axfr_over_tcp_is_refused(server: ServerProcess) -> None:
    query = dns.message.make_query("example.com", "AXFR")
    reply, _ = tcp_exchange(query, server.host, server.port)
    assert reply.rcode() == dns.rcode.REFUSED
    assert reply.answer == []


def test_default_idle_timeout_is_10_seconds(idle_watch: IdleWatch) -> None:
    """The shared server's watcher connection was opened idle when the server started."""
    watch = idle_watch
    remaining = max(0.0, 12.0 - (time.monotonic() - watch.opened))
    closed_after = watch.wait(remaining)
    assert watch.error is None, watch.error
    assert closed_after is not None, "an idle connection was still open after 12 s"
    assert 9.5 <= closed_after <= 12.0, f"closed after {closed_after:.2f} s"


# -- idle timeout (a private server with --tcp-idle-timeout 1) -------------------------------


@pytest.fixture(scope="module")
def quick_idle_server(tmp_path_factory: pytest.TempPathFactory,
                      city_mmdb: pathlib.Path) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("idle")
    with running(base, zones=prepare_zones(base), geoip=city_mmdb, http=False,
                 args=[*NO_PROBE, "--tcp-idle-timeout", "1"]) as srv:
        yield srv


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closes `sock` (EOF or reset), None if still open."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        data = sock.recv(1)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return time.monotonic() - start
    assert data == b"", f"unexpected bytes {data!r} on an idle connection"
    return time.monotonic() - start


def test_idle_connection_is_closed(quick_idle_server: ServerProcess) -> None:
    srv = quick_idle_server
    with tcp_connect(srv.host, srv.port) as sock:
        took = closed_within(sock, 3.0)
    assert took is not None, "server kept an idle TCP connection open for 3 s"
    assert 0.5 <= took <= 3.0


def test_idle_timer_restarts_after_a_query(quick_idle_server: ServerProcess) -> None:
    srv = quick_idle_server
    with tcp_connect(srv.host, srv.port) as sock:
        for _ in range(3):  # 3 x 0.6 s of activity: longer than the timeout in all
            time.sleep(0.6)
            query = dns.message.make_query("mail.example.com", "A")
            sock.sendall(frame(query.to_wire()))
            check_reply(query, recv_framed(sock))
        took = closed_within(sock, 3.0)
    assert took is not None, "server kept an idle TCP connection open for 3 s"
    assert 0.5 <= took <= 3.0


def test_connection_stuck_mid_message_is_closed(quick_idle_server: ServerProcess) -> None:
    srv = quick_idle_server
    query = dns.message.make_query("mail.example.com", "A")
    with tcp_connect(srv.host, srv.port) as sock:
        sock.sendall(frame(query.to_wire())[:5])  # never completes
        took = closed_within(sock, 3.0)
    assert took is not None, "server kept a half-sent message's connection open for 3 s"


def test_a_client_that_reads_late_gets_every_answer(server: ServerProcess) -> None:
    """50,000 pipelined queries (5 MB of replies) sent before reading anything: the server stops
    answering while its replies are not read (flow control), then resumes and
    answers every one, in order."""
    count = 50_000
    query = dns.message.make_query("static.example.com", "TXT")  # NODATA: a sizeable reply
    wires = []
    for i in range(count):
        query.id = i
        wires.append(frame(query.to_wire()))
    with tcp_connect(server.host, server.port) as sock:
        sock.settimeout(10)
        sender = __import__("threading").Thread(target=sock.sendall, args=(b"".join(wires),))
        sender.start()
        time.sleep(1.0)  # let the server's write buffer fill and pause it
        ids = [int.from_bytes(recv_framed(sock)[:2], "big") for _ in range(count)]
        sender.join(timeout=10)
    assert ids == list(range(count))
