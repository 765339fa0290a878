"""The production-mode store: zones from PostgreSQL, live, with a last-known-good fallback.

How this works: the App calls ``poll()`` from a worker thread every 0.25 s.
The store keeps one autocommit connection that LISTENs on ``geostream_config``
(``apply`` NOTIFYs there in its transaction). Each poll drains pending
notifications without blocking *and* reads the head generation (a one-row
SELECT), so a notification missed while disconnected is never lost: the
generation itself says whether anything changed. When it moved, the store
reads, in one REPEATABLE READ transaction on a pooled connection, the head
and the zones whose last-changed generation differs from the one held (all
of them on the first load after a (re)connect), validates each through the
same loader as zone files (``load_zone_data``) and reports ``changed``; the
App then builds and swaps the snapshot. Zones the database no longer has are
dropped; a stored zone that fails validation keeps its previous version.

After each load the documents are saved to ``<state-dir>/snapshot.json`` in
the background (``StateFile``). When PostgreSQL is unreachable, ``poll`` never
raises: it returns ``(False, [problem])`` once per failed attempt, keeps what
it holds, and retries with exponential backoff and full jitter, capped at
``BACKOFF_CAP`` seconds; on reconnect it catches up. At start, if it cannot
reach PostgreSQL, it serves the saved file instead.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg_pool import ConnectionPool

from geostream_dns.adapters import zone_db
from geostream_dns.adapters.drain import DatabaseDrains, DrainFile
from geostream_dns.adapters.pg import (
    CONNECT_TIMEOUT,
    LIVE_LINK,
    STATEMENT_TIMEOUT,
    connect,
    reason,
    redact,
    translated,
)
from geostream_dns.adapters.state_file import SAVE_DELAY, SavedSnapshot, SavedZone, StateFile
from geostream_dns.adapters.stores import UNREACHABLE, Capabilities, StoreStatus, ZoneSource
from geostream_dns.config.loader import load_zone_data
from geostream_dns.core.model import Zone
from geostream_dns.errors import ConfigError, GeoStreamError, Problem, StoreUnavailable

log = structlog.get_logger("geostream.store")

BACKOFF_BASE = 0.25  # seconds before the first retry
BACKOFF_CAP = 5.0  # seconds, at most, between attempts
POOL_TIMEOUT = 5.0
SOURCE = "postgres"


class PostgresStore:
    """A ``Store`` (see ``adapters.stores``) over PostgreSQL."""

    kind = "postgres"
    capabilities = Capabilities(numbered=True, shared=True)

    def __init__(self, url: str, state_dir: Any, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, save_delay: float = SAVE_DELAY) -> None:
        self.url = url
        self.state = StateFile(state_dir, save_delay)
        self.generation: int | None = None
        self.reachable = False
        self.last_ok = 0.0  # wall time the database last confirmed what we hold
        self.loaded = False  # a configuration is held (from the database or the file)
        self.source = "none"  # "database" | "file" | "none"
        self._rng = rng or random.Random()
        self._clock = clock
        self._wall = wall
        # origin -> (serial, generation that last changed it, content digest)
        self._index: dict[str, tuple[int, int, str]] = {}
        self._zones: dict[str, Zone] = {}  # validated, at the generation in `_index`
        self._saved: dict[str, SavedZone] = {}  # documents held (for the state file)
        self._invalid: dict[str, list[Problem]] = {}
        self._listen: psycopg.Connection[Any] | None = None
        self._pool: ConnectionPool | None = None
        self._full_load = True
        self._failures = 0
        self._retry_at = 0.0
        self._outage: Problem | None = None
        self._tried_file = False

    # -- the Store interface ---------------------------------------------

    def poll(self) -> tuple[bool, list[Problem]]:
        """(zones changed?, new problems); never raises."""
        try:
            return self._poll()
        except Exception as exc:  # noqa: BLE001 - the server keeps serving what it holds
            problems = self._lost(exc)
            return self._fallback(), problems

    def zones(self) -> tuple[list[Zone], list[Problem]]:
        """Every zone validated (reading and validating what is not yet)."""
        missing = [o for o in self._index if not self._current(o)]
        if missing:
            self.load(missing)
        return [self._zones[o] for o in sorted(self._index) if o in self._zones], \
            self.problems()

    def problems(self) -> list[Problem]:
        problems = [p for ps in self._invalid.values() for p in ps]
        if self._outage is not None:
            problems.append(self._outage)
        return problems

    def sources(self) -> tuple[list[ZoneSource], list[Problem]]:
        """Every zone by its content digest; validated ones carry their model."""
        return [ZoneSource(origin, digest, self._zones.get(origin) if self._current(origin)
                           else None)
                for origin, (_serial, _gen, digest) in sorted(self._index.items())], \
            self.problems()

    def _current(self, origin: str) -> bool:
        zone = self._zones.get(origin)
        saved = self._saved.get(origin)
        index = self._index.get(origin)
        return (zone is not None and saved is not None and index is not None
                and saved.generation == index[1] and saved.serial == index[0])

    def load(self, origins: list[str]) -> tuple[dict[str, ZoneSource], list[Problem]]:
        """Read and validate the named zones (from the database, or from the saved
        file while serving it): their sources, with model and exact digest, and
        the problems of the invalid ones (their previous version stays)."""
        if not origins:
            return {}, []
        if self.source == "file":
            saved = {o: self._saved[o] for o in origins if o in self._saved}
            digests = {o: _saved_digest(z) for o, z in saved.items()}
        else:
            if self._pool is None:
                raise StoreUnavailable(f"{redact(self.url)} is unreachable")
            with translated(self.url), self._pool.connection() as conn:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                stored = zone_db.stored_zones(conn, origins)
                digests = zone_db.zone_digests(conn, list(stored))
            saved = {o: SavedZone(z.origin, z.serial, z.generation, z.document)
                     for o, z in stored.items()}
        out: dict[str, ZoneSource] = {}
        problems: list[Problem] = []
        for origin, zone_doc in saved.items():
            try:
                zone = load_zone_data(zone_doc.document, f"{SOURCE}:{origin}", zone_doc.serial)
            except ConfigError as exc:
                self._invalid[origin] = exc.problems
                problems.extend(exc.problems)  # the App logs them (zone.invalid)
                continue
            self._invalid.pop(origin, None)
            self._zones[origin] = zone
            self._saved[origin] = zone_doc
            if origin in self._index or self.source == "file":
                self._index[origin] = (zone_doc.serial, zone_doc.generation, digests[origin])
            out[origin] = ZoneSource(origin, digests[origin], zone)
        return out, problems

    def keep(self) -> None:
        """Hold every zone's document and save them for a restart during an outage
        (reads the documents not held yet; none are validated)."""
        if self.source != "database" or self._pool is None:
            return
        missing = [o for o, (serial, gen, _d) in self._index.items()
                   if (saved := self._saved.get(o)) is None or saved.generation != gen
                   or saved.serial != serial]
        if missing:
            with translated(self.url), self._pool.connection() as conn:
                stored = zone_db.stored_zones(conn, missing)
            for origin, z in stored.items():
                self._saved[origin] = SavedZone(z.origin, z.serial, z.generation, z.document)
        held = [self._saved[o] for o in sorted(self._index) if o in self._saved]
        saving = self.state.save_later(SavedSnapshot(self.generation or 0, self._wall(),
                                                     redact(self.url), held))
        saving.add_done_callback(self._saved_file)

    def unloaded(self) -> frozenset[str]:
        return frozenset()  # every zone in the database was validated when it was written

    def status(self) -> StoreStatus:
        return StoreStatus(loaded=self.loaded, generation=self.generation, source=self.source,
                           reachable=self.reachable, staleness_s=self.staleness())

    def drain_store(self, state_dir: Any) -> DatabaseDrains:
        """Drains live in PostgreSQL, shared by every server, with a local copy."""
        return DatabaseDrains(self, DrainFile(state_dir))

    def staleness(self) -> float:
        """Seconds since the database last confirmed the generation held (0 if it never did
        and nothing is held)."""
        return max(0.0, self._wall() - self.last_ok) if self.last_ok else 0.0

    def close(self) -> None:
        self._disconnect()
        self.state.flush()

    # -- polling ---------------------------------------------------------

    def _poll(self) -> tuple[bool, list[Problem]]:
        if self._listen is None:
            if self._clock() < self._retry_at:
                return False, []
            try:
                self._connect()
            except GeoStreamError as exc:
                problems = self._lost(exc)
                return self._fallback(), problems
        assert self._listen is not None
        with translated(self.url):
            notified = [n.payload for n in self._listen.notifies(timeout=0)]
            head = zone_db.head_generation(self._listen)
        if notified:
            log.debug("store.notified", generations=notified)
        changed, problems = False, []
        if head != self.generation or self._full_load or self.source != "database":
            changed, problems = self._load()
        self._confirmed()
        return changed, problems

    def _connect(self) -> None:
        listen = connect(self.url, autocommit=True, **LIVE_LINK)
        try:
            with translated(self.url):
                listen.execute(STATEMENT_TIMEOUT)
                listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(zone_db.NOTIFY_CHANNEL)))
                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=2, open=False, timeout=POOL_TIMEOUT,
                    kwargs={"connect_timeout": CONNECT_TIMEOUT, **LIVE_LINK},
                    configure=_configure, check=ConnectionPool.check_connection,
                    name="geostream-store")
                self._pool.open(wait=True, timeout=POOL_TIMEOUT)
        except BaseException:
            listen.close()
            self._close_pool()
            raise
        self._listen = listen
        self._full_load = True

    def _load(self) -> tuple[bool, list[Problem]]:
        """Read what changed since what we hold: every zone's serial and generation,
        and the digests of the zones that moved. (zones changed?, problems)"""
        assert self._pool is not None
        started = time.perf_counter()
        with translated(self.url), self._pool.connection() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            head = zone_db.head_generation(conn)
            serials = zone_db.zone_serials(conn)
            if self._full_load or self.source != "database":
                moved = sorted(serials)
            else:
                moved = [z for z, (serial, gen) in serials.items()
                         if z not in self._index or self._index[z][:2] != (serial, gen)]
            digests = zone_db.zone_digests(conn, moved) if moved else {}
        removed = [z for z in self._index if z not in serials]
        for origin in removed:
            self._index.pop(origin, None)
            self._zones.pop(origin, None)
            self._saved.pop(origin, None)
        for gone in (self._saved, self._invalid, self._zones):  # also zones never valid
            for origin in set(gone) - set(serials):
                del gone[origin]
        really_moved = 0
        for origin in moved:
            entry = (*serials[origin], digests[origin])
            if self._index.get(origin) != entry:
                really_moved += 1
            self._index[origin] = entry
        changed = bool(removed or really_moved) or self.generation != head or not self.loaded
        self.generation = head
        self.source = "database"
        self.loaded = True
        self._full_load = False
        log.info("store.loaded", generation=head, zones=len(self._index),
                 zones_moved=really_moved, zones_removed=len(removed),
                 duration_s=round(time.perf_counter() - started, 4))
        return changed, []

    def _saved_file(self, saving: Future[bool]) -> None:
        error = saving.exception()
        if error is not None:
            log.error("store.snapshot_save_failed", path=str(self.state.path), error=str(error))

    def _fallback(self) -> bool:
        """At start, with PostgreSQL unreachable: serve the saved snapshot, once."""
        if self.loaded or self._tried_file:
            return False
        self._tried_file = True
        try:
            saved = self.state.read()
        except FileNotFoundError:
            log.warning("store.no_saved_snapshot", path=str(self.state.path))
            return False
        except (OSError, ValueError) as exc:
            log.error("store.saved_snapshot_unreadable", path=str(self.state.path),
                      error=str(exc))
            return False
        if saved.database and saved.database != redact(self.url):
            # Another installation's zones (a state dir shared by mistake): never serve them.
            log.error("store.saved_snapshot_other_database", path=str(self.state.path),
                      saved_for=saved.database, database=redact(self.url))
            return False
        self._saved = {z.origin: z for z in saved.zones}
        self._index = {z.origin: (z.serial, z.generation, _saved_digest(z))
                       for z in saved.zones}
        self.generation = saved.generation
        self.last_ok = saved.saved_at
        self.loaded = True
        self.source = "file"
        log.warning("store.serving_saved_snapshot", path=str(self.state.path),
                    generation=saved.generation, zones=len(self._index),
                    age_s=round(self.staleness(), 1), database=saved.database)
        return True

    # -- connection state ------------------------------------------------

    def _confirmed(self) -> None:
        if not self.reachable:
            log.info("store.connected", database=redact(self.url), generation=self.generation,
                     after_failures=self._failures)
        self.reachable = True
        self.last_ok = self._wall()
        self._failures = 0
        self._outage = None

    def _lost(self, exc: BaseException) -> list[Problem]:
        self._disconnect()
        self.reachable = False
        self._failures += 1
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (self._failures - 1))
        delay *= self._rng.uniform(0.5, 1.0)  # jitter: servers do not retry in step
        self._retry_at = self._clock() + delay
        why = str(exc) if isinstance(exc, GeoStreamError) else reason(exc)
        if not isinstance(exc, StoreUnavailable | GeoStreamError):
            log.exception("store.poll_failed")
        serving = (f"serving generation {self.generation} ({self.source})" if self.loaded
                   else "nothing to serve yet")
        self._outage = Problem(SOURCE, 0, UNREACHABLE,
                               f"{why}; {serving}; retry {self._failures} in {delay:.2f}s")
        log.warning("store.unreachable", error=why, generation=self.generation,
                    failures=self._failures, retry_in_s=round(delay, 2))
        return [self._outage]

    def _disconnect(self) -> None:
        if self._listen is not None:
            try:
                self._listen.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
            self._listen = None
        self._close_pool()

    def _close_pool(self) -> None:
        if self._pool is not None:
            try:
                self._pool.close(timeout=0.5)
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
            self._pool = None

    # -- writes through the API -------------------------------------------------

    def write_zone(self, origin: str, document: Any, author: str,
                   force: bool = False) -> tuple[Any, int]:
        """Write one zone (None removes it) as a new generation: (plan, generation).

        The same plan-then-write as `apply`, in one transaction under the head lock,
        refused (`UnsafePlan`) over the safety thresholds unless `force`.
        """
        from geostream_dns.config.plan import check_thresholds, current_documents, plan_targets

        with self._connection() as conn:
            head = zone_db.lock_head(conn)
            wanted = {origin: document} if document is not None else None
            current = current_documents(zone_db.stored_zones(conn, [origin]), wanted)
            plan = plan_targets(current, {origin: document}, head)
            if plan.empty:
                return plan, head
            if not force:
                check_thresholds(plan, current, zone_db.zone_count(conn))
            return plan, zone_db.write_plan(conn, plan, author, kind="api")

    # -- drained regions (shared by every server; see zone_db) -------------

    def drain_region(self, region: str, author: str) -> bool:
        with self._connection() as conn:
            return zone_db.drain_region(conn, region, author)

    def undrain_region(self, region: str) -> bool:
        with self._connection() as conn:
            return zone_db.undrain_region(conn, region)

    def drained_regions(self) -> list[tuple[str, Any, str]]:
        with self._connection() as conn:
            return zone_db.drained_regions(conn)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction committed at the end, errors translated."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(f"{redact(self.url)} is unreachable")
        with translated(self.url), pool.connection() as conn:
            yield conn


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Set up each pooled connection (left idle, as the pool requires)."""
    conn.execute(STATEMENT_TIMEOUT)
    conn.commit()


def _saved_digest(zone: SavedZone) -> str:
    """A digest for a zone read from the saved file (a key space of its own: it
    never matches the database's, so nothing is taken from the answer cache for
    it by mistake)."""
    text = json.dumps(zone.document, sort_keys=True, separators=(",", ":"))
    return "saved-" + hashlib.sha256(f"{zone.serial}\n{text}".encode()).hexdigest()
