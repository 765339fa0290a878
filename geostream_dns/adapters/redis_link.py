"""The fleet's Redis: where it is, and one server's link to it.

How this works: `parse_redis_url` reads `REDIS_URL` — `redis://`,
`rediss://` (TLS), `unix://` and `redis+sentinel://HOST:PORT[,HOST:PORT...]/
SERVICE[/DB]` — into a `RedisTarget`. A `RedisLink` makes the clients a
server uses: an asyncio client for the event loop (heartbeats, leases,
pub/sub) and a blocking one for worker threads (the answer cache, read while
a snapshot is built). With Sentinel both are `master_for` clients, which ask
the sentinels for the primary on every new connection and so follow a
failover by themselves.

The link keeps one fact for everyone: whether Redis answered last time
(`up`). Callers report failures (`lost`) and successes (`answered`); the link
logs each change once, counts outages, and says how long to wait before the
next attempt (exponential backoff with full jitter, so a fleet does not
reconnect in step). Nothing on the query path ever uses a client: every
Redis call is made by a background task or a worker thread, and redis-py's
exceptions never leave this package's adapters.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
import structlog

log = structlog.get_logger("geostream.redis")

SOCKET_TIMEOUT = 1.0  # seconds for any one Redis call: a dead Redis costs little
BACKOFF_BASE = 0.25
BACKOFF_CAP = 5.0
DEFAULT_PREFIX = "geostream:"

# The errors that mean "Redis is not there or not usable right now" (TimeoutError
# also ends an asyncio.timeout bound around a call).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str | None = None  # redis://, rediss://, unix://
    sentinels: tuple[tuple[str, int], ...] = ()  # redis+sentinel://
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None

    @property
    def display(self) -> str:
        """The target for logs and status: no password."""
        if self.sentinels:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"redis+sentinel://{hosts}/{self.service}/{self.db}"
        assert self.url is not None
        parts = urlsplit(self.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return f"{parts.scheme}://{netloc}{parts.path}"


def parse_redis_url(text: str) -> RedisTarget:
    """Read a REDIS_URL; ValueError with a clear message when it cannot be used."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("redis", "rediss", "unix"):
        try:
            redis.asyncio.Redis.from_url(text)  # checks the URL the way it will be used
        except ValueError as exc:
            raise ValueError(f"bad REDIS_URL {text!r}: {exc}") from None
        return RedisTarget(url=text)
    if scheme != "redis+sentinel":
        raise ValueError(f"bad REDIS_URL {text!r}: the scheme must be redis://, rediss://, "
                         "unix:// or redis+sentinel://")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = None, None
    if userinfo:
        user, _, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) or None)
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad REDIS_URL {text!r}: sentinels are HOST:PORT[,HOST:PORT...]")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(f"bad REDIS_URL {text!r}: expected redis+sentinel://HOST:PORT"
                         "[,HOST:PORT...]/SERVICE[/DB]")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"bad REDIS_URL {text!r}: the database must be a number")
        db = int(path[1])
    for key in parse_qs(parts.query):
        raise ValueError(f"bad REDIS_URL {text!r}: unknown option {key!r}")
    return RedisTarget(sentinels=tuple(sentinels), service=unquote(path[0]), db=db,
                       username=username, password=password)


class RedisLink:
    """One server's link to the fleet's Redis (see the module doc)."""

    def __init__(self, target: RedisTarget, prefix: str = DEFAULT_PREFIX,
                 rng: random.Random | None = None) -> None:
        self.target = target
        self.prefix = prefix
        self.up = False
        self.ever_up = False
        self.outages = 0
        self.failures = 0  # consecutive
        self.last_error = ""
        self.since = time.time()  # wall time of the last change of `up`
        self._rng = rng or random.Random()
        self._async: redis.asyncio.Redis | None = None
        self._sync: redis.Redis | None = None
        self._blocking: redis.Redis | None = None  # see blocking_client

    # -- clients ---------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT,
                "health_check_interval": 10}

    def client(self) -> redis.asyncio.Redis:
        """The asyncio client (made once; it reconnects by itself)."""
        if self._async is None:
            target = self.target
            if target.sentinels:
                sentinel = redis.asyncio.sentinel.Sentinel(
                    list(target.sentinels), socket_timeout=SOCKET_TIMEOUT,
                    socket_connect_timeout=SOCKET_TIMEOUT)
                self._async = sentinel.master_for(
                    target.service, db=target.db, username=target.username,
                    password=target.password, **self._options())
            else:
                assert target.url is not None
                self._async = redis.asyncio.Redis.from_url(target.url, **self._options())
        return self._async

    def sync_client(self) -> redis.Redis:
        """A blocking client for worker threads (thread safe: it has a pool)."""
        if self._sync is None:
            self._sync = self._make_sync(SOCKET_TIMEOUT)
        return self._sync

    def blocking_client(self, block: float) -> redis.Redis:
        """A blocking client for commands that wait up to `block` seconds in Redis
        before answering (XREAD BLOCK): its reads may take that long plus the
        usual bound. With `sync_client`'s bound, an empty stream's reply (sent
        after exactly `block` seconds) would race the socket timeout and count
        as Redis going away, flipping the whole server to its own prober."""
        if self._blocking is None:
            self._blocking = self._make_sync(block + SOCKET_TIMEOUT)
        return self._blocking

    def _make_sync(self, timeout: float) -> redis.Redis:
        target = self.target
        if target.sentinels:
            sentinel = redis.sentinel.Sentinel(
                list(target.sentinels), socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT)
            return sentinel.master_for(
                target.service, db=target.db, username=target.username,
                password=target.password, socket_timeout=timeout,
                socket_connect_timeout=SOCKET_TIMEOUT)
        assert target.url is not None
        return redis.Redis.from_url(target.url, socket_timeout=timeout,
                                    socket_connect_timeout=SOCKET_TIMEOUT)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- state -----------------------------------------------------------

    def answered(self) -> None:
        if not self.up:
            log.info("redis.connected", redis=self.target.display, prefix=self.prefix,
                     after_failures=self.failures)
            self.up, self.ever_up, self.since = True, True, time.time()
        self.failures = 0
        self.last_error = ""

    def lost(self, exc: BaseException) -> float:
        """Note a failure; return the seconds to wait before the next attempt."""
        self.failures += 1
        self.last_error = reason(exc)
        if self.up or self.failures == 1:
            if self.up:
                self.outages += 1
            level = log.error if not self.ever_up else log.warning
            level("redis.unreachable", redis=self.target.display, error=self.last_error,
                  serving="own memory", probing="every server for itself")
            self.up, self.since = False, time.time()
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(self.failures - 1, 16))
        return delay * self._rng.uniform(0.5, 1.0)

    async def close(self) -> None:
        if self._async is not None:
            try:
                await self._async.aclose()
            except REDIS_ERRORS:
                pass
        for client in (self._sync, self._blocking):
            if client is not None:
                client.close()


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
