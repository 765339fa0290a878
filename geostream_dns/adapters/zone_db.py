"""The zone database: zones, record sets, generations and history in PostgreSQL.

How this works: the configuration has one global *generation*, kept in the
one-row ``config_head`` table. A change (``write_plan``) locks that row, checks
the plan was computed against the generation it finds, writes the changed
zones (settings row, record set rows, a full document in ``zone_versions``),
records the generation with its author and diff, moves the head, and sends
``NOTIFY geostream_config, '<generation>'`` — all in the caller's transaction,
so servers hear of a change only once it is committed, and see all of it.

Every function takes an open connection (and runs inside the caller's
transaction); psycopg errors are translated by the caller's
``adapters.pg.translated`` block. No SQL is built from user data.
"""

from __future__ import annotations

import datetime
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from geostream_dns.config.document import Document, join_document, split_document
from geostream_dns.config.plan import Change, Plan
from geostream_dns.errors import GeoStreamError

NOTIFY_CHANNEL = "geostream_config"
SERIAL_MAX = 2**32 - 1

Conn = psycopg.Connection[Any]


class StalePlan(GeoStreamError):
    """The saved plan was computed against an older generation of the database."""


@dataclass(frozen=True, slots=True)
class StoredZone:
    origin: str
    serial: int
    generation: int  # the generation that last changed it
    document: Document


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    generation: int
    applied_at: datetime.datetime
    author: str
    kind: str
    summary: str


# -- reading ---------------------------------------------------------------


def head_generation(conn: Conn) -> int:
    row = conn.execute("SELECT generation FROM config_head").fetchone()
    return int(row[0]) if row else 0


def lock_head(conn: Conn) -> int:
    """The current generation, locked until the transaction ends (writers queue here)."""
    row = conn.execute("SELECT generation FROM config_head FOR UPDATE").fetchone()
    if row is None:
        raise GeoStreamError("config_head is empty; the schema is damaged")
    return int(row[0])


def zone_generations(conn: Conn) -> dict[str, int]:
    """Every zone with the generation that last changed it (cheap: no documents)."""
    return {name: int(gen) for name, gen in conn.execute("SELECT name, generation FROM zones")}


def zone_serials(conn: Conn) -> dict[str, tuple[int, int]]:
    """Every zone's (serial, generation that last changed it): no documents."""
    return {name: (int(serial), int(gen))
            for name, serial, gen in conn.execute("SELECT name, serial, generation FROM zones")}


# The content digest of a zone, computed by the database over exactly what a
# document is assembled from (jsonb's text form is canonical: keys sorted, one
# spelling), so every server of a fleet computes the same digest for the same
# zone without reading it. The answer cache is keyed by it.
_DIGESTS = """
SELECT z.name, encode(sha256(convert_to(
         z.serial::text || E'\n' || z.settings::text || E'\n' || coalesce((
           SELECT string_agg(r.name || E'\t' || r.type || E'\t' || r.data::text, E'\n'
                             ORDER BY r.name, r.type)
           FROM record_sets r WHERE r.zone = z.name), ''), 'UTF8')), 'hex')
FROM zones z WHERE z.name = ANY(%s)
"""


def zone_digests(conn: Conn, origins: Sequence[str]) -> dict[str, str]:
    """The content digest of each named zone (see _DIGESTS)."""
    return {name: digest for name, digest in conn.execute(_DIGESTS, (list(origins),))}


def zone_count(conn: Conn) -> int:
    """How many zones the database holds."""
    row = conn.execute("SELECT count(*) FROM zones").fetchone()
    return int(row[0]) if row is not None else 0


def stored_zones(conn: Conn, origins: Sequence[str] | None = None) -> dict[str, StoredZone]:
    """Zones as whole documents (all of them, or those named), assembled from their rows."""
    where, params = ("", ()) if origins is None else (" WHERE name = ANY(%s)", (list(origins),))
    zones = conn.execute(
        "SELECT name, serial, generation, settings FROM zones" + where + " ORDER BY name",
        params).fetchall()
    where = "" if origins is None else " WHERE zone = ANY(%s)"
    records: dict[str, list[tuple[str, Document]]] = defaultdict(list)
    with conn.cursor() as cur:
        cur.execute("SELECT zone, name, data FROM record_sets" + where
                    + " ORDER BY zone, name, type", params)
        for zone, name, data in cur:
            records[zone].append((name, data))
    return {name: StoredZone(name, int(serial), int(gen),
                             join_document(name, settings, records.get(name, [])))
            for name, serial, gen, settings in zones}


def documents_at(conn: Conn, generation: int) -> dict[str, Document]:
    """Every zone as it was right after ``generation`` was applied."""
    rows = conn.execute(
        "SELECT DISTINCT ON (zone) zone, document FROM zone_versions WHERE generation <= %s "
        "ORDER BY zone, generation DESC", (generation,))
    return {zone: document for zone, document in rows if document is not None}


def generation_exists(conn: Conn, generation: int) -> bool:
    row = conn.execute("SELECT 1 FROM generations WHERE generation = %s", (generation,))
    return row.fetchone() is not None


def history(conn: Conn, limit: int | None = None,
            up_to: int | None = None) -> list[HistoryEntry]:
    """Generations, newest first (at most ``limit``; none newer than ``up_to``)."""
    rows = conn.execute(
        "SELECT generation, applied_at, author, kind, summary FROM generations "
        "WHERE generation <= coalesce(%s, generation) ORDER BY generation DESC LIMIT %s",
        (up_to, limit))
    return [HistoryEntry(int(g), at, who, kind, summary) for g, at, who, kind, summary in rows]


