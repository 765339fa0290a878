"""Schema migrations: plain, ordered SQL files applied once each.

How this works: ``migrations/NNNN_name.sql`` files are applied in version
order. ``migrate()`` takes a session-level advisory lock first, so two
``migrate`` runs at once (two servers deploying together) queue up instead of
racing: the second finds everything applied and does nothing. Each pending
file runs in its own transaction together with the row that records it in
``schema_migrations`` (version, name, checksum, time), so a failing file leaves
no trace and the next run starts again from it. A recorded file whose text has
changed since is reported, never re-run.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import sys
from dataclasses import dataclass

import psycopg

from geostream_dns.adapters.pg import connect, translated
from geostream_dns.errors import GeoStreamError

# The repository's migrations/ (next to the package), else the copy an installed
# wheel carries in <prefix>/share/geostream-dns/migrations; GEOSTREAM_MIGRATIONS
# overrides both.
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[2] / "migrations"
INSTALLED_DIR = pathlib.Path(sys.prefix) / "share" / "geostream-dns" / "migrations"
LOCK_KEY = 0x47454F5354524D  # pg_advisory_lock key: "GEOSTRM"
_FILE = re.compile(r"^(\d{4,})_([A-Za-z0-9_\-]+)\.sql$")

_CREATE_TABLE = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file name
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> pathlib.Path:
    env = os.environ.get("GEOSTREAM_MIGRATIONS")
    if env:
        return pathlib.Path(env)
    return DEFAULT_DIR if DEFAULT_DIR.is_dir() else INSTALLED_DIR


def discover(directory: pathlib.Path | None = None) -> list[Migration]:
    """The migration files of ``directory``, in version order."""
    directory = directory or migrations_dir()
    if not directory.is_dir():
        raise GeoStreamError(f"no migrations folder at {directory}")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        match = _FILE.match(path.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise GeoStreamError(f"two migrations with version {version}: "
                                 f"{found[version].name} and {path.name}")
        found[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def schema_version(conn: psycopg.Connection[tuple]) -> int:  # type: ignore[type-arg]
    """The highest applied migration (0 for a database without the schema)."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0


@dataclass
class MigrateResult:
    applied: list[Migration]
    version: int
    warnings: list[str]


def migrate(url: str, directory: pathlib.Path | None = None) -> MigrateResult:
    """Apply every pending migration; safe to run again, and from two places at once."""
    migrations = discover(directory)
    applied: list[Migration] = []
    warnings: list[str] = []
    with connect(url, autocommit=True) as conn, translated(url):
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(_CREATE_TABLE)
            done = {int(v): (name, checksum) for v, name, checksum in conn.execute(
                "SELECT version, name, checksum FROM schema_migrations")}
            for migration in migrations:
                if migration.version in done:
                    name, checksum = done[migration.version]
                    if checksum != migration.checksum:
                        warnings.append(f"{migration.name} changed after it was applied "
                                        f"(as {name}); it is not run again")
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum))
                applied.append(migration)
            version = schema_version(conn)
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return MigrateResult(applied, version, warnings)


def check_schema(conn: psycopg.Connection[tuple], url: str) -> None:  # type: ignore[type-arg]
    """Raise a clear error when the database's schema is older than this program's."""
    want = max((m.version for m in discover()), default=0)
    have = schema_version(conn)
    if have < want:
        from geostream_dns.adapters.pg import SCHEMA_HINT, redact

        what = "no GeoStream schema" if have == 0 else f"schema version {have} (need {want})"
        raise GeoStreamError(f"{redact(url)} has {what}; {SCHEMA_HINT}")
