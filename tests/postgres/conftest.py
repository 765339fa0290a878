"""Fixtures for tests against the machine's real PostgreSQL (never skipped).

How this works: every test that asks for ``database_url`` gets a database of
its own, ``gs_test_<uuid>``, created through the ``postgres`` database on
127.0.0.1 as user ``postgres`` (override with ``GEOSTREAM_TEST_ADMIN_URL``)
and dropped afterwards, after ending whatever is still connected to it.
``migrated_url`` is the same with the schema in place. If PostgreSQL cannot
be reached the tests fail with the reason: `make test` starts it.

``cli()`` runs the ``geostream-dns`` command line in-process (fast) and
returns its exit code and output. Servers in production mode are started with
the shared ``start_server`` fixture (tests/support/harness.py) and
``database_url=``.
"""

from __future__ import annotations

import io
import os
import pathlib
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from geostream_dns.cli.main import main

ADMIN_URL = os.environ.get("GEOSTREAM_TEST_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def admin_connect(url: str = ADMIN_URL) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {url} (run `make services`): {exc}",
                    pytrace=False)


def url_for(database: str, admin_url: str = ADMIN_URL) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


def create_database(admin_url: str = ADMIN_URL) -> str:
    name = f"gs_test_{uuid.uuid4().hex}"
    with admin_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    with admin_connect(admin_url) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def database_url() -> Iterator[str]:
    name = create_database()
    try:
        yield url_for(name)
    finally:
        drop_database(name)


@pytest.fixture
def migrated_url(database_url: str) -> str:
    result = cli("migrate", "--database-url", database_url)
    assert result.code == 0, result
    return database_url


# -- the command line, in-process -------------------------------------------


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def cli(*args: str | pathlib.Path) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())