def generation_diff(conn: Conn, generation: int) -> list[Change]:
    row = conn.execute("SELECT diff FROM generations WHERE generation = %s",
                       (generation,)).fetchone()
    return [Change.from_json(c) for c in row[0]] if row else []


# -- writing ---------------------------------------------------------------


def next_serial(previous: int | None, now: float, floor: int | None = None) -> int:
    """Serials increase on every change; a new (or re-created) zone starts at the time,
    or at ``floor`` (the zone's ``soa.serial``) when it gives one, and never goes below it."""
    if previous is None:
        serial = floor or int(now)
    else:
        serial = max(previous + 1, int(now), floor or 0)
    return serial if serial <= SERIAL_MAX else serial % (SERIAL_MAX + 1) or 1


def write_plan(conn: Conn, plan: Plan, author: str, kind: str = "apply",
               summary: str | None = None) -> int:
    """Write ``plan`` as a new generation in the caller's transaction; returns it.

    Raises :class:`StalePlan` when the database is no longer at the generation
    the plan was computed against.
    """
    head = lock_head(conn)
    if head != plan.base_generation:
        raise StalePlan(
            f"the plan was computed against generation {plan.base_generation}, but the "
            f"database is now at generation {head}; run plan again")
    generation = head + 1
    conn.execute(
        "INSERT INTO generations (generation, author, kind, summary, diff) "
        "VALUES (%s, %s, %s, %s, %s)",
        (generation, author, kind, summary or plan.history_summary(),
         Jsonb([c.to_json() for c in plan.changes])))
    origins = list(plan.targets)
    serials = {name: int(s) for name, s in conn.execute(
        "SELECT name, serial FROM zones WHERE name = ANY(%s)", (origins,))}
    previous = {zone: serial for zone, serial in conn.execute(
        "SELECT DISTINCT ON (zone) zone, serial FROM zone_versions "
        "WHERE zone = ANY(%s) AND serial IS NOT NULL "  # skip deletions: their serial is NULL
        "ORDER BY zone, generation DESC", (origins,))}
    by_zone: dict[str, list[Change]] = defaultdict(list)
    for change in plan.changes:
        by_zone[change.zone].append(change)
    now = time.time()
    new_rows: list[tuple[str, str, str, Jsonb]] = []
    versions: list[tuple[int, str, int | None, Jsonb | None]] = []
    for origin, doc in plan.targets.items():
        if doc is None:
            conn.execute("DELETE FROM zones WHERE name = %s", (origin,))
            versions.append((generation, origin, None, None))
            continue
        # A re-created zone continues from its last serial, so secondaries never go back.
        serial = next_serial(serials.get(origin, previous.get(origin)), now,
                             (doc.get("soa") or {}).get("serial"))
        _, settings, record_sets = split_document(doc)
        created = origin not in serials
        conn.execute(
            "INSERT INTO zones (name, serial, settings, generation) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET serial = EXCLUDED.serial, "
            "settings = EXCLUDED.settings, generation = EXCLUDED.generation, "
            "updated_at = now()",
            (origin, serial, Jsonb(settings), generation))
        if created:
            new_rows.extend((origin, name, rtype, Jsonb(entry))
                            for (name, rtype), entry in record_sets.items())
        else:
            _write_record_changes(conn, origin, by_zone.get(origin, []), record_sets)
        versions.append((generation, origin, serial, Jsonb(doc)))
    if new_rows:
        _copy_record_sets(conn, new_rows)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO zone_versions (generation, zone, serial, document) "
                        "VALUES (%s, %s, %s, %s)", versions)
    conn.execute("UPDATE config_head SET generation = %s, updated_at = now()", (generation,))
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(generation)))
    return generation


def _write_record_changes(conn: Conn, origin: str, changes: Iterable[Change],
                          record_sets: dict[tuple[str, str], Document]) -> None:
    upserts: list[tuple[str, str, str, Jsonb]] = []
    deletes: list[tuple[str, str, str]] = []
    for change in changes:
        if change.name is None or change.rtype is None:
            continue
        if change.op == "remove":
            deletes.append((origin, change.name, change.rtype))
        else:
            entry = record_sets[(change.name, change.rtype)]
            upserts.append((origin, change.name, change.rtype, Jsonb(entry)))
    with conn.cursor() as cur:
        if deletes:
            cur.executemany("DELETE FROM record_sets WHERE zone = %s AND name = %s "
                            "AND type = %s", deletes)
        if upserts:
            cur.executemany(
                "INSERT INTO record_sets (zone, name, type, data) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (zone, name, type) DO UPDATE SET data = EXCLUDED.data", upserts)


def _copy_record_sets(conn: Conn, rows: list[tuple[str, str, str, Jsonb]]) -> None:
    with conn.cursor() as cur, cur.copy(
            "COPY record_sets (zone, name, type, data) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# -- drained regions ---------------------------------------------------------


def drain_region(conn: Conn, region: str, author: str) -> bool:
    """Drain ``region``; False when it already was (its time and author are kept)."""
    cur = conn.execute("INSERT INTO drained_regions (region, author) VALUES (%s, %s) "
                       "ON CONFLICT (region) DO NOTHING", (region, author))
    return cur.rowcount == 1


def undrain_region(conn: Conn, region: str) -> bool:
    """Put ``region`` back in service; False when it was not drained."""
    cur = conn.execute("DELETE FROM drained_regions WHERE region = %s", (region,))
    return cur.rowcount == 1


def drained_regions(conn: Conn) -> list[tuple[str, datetime.datetime, str]]:
    """(region, drained_at, author) of every drained region, by name."""
    rows = conn.execute("SELECT region, drained_at, author FROM drained_regions ORDER BY region")
    return [(region, at, author) for region, at, author in rows]
