"""One health probe: an HTTP(S) request or a TCP connect, non-blocking, bounded.

Each probe runs on the event loop with asyncio streams: connecting, the TLS
handshake and reading never block it. The whole probe is bounded by the
check's timeout, the response head by 16 KiB and the body read by 64 KiB.
TLS contexts are built once per verification mode (building one loads the
system CA store, which would stall the loop if done per probe).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable

from geostream_dns.core.health import ProbeResult
from geostream_dns.core.model import HealthCheck
from geostream_dns.version import VERSION

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024

ProbeFn = Callable[[HealthCheck, str], Awaitable[ProbeResult]]


def user_agent(site: str) -> str:
    """What HTTP probes say they are, so an endpoint's logs show who probes it."""
    return f"geostream-dns-prober/{VERSION} (site={site})"


def prober_for(site: str) -> ProbeFn:
    """`probe` with the User-Agent of a prober in `site`."""
    agent = user_agent(site)

    async def probe_from_site(check: HealthCheck, address: str) -> ProbeResult:
        return await probe(check, address, agent)

    return probe_from_site

_contexts: dict[bool, ssl.SSLContext] = {}


def tls_context(verify: bool) -> ssl.SSLContext:
    ctx = _contexts.get(verify)
    if ctx is None:
        ctx = ssl.create_default_context()
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        _contexts[verify] = ctx
    return ctx


async def probe(check: HealthCheck, address: str, agent: str = user_agent("-")) -> ProbeResult:
    """Run `check` against `address` (the value being checked)."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout):
            if check.protocol == "tcp":
                reason = await _tcp(address, check.port)
            else:
                reason = await _http(check, address, agent)
    except TimeoutError:
        return ProbeResult(False, time.perf_counter() - started,
                           f"timeout after {check.timeout:g}s")
    except ConnectionRefusedError:
        return ProbeResult(False, time.perf_counter() - started, "connection refused")
    except ssl.SSLError as exc:
        return ProbeResult(False, time.perf_counter() - started,
                           f"TLS: {exc.reason or exc.__class__.__name__}")
    except (OSError, EOFError, ValueError) as exc:
        return ProbeResult(False, time.perf_counter() - started,
                           f"{exc.__class__.__name__}: {exc}".strip(": "))
    latency = time.perf_counter() - started
    if reason is None:
        return ProbeResult(True, latency, "ok")
    if reason.startswith("ok:"):
        return ProbeResult(True, latency, reason[3:])
    return ProbeResult(False, latency, reason)


async def _tcp(address: str, port: int) -> str | None:
    _, writer = await asyncio.open_connection(address.rstrip("."), port)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


async def _http(check: HealthCheck, address: str, agent: str) -> str:
    host = check.host or address.rstrip(".")
    tls = check.protocol == "https"
    reader, writer = await asyncio.open_connection(
        address.rstrip("."), check.port,
        ssl=tls_context(check.verify_tls) if tls else None,
        server_hostname=host if tls else None, limit=MAX_HEAD)
    try:
        default_port = 443 if tls else 80
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal (RFC 3986 IP-literal)
        host_header = name if check.port == default_port else f"{name}:{check.port}"
        writer.write(
            f"GET {check.path} HTTP/1.1\r\nHost: {host_header}\r\n"
            f"User-Agent: {agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return "response head larger than 16 KiB"
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return f"not an HTTP response: {status_line[:60]!r}"
        status = int(parts[1])
        if status not in check.expect_status:
            return f"HTTP {status}, expected {'/'.join(map(str, check.expect_status))}"
        if check.expect_body is None:
            return f"ok:HTTP {status}"
        body = b""
        needle = check.expect_body.encode()
        while len(body) < MAX_BODY:
            chunk = await reader.read(MAX_BODY - len(body))
            if not chunk:
                break
            body += chunk
            if needle in body:
                return f"ok:HTTP {status}, body has {check.expect_body!r}"
        return f"HTTP {status}, body lacks {check.expect_body!r}"
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
