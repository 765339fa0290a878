"""Batched UDP I/O (geostream_dns/_udpbatch.c, recvmmsg/sendmmsg) over real loopback
sockets, and a server answering through it and through the event loop's own
datagram transport (GEOSTREAM_UDP_BATCH=0)."""

from __future__ import annotations

import pathlib
import socket
import time
from collections.abc import Iterator

import pytest

# `make venv` builds the extension: a build without it fails here, loudly
from geostream_dns import _udpbatch
from geostream_dns.adapters import udp
from tests.support.harness import ServerProcess
from tests.support.zones import write_zone


def pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    server.setblocking(False)
    client = socket.socket(family, socket.SOCK_DGRAM)
    client.bind((host, 0))
    client.settimeout(2)
    return server, client


@pytest.fixture()
def v4() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = pair(socket.AF_INET, "127.0.0.1")
    yield server, client
    server.close()
    client.close()


def recv_all(server: socket.socket, want: int) -> list[tuple[bytes, str, bytes]]:
    got: list[tuple[bytes, str, bytes]] = []
    deadline = time.monotonic() + 5
    while len(got) < want and time.monotonic() < deadline:
        got += _udpbatch.recv(server.fileno())
    return got


def test_nothing_waiting_is_an_empty_batch(v4: tuple[socket.socket, socket.socket]) -> None:
    server, _ = v4
    assert _udpbatch.recv(server.fileno()) == []
    assert _udpbatch.recv(server) == []  # a socket object does as well as its descriptor


def test_a_batch_in_and_the_replies_out_in_order(
        v4: tuple[socket.socket, socket.socket]) -> None:
    server, client = v4
    for i in range(5):
        client.sendto(b"query %d" % i, server.getsockname())
    got = recv_all(server, 5)
    assert [data for data, _, _ in got] == [b"query %d" % i for i in range(5)]
    assert {host for _, host, _ in got} == {"127.0.0.1"}
    assert _udpbatch.send(server.fileno(), [(b"reply-" + d, a) for d, _, a in got]) == (5, 0)
    assert [client.recv(100) for _ in range(5)] == [b"reply-query %d" % i for i in range(5)]


def test_more_than_a_batch_waiting_is_read_a_batch_at_a_time(
        v4: tuple[socket.socket, socket.socket]) -> None:
    server, client = v4
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    count = _udpbatch.BATCH + 7
    for i in range(count):
        client.sendto(i.to_bytes(2, "big"), server.getsockname())
    time.sleep(0.05)
    first = _udpbatch.recv(server.fileno())
    assert len(first) == _udpbatch.BATCH
    rest = recv_all(server, 7)
    assert [int.from_bytes(d, "big") for d, _, _ in first + rest] == list(range(count))


def test_a_large_datagram_comes_whole(v4: tuple[socket.socket, socket.socket]) -> None:
    server, client = v4
    big = bytes(range(256)) * 234  # 59,904 bytes
    client.sendto(big, server.getsockname())
    (data, _, address), = recv_all(server, 1)
    assert data == big
    assert _udpbatch.send(server, [(data, address)]) == (1, 0)
    assert client.recv(65536) == big


def test_a_refused_destination_costs_the_others_nothing(
        v4: tuple[socket.socket, socket.socket]) -> None:
    """Port 0 (a forged source) cannot be sent to; the replies after it still go."""
    server, client = v4
    client.sendto(b"q", server.getsockname())
    (_, _, address), = recv_all(server, 1)
    port_zero = address[:2] + b"\x00\x00" + address[4:]
    replies = [(b"one", address), (b"lost", port_zero), (b"two", address), (b"three", address)]
    assert _udpbatch.send(server.fileno(), replies) == (3, 1)
    assert [client.recv(10) for _ in range(3)] == [b"one", b"two", b"three"]
    assert _udpbatch.send(server.fileno(), [(b"lost", port_zero), (b"four", address)]) == (1, 1)
    assert client.recv(10) == b"four"


@pytest.mark.parametrize("source", ["127.0.0.9", "127.10.99.100", "127.255.200.1"])
def test_the_sender_is_written_as_a_dotted_quad(source: str) -> None:
    server, client = pair(socket.AF_INET, "127.0.0.1")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.bind((source, 0))
        sender.sendto(b"x", server.getsockname())
        (_, host, address), = recv_all(server, 1)
        assert host == source
        assert socket.inet_ntoa(address[4:8]) == source
    finally:
        for s in (server, client, sender):
            s.close()


def test_ipv6() -> None:
    server, client = pair(socket.AF_INET6, "::1")
    try:
        client.sendto(b"six", server.getsockname())
        (data, host, address), = recv_all(server, 1)
        assert (data, host) == (b"six", "::1")
        assert _udpbatch.send(server.fileno(), [(b"back", address)]) == (1, 0)
        assert client.recv(10) == b"back"
    finally:
        server.close()
        client.close()


def test_bad_replies_are_refused(v4: tuple[socket.socket, socket.socket]) -> None:
    server, _ = v4
    with pytest.raises(TypeError):
        _udpbatch.send(server.fileno(), [(b"data", "127.0.0.1")])
    with pytest.raises(TypeError):
        _udpbatch.send(server.fileno(), [b"data"])
    with pytest.raises(TypeError):
        _udpbatch.send(server.fileno(), [(b"data", bytes(200))])  # longer than any address
    assert _udpbatch.send(server.fileno(), []) == (0, 0)


@pytest.mark.parametrize("batch", ["1", "0"])
def test_a_server_answers_both_ways(tmp_path: pathlib.Path, batch: str) -> None:
    """Batched (the default where the extension is built) and through the event
    loop's own transport: the same answers, counted the same."""
    assert udp.batched()
    zones = tmp_path / "zones"
    write_zone(zones, "www: {type: A, value: 198.51.100.7}\n")
    server = ServerProcess.start(tmp_path, zones=zones, env={"GEOSTREAM_UDP_BATCH": batch})
    def udp_queries() -> float:
        status, metrics = server.http("/metrics")
        assert status == 200 and "geostream_dns_udp_unsent_total 0.0" in metrics
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("geostream_dns_queries_total{")
                   and 'transport="udp"' in line)

    try:
        before = udp_queries()  # the harness asked once to see the server ready
        for _ in range(20):
            assert server.answer("www.example.com") == {"198.51.100.7"}
        assert server.query("nope.example.com").rcode() == 3  # NXDOMAIN
        assert udp_queries() - before == 21
    finally:
        server.stop()
