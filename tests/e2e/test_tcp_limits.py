"""TCP limits: connections in total and per client address, and clients cut at the
idle timeout however they stall (idle, half-sent message, never reading)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import dns.message

from tests.e2e.conftest import check_reply, frame, rdata_texts, recv_framed, tcp_connect
from tests.support.harness import ServerProcess, StartServer


def _connect_from(source: str, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def _answers(sock: socket.socket) -> bool:
    """True when the connection answers a query; False when the server cut it."""
    query = dns.message.make_query("mail.example.com", "A")
    try:
        sock.sendall(frame(query.to_wire()))
        reply = check_reply(query, recv_framed(sock))
    except (ConnectionError, OSError, AssertionError, EOFError):
        return False
    return rdata_texts(reply, "A") == {"192.0.2.25"}


def _metric(srv: ServerProcess, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    found = re.search("^" + pattern + "$", srv.metrics(), re.M)
    assert found, f"{name}{{{labels}}} missing from /metrics"
    return float(found.group(1))


@contextlib.contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def test_per_client_limit_refuses_the_65th_connection(start_server: StartServer) -> None:
    srv = start_server()  # defaults: 64 per client address, 1024 in all
    with _sockets() as held:
        for _ in range(64):
            held.append(tcp_connect(srv.host, srv.port))
        # every one of the 64 is served
        assert all(_answers(sock) for sock in held[::9])
        extra = tcp_connect(srv.host, srv.port)
        held.append(extra)
        assert not _answers(extra), "the 65th connection from one address was served"
        # another client address is not held back by the first one's connections
        other = _connect_from("127.0.0.2", srv.host, srv.port)
        held.append(other)
        assert _answers(other)
        # a slot freed is a slot usable again
        held.pop(0).close()
        time.sleep(0.3)
        again = tcp_connect(srv.host, srv.port)
        held.append(again)
        assert _answers(again)
    assert _metric(srv, "geostream_dns_tcp_refused_total", 'limit="per_client"') >= 1


def test_total_limit(start_server: StartServer) -> None:
    srv = start_server(args=["--tcp-max-connections", "5", "--tcp-max-per-client", "3"])
    with _sockets() as held:
        for source in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.3"):
            held.append(_connect_from(source, srv.host, srv.port))
        assert all(_answers(sock) for sock in held)
        fourth = _connect_from("127.0.0.1", srv.host, srv.port)
        held.append(fourth)
        assert not _answers(fourth), "a 4th connection from one address with a limit of 3"
        sixth = _connect_from("127.0.0.4", srv.host, srv.port)
        held.append(sixth)
        assert not _answers(sixth), "a 6th connection with a limit of 5 in all"
    assert _metric(srv, "geostream_dns_tcp_refused_total", 'limit="total"') >= 1


def test_client_that_never_reads_is_cut_at_the_idle_timeout(start_server: StartServer) -> None:
    """It sends query after query and reads nothing: once our replies fill its
    buffers the server stops answering, and the idle timeout cuts the
    connection even though replies are waiting to be sent."""
    srv = start_server(args=["--tcp-idle-timeout", "1"])
    query = dns.message.make_query("static.example.com", "TXT")
    batch = b"".join(frame(query.to_wire()) for _ in range(2000))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect((srv.host, srv.port))
    ended: list[float] = []
    error: list[BaseException] = []

    def flood() -> None:
        try:
            for _ in range(200):  # at most 200 x 2000 queries; the server stops reading long before
                sock.sendall(batch)
        except OSError as exc:  # the cut: reset or broken pipe
            error.append(exc)
        ended.append(time.monotonic())

    started = time.monotonic()
    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    sender.join(20)
    try:
        assert ended, "the server still held a connection that never reads after 20 s"
        assert error, "the sender was never cut off"
        assert ended[0] - started < 15
    finally:
        sock.close()
    assert _metric(srv, "geostream_dns_tcp_idle_closed_total") >= 1
    # the server still answers others
    with tcp_connect(srv.host, srv.port) as fresh:
        assert _answers(fresh)


def test_slow_sender_is_cut_at_the_idle_timeout(start_server: StartServer) -> None:
    """One byte every 0.3 s: bytes keep coming, but no message completes in time."""
    srv = start_server(args=["--tcp-idle-timeout", "1"])
    data = frame(dns.message.make_query("mail.example.com", "A").to_wire())
    with tcp_connect(srv.host, srv.port) as sock:
        started = time.monotonic()
        cut = None
        for i in range(len(data)):
            try:
                sock.send(data[i:i + 1])
            except OSError:
                cut = time.monotonic() - started
                break
            time.sleep(0.3)
            if time.monotonic() - started > 8:
                break
        if cut is None:  # the last sends may have gone into a dead socket: read tells
            sock.settimeout(3)
            try:
                assert sock.recv(2) == b""
            except ConnectionResetError:
                pass
            cut = time.monotonic() - started
    assert cut < 8, "a message dripped byte by byte kept its connection past 8 s"
