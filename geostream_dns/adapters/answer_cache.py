"""The fleet's answer cache in Redis: compiled zones, built once, shared by every server.

How this works: a compiled zone (`core.build.compile_unit`) is stored under
`cache:<format>:<version>:<hash of its key>`, its key being the zone's
content digest and its hosted child zones; the value is `core.cachefmt`'s
checked encoding, kept for `TTL` seconds (every read refreshes nothing: an
entry nobody rebuilt for a week is simply built again). A server that needs a
zone reads the entry instead of validating and rendering the zone; one that
finds none *claims* it first (`claim:<...>`, SET NX with a short expiry), so at
most one server builds a given zone at a time, and a builder that dies only
delays the others until its claim lapses. An entry that is corrupt,
truncated or of another format is counted and ignored (the zone is built
again and the entry replaced).

Only worker threads use this (the snapshot is built off the event loop), with
Redis's blocking client; a Redis error marks the link down and the build goes
on without the cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import structlog

from geostream_dns.adapters.redis_link import REDIS_ERRORS, RedisLink
from geostream_dns.core.cachefmt import FORMAT
from geostream_dns.version import VERSION

log = structlog.get_logger("geostream.cache")

TTL_S = 7 * 86400  # an entry lives a week
CLAIM_MS = 10_000  # a claim lapses this long after it is made
CHUNK = 200  # keys per Redis round trip
BUILD_CHUNK = 25  # zones claimed at a time: built well within a claim's lifetime


class AnswerCache:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        # Plain integers, read by the metrics collector: look-ups by result.
        self.counts = {"hit": 0, "miss": 0, "corrupt": 0, "stored": 0, "error": 0}

    def _key(self, unit_key: str, kind: str = "cache") -> str:
        digest = hashlib.sha256(unit_key.encode()).hexdigest()[:40]
        return self.link.key(kind, str(FORMAT), VERSION, digest)

    def fetch(self, unit_keys: list[str]) -> dict[str, bytes]:
        """The entries found (by unit key); nothing when Redis does not answer."""
        found: dict[str, bytes] = {}
        client = self.link.sync_client()
        try:
            for i in range(0, len(unit_keys), CHUNK):
                chunk = unit_keys[i:i + CHUNK]
                for unit_key, value in zip(chunk, client.mget([self._key(k) for k in chunk]),
                                           strict=True):
                    if isinstance(value, bytes):
                        found[unit_key] = value
        except REDIS_ERRORS as exc:
            self.counts["error"] += 1
            self.link.lost(exc)
            return found
        self.link.answered()
        return found

    def corrupt(self, unit_key: str, why: str) -> None:
        self.counts["corrupt"] += 1
        log.warning("cache.entry_ignored", key=self._key(unit_key), reason=why)

    def claim(self, unit_keys: list[str]) -> set[str] | None:
        """Claim the right to build these zones: the ones claimed (None when Redis
        does not answer: the caller then builds without telling anyone)."""
        if not unit_keys:
            return set()
        client = self.link.sync_client()
        try:
            with client.pipeline(transaction=False) as pipe:
                for unit_key in unit_keys:
                    pipe.set(self._key(unit_key, "claim"), self.link.prefix, nx=True,
                             px=CLAIM_MS)
                results = pipe.execute()
        except REDIS_ERRORS as exc:
            self.counts["error"] += 1
            self.link.lost(exc)
            return None
        return {k for k, ok in zip(unit_keys, results, strict=True) if ok}

    def claimed(self, unit_keys: list[str]) -> set[str]:
        """Of these zones, the ones another server is building now."""
        if not unit_keys:
            return set()
        client = self.link.sync_client()
        try:
            with client.pipeline(transaction=False) as pipe:
                for unit_key in unit_keys:
                    pipe.exists(self._key(unit_key, "claim"))
                results = pipe.execute()
        except REDIS_ERRORS as exc:
            self.counts["error"] += 1
            self.link.lost(exc)
            return set()
        return {k for k, n in zip(unit_keys, results, strict=True) if n}

    def store(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """Keep built zones and drop their claims."""
        client = self.link.sync_client()
        try:
            with client.pipeline(transaction=False) as pipe:
                count = 0
                for unit_key, data in entries:
                    pipe.set(self._key(unit_key), data, ex=TTL_S)
                    pipe.delete(self._key(unit_key, "claim"))
                    count += 1
                pipe.execute()
        except REDIS_ERRORS as exc:
            self.counts["error"] += 1
            self.link.lost(exc)
            return
        self.counts["stored"] += count

    def release(self, unit_keys: list[str]) -> None:
        """Drop claims of zones that could not be built (invalid), so nobody waits."""
        if not unit_keys:
            return
        try:
            self.link.sync_client().delete(*(self._key(k, "claim") for k in unit_keys))
        except REDIS_ERRORS as exc:
            self.link.lost(exc)
