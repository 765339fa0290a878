"""PostgreSQL connections: the one place that opens them and translates psycopg errors.

Every caller outside ``adapters/`` sees :class:`StoreUnavailable` with a
one-line reason (``cannot connect to postgresql://postgres@127.0.0.1/geostream:
connection refused``), never a psycopg exception or a traceback. Passwords are
never printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from geostream_dns.errors import StoreUnavailable

CONNECT_TIMEOUT = 5  # seconds, for a connection attempt
POOL_TIMEOUT = 10.0  # seconds to wait for a pooled connection

SCHEMA_HINT = "run `geostream-dns migrate` first"

# For a server's long-lived connections: notice a dead or silent database within
# seconds (TCP keepalives; data left unacknowledged), not after the kernel's minutes.
LIVE_LINK: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
                             "keepalives_count": 2, "tcp_user_timeout": 5000}
STATEMENT_TIMEOUT = b"SET statement_timeout = '10s'"  # a stuck statement never blocks for long


def redact(url: str) -> str:
    """The URL or conninfo string without its password."""
    if "://" in url:
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "the database"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def reason(exc: BaseException) -> str:
    """The first meaningful line of a database error, lower-cased at the start."""
    text = " ".join(line.strip() for line in str(exc).splitlines()[:1]) or type(exc).__name__
    text = re.sub(r"^connection failed: ", "", text)
    return text[:1].lower() + text[1:]


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = CONNECT_TIMEOUT,
            **params: Any) -> psycopg.Connection[tuple]:  # type: ignore[type-arg]
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout,
                               **params)
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to {redact(url)}: {reason(exc)}") from exc


@contextmanager
def translated(url: str) -> Iterator[None]:
    """Turn psycopg and pool errors raised inside into :class:`StoreUnavailable`."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise StoreUnavailable(
            f"{redact(url)} has no (or an old) GeoStream schema: {reason(exc)}; {SCHEMA_HINT}"
        ) from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(f"no connection to {redact(url)}: {reason(exc)}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"lost the connection to {redact(url)}: {reason(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreUnavailable(f"database error on {redact(url)}: {reason(exc)}") from exc


class Database:
    """A small connection pool over one database; ``transaction()`` hands out a
    connection whose work is committed at the end of the block (rolled back on error)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4) -> None:
        self.url = url
        connect(url).close()  # fail now, with the server's own reason, when unreachable
        self.pool: ConnectionPool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=False, timeout=POOL_TIMEOUT,
            kwargs={"connect_timeout": CONNECT_TIMEOUT}, check=ConnectionPool.check_connection,
            name="geostream")
        with translated(url):
            self.pool.open(wait=True, timeout=POOL_TIMEOUT)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[tuple]]:  # type: ignore[type-arg]
        with translated(self.url), self.pool.connection() as conn:
            yield conn

    @contextmanager
    def read_snapshot(self) -> Iterator[psycopg.Connection[tuple]]:  # type: ignore[type-arg]
        """A read-only transaction that sees one consistent state of the database
        (REPEATABLE READ), so reads in several statements never mix generations."""
        with self.transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    def close(self) -> None:
        self.pool.close(timeout=1.0)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
