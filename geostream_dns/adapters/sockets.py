"""Listening sockets for the DNS transports."""

from __future__ import annotations

import socket


def bind_socket(host: str, port: int, kind: socket.SocketKind,
                reuse_port: bool = False) -> socket.socket:
    """A bound, non-blocking socket. With `reuse_port` (SO_REUSEPORT), the
    processes of `--workers N` share a port and the kernel spreads queries
    over them; without it a port already taken is an error, so a second server
    started by mistake fails instead of silently taking half the queries.
    IPv6 sockets are IPv6-only: an IPv4 address is listened on separately."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_DGRAM:
            # Room for bursts: the kernel drops datagrams when the buffer is full.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
