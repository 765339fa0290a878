"""The HTTP endpoint: health, readiness, metrics and the /v1 API.

How this works: a deliberately small HTTP/1.1 server on `asyncio.start_server`.
The protocol part is pure: `parse_head` turns the bytes of a request head into
a `RequestHead` or raises `HttpError`, and `render_response` turns a
`Response` into bytes. `_serve_connection` owns the I/O and the policy: it
reads a head (at most `MAX_HEAD` bytes), then a `Content-Length` body (at most
`MAX_BODY`), each within `read_timeout` seconds, dispatches through the
`Router`, writes the answer and loops while the connection is kept alive
(HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with
`Connection: keep-alive`). After a malformed request the connection is closed,
since where the next request starts is unknown. Limits: a request line of at
most `MAX_REQUEST_LINE` bytes (414), at most `MAX_HEADERS` header fields and
`MAX_HEAD` bytes of head (431), a body of at most `MAX_BODY` bytes (413), a
head, a body and every write each within `read_timeout` seconds (408, or the
connection is dropped), and at most `MAX_CONNECTIONS` open connections (503).

Writes are audited: every request to a route that needs the token, and every
failed authentication, is logged as one `api.audit` event saying who (client
address, and whether the token was right), what (method, path) and the result
(status). A client address that fails authentication `AUTH_FAILURES` times
within `AUTH_WINDOW` seconds is answered 429 for the rest of the window
without its token being looked at (`AuthLimiter`).

Routes are a table of (method, pattern, handler, auth). A pattern's `{name}`
segments are captured into `request.params`; a path that matches with another
method answers 405; routes that change state (every method but GET and HEAD,
unless told otherwise) pass `require_token` first. Other modules add routes
with `server.router.add("GET", "/v1/explain", handler)`, before or after the
server starts. Every error is JSON: `{"error": "...", "details": [...]}`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from geostream_dns.adapters.metrics import make_registry

if TYPE_CHECKING:
    from geostream_dns.app import App

log = structlog.get_logger("geostream.http")

MAX_HEAD = 16 * 1024  # request line plus headers
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADERS = 100
MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 256
READ_TIMEOUT = 10.0  # seconds for a head or a body; also the keep-alive idle limit
AUTH_FAILURES = 10  # failed authentications per client address ...
AUTH_WINDOW = 60.0  # ... within this many seconds, then 429 until the window ends
AUTH_TABLE = 10_000  # client addresses remembered at most (the oldest forgotten first)
JSON = "application/json"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but HTAB


class HttpError(Exception):
    """An HTTP error answered as JSON; raise it from a handler."""

    def __init__(self, status: int, message: str, details: Iterable[Any] = (),
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)
        self.headers = headers or {}


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "

    @property
    def content_length(self) -> int:
        text = self.headers.get("content-length")
        if text is None:
            return 0
        # Repeated identical values ("5, 5") are allowed (RFC 9110 §8.6).
        values = {v.strip() for v in text.split(",")}
        if len(values) != 1 or not (value := values.pop()).isdigit():
            raise HttpError(400, "bad Content-Length", [text])
        return int(value)

    @property
    def keep_alive(self) -> bool:
        options = {o.strip().lower() for o in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in options
        return "close" not in options


@dataclass(slots=True)
class Request:
    app: App
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    client: str = ""
    audited: bool = False  # a write route: its result goes to the audit log
    identity: str = "-"  # how the caller authenticated: token, bad-token, blocked, ...

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise HttpError(400, "request body is not valid JSON", [str(exc)]) from exc


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    return Response(status, body, JSON, headers or {})


def error_response(status: int, message: str, details: Iterable[Any] = (),
                   headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "details": list(details)}, status, headers)


# -- protocol (no I/O) ---------------------------------------------------


def parse_head(data: bytes) -> RequestHead:
    """The bytes of a request head (without the blank line) -> RequestHead."""
    text = data.decode("latin-1")
    request_line, *lines = text.split("\r\n")
    if len(request_line) > MAX_REQUEST_LINE:
        raise HttpError(414, "request line too long", [f"limit: {MAX_REQUEST_LINE} bytes"])
    if len(lines) > MAX_HEADERS:
        raise HttpError(431, "too many header fields", [f"limit: {MAX_HEADERS}"])
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line", [request_line[:200]])
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HttpError(400, "malformed method", [method[:200]])
    if not re.fullmatch(r"HTTP/\d\.\d", version):
        raise HttpError(400, "malformed HTTP version", [version[:200]])
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, "HTTP version not supported", [version])
    if _CTL.search(target):
        raise HttpError(400, "malformed request target", [target[:200]])
    split_target(target)
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            # Also rejects obsolete line folding and space before the colon (RFC 9112 §5).
            raise HttpError(400, "malformed header line", [line[:200]])
        value = value.strip(" \t")
        if _CTL.search(value):
            raise HttpError(400, "control character in header value", [name])
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length",
                        [headers["transfer-encoding"]])
    return RequestHead(method, target, version, headers)


def split_target(target: str) -> tuple[str, str]:
    """A request target (origin or absolute form) -> (path, query string)."""
    if target.startswith("/"):
        path, _, query = target.partition("?")
        return path, query
    if target.lower().startswith(("http://", "https://")):
        parts = urlsplit(target)
        return parts.path or "/", parts.query
    raise HttpError(400, "malformed request target", [target[:200]])


def render_response(response: Response, keep_alive: bool, with_body: bool = True) -> bytes:
    reason = _reason(response.status)
    lines = [f"HTTP/1.1 {response.status} {reason}",
             f"Content-Type: {response.content_type}",
             f"Content-Length: {len(response.body)}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}",
             "Cache-Control: no-store"]
    lines.extend(f"{k}: {v}" for k, v in response.headers.items())
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + response.body if with_body else head


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# -- routing -------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    pattern: str
    segments: tuple[str, ...]
    handler: Handler
    auth: bool  # passes require_token before the handler

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for want, got in zip(self.segments, segments, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = unquote(got)
            elif want != got:
                return None
        return params


class AuthLimiter:
    """Failed authentications per client address, over a fixed window; bounded."""

    def __init__(self, limit: int = AUTH_FAILURES, window: float = AUTH_WINDOW,
                 table: int = AUTH_TABLE) -> None:
        self.limit = limit
        self.window = window
        self.table = table
        self.failures: dict[str, tuple[float, int]] = {}  # client -> (window start, count)

    def blocked(self, client: str, now: float) -> float:
        """Seconds until `client` may try again (0: it may now)."""
        entry = self.failures.get(client)
        if entry is None:
            return 0.0
        start, count = entry
        if now - start >= self.window:
            del self.failures[client]
            return 0.0
        return self.window - (now - start) if count >= self.limit else 0.0

    def failed(self, client: str, now: float) -> None:
        start, count = self.failures.pop(client, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self.failures[client] = (start, count + 1)  # re-inserted: newest last
        while len(self.failures) > self.table:
            del self.failures[next(iter(self.failures))]


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.auth_limiter = AuthLimiter()

    def add(self, method: str, pattern: str, handler: Handler, *,
            auth: bool | None = None) -> None:
        """Route `method pattern` to `handler`; `auth` defaults to True for writes."""
        method = method.upper()
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/': {pattern!r}")
        if auth is None:
            auth = method not in ("GET", "HEAD")
        self.routes.append(Route(method, pattern, tuple(pattern.split("/")), handler, auth))

    def route(self, method: str, pattern: str, *,
              auth: bool | None = None) -> Callable[[Handler], Handler]:
        """Decorator form of `add`."""
        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler, auth=auth)
            return handler
        return register

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segments = path.split("/")
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            allowed.append(route.method)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            allow = ", ".join(sorted(set(allowed)))
            raise HttpError(405, "method not allowed", [f"allowed: {allow}"], {"Allow": allow})
        raise HttpError(404, "not found")

    async def dispatch(self, request: Request) -> Response:
        try:
            route, request.params = self.resolve(request.method, request.path)
            if route.auth:
                request.audited = True
                self._authenticate(request)
            return await route.handler(request)
        except HttpError as exc:
            return error_response(exc.status, exc.message, exc.details, exc.headers)
        except Exception:  # noqa: BLE001 - one failing handler must not stop the server
            log.exception("http.request_failed", method=request.method, path=request.path)
            return error_response(500, "internal server error")

    def _authenticate(self, request: Request) -> None:
        now = asyncio.get_running_loop().time()
        wait = self.auth_limiter.blocked(request.client, now)
        if wait:
            request.identity = "blocked"
            raise HttpError(429, "too many failed authentications from this address",
                            [f"retry in {int(wait) + 1} s"],
                            {"Retry-After": str(int(wait) + 1)})
        try:
            require_token(request)
        except HttpError as exc:
            if exc.status == 401:
                request.identity = "bad-token"
                self.auth_limiter.failed(request.client, now)
            else:
                request.identity = "no-token-configured"
            raise
        request.identity = "token"


def require_token(request: Request) -> None:
    """Allow a write only with `Authorization: Bearer $GEOSTREAM_API_TOKEN`."""
    token = request.app.settings.api_token
    if not token:
        raise HttpError(403, "API is read-only: set GEOSTREAM_API_TOKEN")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()):
        raise HttpError(401, "missing or wrong bearer token",
                        headers={"WWW-Authenticate": 'Bearer realm="geostream"'})


def audit(request: Request, status: int) -> None:
    """One `api.audit` event per write or failed authentication: who, what, result."""
    result = "ok" if status < 400 else "denied" if status in (401, 403, 429) else "failed"
    (log.warning if result == "denied" else log.info)(
        "api.audit", client=request.client, auth=request.identity, method=request.method,
        path=request.path, query="&".join(f"{k}={v[0]}" for k, v in request.query.items()),
        status=status, result=result)


# -- the built-in routes -------------------------------------------------


def default_router(registry: CollectorRegistry) -> Router:
    router = Router()

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(request: Request) -> Response:
        app = request.app
        status = app.store.status()
        extra: dict[str, Any] = {}
        if app.problems:  # zone files that fail validation (their last good version serves)
            extra["zone_problems"] = [str(p) for p in app.problems]
            extra["zones_with_problems"] = _problem_zones(app)
        if app.unloaded:  # broken since start, no good version: answered SERVFAIL
            extra["unloaded_zones"] = sorted(app.unloaded)
        if status.reachable is not None:  # a remote store: how current the snapshot is
            extra.update(database_reachable=status.reachable,
                         staleness_seconds=round(status.staleness_s or 0.0, 3),
                         store_generation=status.generation, source=status.source)
        if app.link is not None and app.fleet is not None:  # in a fleet: Redis, health
            fleet = app.fleet
            extra["redis"] = {
                "up": app.link.up, "target": app.link.target.display,
                "since": round(app.link.since, 3), "error": app.link.last_error or None,
                "health_from": "fleet" if app.health.fleet_in_charge else "own prober",
                "site": fleet.site, "probe_lease": fleet.leader,
                "sites_live": sorted(fleet.live_sites)}
        if app.ready:
            return json_response({"status": "ready", "generation": app.generation, **extra})
        if app.published:
            return json_response({"status": "no zone loaded", "generation": app.generation,
                                  **extra}, 503)
        return json_response({"status": "starting", **extra}, 503)

    async def metrics(request: Request) -> Response:
        return Response(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    router.add("GET", "/health", health)
    router.add("GET", "/ready", ready)
    router.add("GET", "/metrics", metrics)
    from geostream_dns.api import dnssec as dnssec_routes
    from geostream_dns.api import explain as explain_routes
    from geostream_dns.api import fleet as fleet_routes
    from geostream_dns.api import health as health_routes
    from geostream_dns.api import latency as latency_routes
    from geostream_dns.api import openapi
    from geostream_dns.api import zones as zone_routes

    zone_routes.register(router)
    dnssec_routes.register(router)
    explain_routes.register(router)
    fleet_routes.register(router)
    health_routes.register(router)
    latency_routes.register(router)
    openapi.register(router)
    return router


def _problem_zones(app: App) -> list[str]:
    """The zones named by the files with problems (a zone file is named after its zone)."""
    from geostream_dns.adapters.stores import UNREACHABLE
    from geostream_dns.config.folder import ZONE_SUFFIXES

    zones = set(app.unloaded)
    for problem in app.problems:
        if problem.path == UNREACHABLE:
            continue
        name = problem.file.rsplit("/", 1)[-1]
        for suffix in ZONE_SUFFIXES:
            if name.endswith(suffix):
                zones.add(name[:-len(suffix)].rstrip(".").lower() + ".")
    return sorted(zones)


# -- I/O -----------------------------------------------------------------


class HttpServer:
    """The listening server; `close()` also ends open keep-alive connections."""

    def __init__(self, app: App, router: Router, registry: CollectorRegistry,
                 read_timeout: float = READ_TIMEOUT) -> None:
        self.app = app
        self.router = router
        self.registry = registry
        self.read_timeout = read_timeout
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[None]] = set()

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets) if self.server is not None else ()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.connections):
            task.cancel()

    async def wait_closed(self) -> None:
        if self.connections:
            await asyncio.gather(*self.connections, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        client = peer[0] if isinstance(peer, tuple) else ""
        if len(self.connections) >= MAX_CONNECTIONS:
            writer.transport.abort()  # nothing read: shed the load at once
            log.warning("http.connection_refused", client=client, open=len(self.connections))
            return
        self.connections.add(task)
        try:
            while await self._serve_one(reader, writer, client):
                pass
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # peer gone, peer not reading (drain timed out), or server closing
        except Exception:  # noqa: BLE001 - one connection must never stop the server
            log.exception("http.connection_failed", client=client)
        finally:
            self.connections.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter, client: str) -> bool:
        """Read, answer and write one request; True to keep the connection open."""
        first = b""
        try:
            async with asyncio.timeout(self.read_timeout):
                # The first byte separately: an idle keep-alive connection that times
                # out is closed quietly, a half-sent request gets a 408.
                first = await reader.readexactly(1)
                raw = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if (first + exc.partial).strip():
                await self._send(writer, error_response(400, "incomplete request head"), False)
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, error_response(
                431, "request head too large", [f"limit: {MAX_HEAD} bytes"]), False)
            return False
        except TimeoutError:
            if first:
                await self._send(writer, error_response(408, "request timeout"), False)
            return False
        raw = raw.lstrip(b"\r\n")  # RFC 9112 §2.2: ignore empty lines before a request
        if not raw:
            return True
        try:
            head = parse_head(raw[:-4])
            length = head.content_length
            if length > MAX_BODY:
                raise HttpError(413, "request body too large", [f"limit: {MAX_BODY} bytes"])
        except HttpError as exc:
            await self._send(writer, error_response(exc.status, exc.message, exc.details,
                                                    exc.headers), False)
            return False
        body = b""
        if length:
            try:
                async with asyncio.timeout(self.read_timeout):
                    body = await reader.readexactly(length)
            except TimeoutError:
                await self._send(writer, error_response(408, "request timeout"), False)
                return False
            except asyncio.IncompleteReadError:
                return False
        path, query = split_target(head.target)
        request = Request(self.app, head.method, path, parse_qs(query, keep_blank_values=True),
                          head.headers, body, client=client)
        response = await self.router.dispatch(request)
        if request.audited:
            audit(request, response.status)
        keep_alive = head.keep_alive
        log.debug("http.request", method=head.method, path=request.path,
                  status=response.status, client=client)
        await self._send(writer, response, keep_alive, with_body=head.method != "HEAD")
        return keep_alive

    async def _send(self, writer: asyncio.StreamWriter, response: Response,
                    keep_alive: bool, with_body: bool = True) -> None:
        writer.write(render_response(response, keep_alive, with_body))
        async with asyncio.timeout(self.read_timeout):
            await writer.drain()


async def start_http(app: App, host: str, port: int, *, router: Router | None = None,
                     registry: CollectorRegistry | None = None,
                     read_timeout: float = READ_TIMEOUT,
                     sock: socket.socket | None = None) -> HttpServer:
    """Listen on host:port (0 picks a free port: see `server.sockets[0].getsockname()`),
    or on `sock` when it is already bound (`serve --user`)."""
    registry = registry if registry is not None else make_registry(app)
    server = HttpServer(app, router or default_router(registry), registry, read_timeout)
    if sock is not None:
        server.server = await asyncio.start_server(server._serve_connection, sock=sock,
                                                   limit=MAX_HEAD)
    else:
        server.server = await asyncio.start_server(server._serve_connection, host, port,
                                                   limit=MAX_HEAD)
    return server
