"""The fleet's DNS Cookie secret: where it is kept, how it rotates, and the cookie clock.

How this works: every server of a fleet signs server cookies with one secret,
so a client that moves between them (anycast, or a resolver spreading its
queries) keeps a valid cookie. The secret is 16 random bytes with the one
before it, kept so that cookies made just before a rotation stay valid:

* with Redis (`REDIS_URL`), in the hash `<prefix>cookie-secret` (fields
  `current`, `previous`, `rotated_at`); the first server to find it missing
  creates it, and the first to find it older than `--cookie-rotation`
  rotates it with a compare-and-set script, so exactly one rotation happens
  however many servers see it due. Every server reads it every few seconds;
* always, in `<state-dir>/cookie-secret.json` (mode 0600): the whole secret
  in embedded mode, and the last one read from Redis in production mode (a
  server that starts while Redis is away keeps accepting its fleet's
  cookies). With `--workers`, worker 0 keeps the file and the other workers
  follow it.

The same task sets the cookies' clock (`Cookies.now`, Unix seconds) once a
second: the core never reads a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import time
from typing import Any

import structlog

from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.adapters.redis_link import REDIS_ERRORS, SOCKET_TIMEOUT, RedisLink
from geostream_dns.core.cookies import SECRET_LEN, Cookies

log = structlog.get_logger("geostream.cookies")

FILE_NAME = "cookie-secret.json"
DEFAULT_ROTATION = 86_400.0  # seconds between rotations of the secret
REDIS_EVERY = 2.0  # seconds between readings of the fleet's secret
CLOCK_EVERY = 1.0

# Rotate only if the secret is still the one this server saw as due.
_ROTATE = """
if redis.call('hget', KEYS[1], 'current') == ARGV[1] then
  redis.call('hset', KEYS[1], 'current', ARGV[2], 'previous', ARGV[1], 'rotated_at', ARGV[3])
  return 1
end
return 0
"""
# Create the secret unless a server already did.
_CREATE = """
if redis.call('hexists', KEYS[1], 'current') == 0 then
  redis.call('hset', KEYS[1], 'current', ARGV[1], 'rotated_at', ARGV[2])
  return 1
end
return 0
"""


class Secret:
    """The secret, the one before it, and when it was made (Unix seconds)."""

    __slots__ = ("current", "previous", "rotated_at")

    def __init__(self, current: bytes, previous: bytes | None, rotated_at: float) -> None:
        self.current = current
        self.previous = previous
        self.rotated_at = rotated_at

    @classmethod
    def new(cls, previous: bytes | None = None) -> Secret:
        return cls(os.urandom(SECRET_LEN), previous, time.time())

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current.hex(),
                "previous": self.previous.hex() if self.previous else None,
                "rotated_at": self.rotated_at}

    @classmethod
    def from_fields(cls, current: Any, previous: Any, rotated_at: Any) -> Secret | None:
        """From hex texts (or bytes) and a number; None when anything is off."""
        try:
            cur = bytes.fromhex(_text(current))
            prev = bytes.fromhex(_text(previous)) if previous else None
            when = float(_text(rotated_at))
        except (TypeError, ValueError):
            return None
        if len(cur) != SECRET_LEN or (prev is not None and len(prev) != SECRET_LEN):
            return None
        return cls(cur, prev, when)

    def due(self, rotation: float, now: float) -> bool:
        return now - self.rotated_at >= rotation


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CookieSecret:
    """Keeps a server's `Cookies` on the fleet's secret and its clock ticking."""

    def __init__(self, cookies: Cookies, state_dir: pathlib.Path, *,
                 rotation: float = DEFAULT_ROTATION, link: RedisLink | None = None,
                 keeper: bool = True) -> None:
        """`keeper`: this process writes the state-dir file and rotates (worker 0);
        the other workers only follow the file."""
        self.cookies = cookies
        self.path = state_dir / FILE_NAME
        self.rotation = rotation
        self.link = link
        self.keeper = keeper
        self.secret: Secret | None = None
        self._file_stamp: float | None = None
        self._task: asyncio.Task[None] | None = None

    # -- the file --

    def _read_file(self) -> Secret | None:
        try:
            stamp = self.path.stat().st_mtime
            data = json.loads(self.path.read_text())
            found = Secret.from_fields(data.get("current"), data.get("previous"),
                                       data.get("rotated_at"))
        except (OSError, ValueError, AttributeError):
            return None
        if found is not None:
            self._file_stamp = stamp
        return found

    def _write_file(self, secret: Secret) -> None:
        try:
            atomic_write_text(self.path, json.dumps(secret.to_json()), mode=0o600)
            self._file_stamp = self.path.stat().st_mtime
        except OSError as exc:
            log.error("cookie.secret_not_saved", path=str(self.path), error=str(exc))

    def _adopt(self, secret: Secret, source: str) -> None:
        old = self.secret
        if old is not None and (old.current, old.previous) == (secret.current,
                                                                 secret.previous):
            self.secret = secret
            return
        self.secret = secret
        self.cookies.use(secret.current, secret.previous)
        log.info("cookie.secret_loaded", source=source, rotated_at=round(secret.rotated_at),
                 rotated=old is not None)

    # -- start and follow --

    async def start(self) -> None:
        """Load (or make) the secret before the first answer; then follow it."""
        self.cookies.now = int(time.time())
        secret = self._read_file()
        if secret is None and not self.keeper:
            # Worker 0 may not have written it yet: wait a little, then make one
            # (worker 0 makes it the fleet's soon after; this one follows the file).
            for _ in range(50):
                await asyncio.sleep(0.1)
                secret = self._read_file()
                if secret is not None:
                    break
        if self.link is not None and self.keeper:
            fleet = await self._from_redis(secret)
            if fleet is not None:
                secret = fleet
        if secret is None:
            secret = Secret.new()
            if self.keeper:
                self._write_file(secret)
        elif self.keeper and self.link is None and secret.due(self.rotation, time.time()):
            secret = Secret.new(secret.current)
            self._write_file(secret)
        elif self.keeper and self.link is not None:
            self._write_file(secret)
        self._adopt(secret, "redis" if self.link is not None and self.keeper else "file")
        self._task = asyncio.create_task(self._follow())

    async def _from_redis(self, fallback: Secret | None) -> Secret | None:
        """The fleet's secret: created from `fallback` (or new) when missing, rotated
        when due. None when Redis does not answer."""
        assert self.link is not None
        client = self.link.client()
        key = self.link.key("cookie-secret")
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT * 2):
                fields = await client.hgetall(key)
                secret = _from_hash(fields)
                if secret is None:
                    made = fallback or Secret.new()
                    await client.eval(_CREATE, 1, key, made.current.hex(), str(made.rotated_at))
                    secret = _from_hash(await client.hgetall(key))
                if secret is not None and secret.due(self.rotation, time.time()):
                    new = Secret.new(secret.current)
                    await client.eval(_ROTATE, 1, key, secret.current.hex(), new.current.hex(),
                                      str(new.rotated_at))
                    secret = _from_hash(await client.hgetall(key))
        except REDIS_ERRORS as exc:
            self.link.lost(exc)
            return None
        self.link.answered()
        return secret

    async def _follow(self) -> None:
        last_redis = time.monotonic()
        while True:
            await asyncio.sleep(CLOCK_EVERY)
            self.cookies.now = int(time.time())
            try:
                if self.link is not None and self.keeper:
                    if time.monotonic() - last_redis >= REDIS_EVERY:
                        last_redis = time.monotonic()
                        secret = await self._from_redis(self.secret)
                        if secret is not None and self.secret is not None and (
                                secret.current != self.secret.current
                                or secret.previous != self.secret.previous):
                            self._write_file(secret)
                            self._adopt(secret, "redis")
                elif self.keeper:
                    if self.secret is not None and self.secret.due(self.rotation, time.time()):
                        secret = Secret.new(self.secret.current)
                        self._write_file(secret)
                        self._adopt(secret, "rotation")
                else:
                    self._follow_file()
            except Exception:  # noqa: BLE001 - keep the secret we have, try again
                log.exception("cookie.secret_refresh_failed")

    def _follow_file(self) -> None:
        try:
            stamp = self.path.stat().st_mtime
        except OSError:
            return
        if stamp != self._file_stamp:
            secret = self._read_file()
            if secret is not None:
                self._adopt(secret, "file")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(Exception):
                self._task = None


def _from_hash(fields: dict[Any, Any]) -> Secret | None:
    get = {_text(k): v for k, v in fields.items()}.get
    if get("current") is None:
        return None
    return Secret.from_fields(get("current"), get("previous"), get("rotated_at", "0"))
