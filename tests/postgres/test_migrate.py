"""`migrate`: from an empty database, again (idempotent), twice at once, and failures."""

from __future__ import annotations

import pathlib
import threading

import psycopg
import pytest

from geostream_dns.adapters.migrations import DEFAULT_DIR, discover, migrate
from geostream_dns.errors import StoreUnavailable
from tests.postgres.conftest import cli

TABLES = {"config_head", "generations", "zones", "record_sets", "zone_versions",
          "drained_regions", "schema_migrations"}


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in rows}


def recorded(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute("SELECT version, name FROM schema_migrations ORDER BY version"))


def test_migrate_from_empty_then_again_does_nothing(database_url: str) -> None:
    files = discover(DEFAULT_DIR)
    assert [m.name for m in files][:2] == ["0001_init.sql", "0002_drained_regions.sql"]

    first = cli("migrate", "--database-url", database_url)
    assert first.code == 0, first
    assert [line for line in first.out.splitlines() if line.startswith("applied")] == [
        f"applied {m.name}" for m in files]
    assert TABLES <= tables(database_url)
    assert recorded(database_url) == [(m.version, m.name) for m in files]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT generation FROM config_head").fetchall() == [(0,)]

    again = cli("migrate", "--database-url", database_url)
    assert again.code == 0, again
    assert "up to date" in again.out and "applied" not in again.out
    assert recorded(database_url) == [(m.version, m.name) for m in files]


def test_two_migrations_at_once_apply_each_file_once(database_url: str) -> None:
    barrier = threading.Barrier(3)
    results: list[object] = []

    def run() -> None:
        barrier.wait(timeout=10)
        try:
            results.append(migrate(database_url))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert all(not isinstance(r, Exception) for r in results), results
    applied = sorted(len(r.applied) for r in results)  # type: ignore[attr-defined]
    # One run applied everything; the others waited on the lock and found nothing to do.
    assert applied == [0, 0, len(discover(DEFAULT_DIR))]
    assert len(recorded(database_url)) == len(discover(DEFAULT_DIR))


def test_a_failing_migration_leaves_no_trace_and_is_retried(
        database_url: str, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_one.sql").write_text("CREATE TABLE one (x int);")
    (folder / "0002_two.sql").write_text("CREATE TABLE two (x int);\nTHIS IS NOT SQL;")
    (folder / "README.txt").write_text("ignored")

    failed = cli("migrate", "--database-url", database_url, "--dir", folder)
    assert failed.code == 1
    assert failed.err.startswith("geostream-dns migrate: ") and "Traceback" not in failed.err
    assert failed.err.count("\n") == 1
    assert recorded(database_url) == [(1, "0001_one.sql")]
    assert "two" not in tables(database_url)  # the file's transaction was rolled back

    (folder / "0002_two.sql").write_text("CREATE TABLE two (x int);")
    fixed = cli("migrate", "--database-url", database_url, "--dir", folder)
    assert fixed.code == 0, fixed
    assert fixed.out.splitlines()[0] == "applied 0002_two.sql"
    assert {"one", "two"} <= tables(database_url)


def test_commands_without_a_database_fail_with_one_line(tmp_path: pathlib.Path) -> None:
    dead = "postgresql://postgres@127.0.0.1:1/geostream"
    for args in (["migrate"], ["plan", tmp_path], ["apply", tmp_path], ["export", tmp_path],
                 ["history"], ["rollback", "1"]):
        result = cli(*args, "--database-url", dead)
        assert result.code == 1, (args, result)
        assert "Traceback" not in result.err
        assert result.err.count("\n") == 1, result.err
        if args[0] in ("migrate", "history", "rollback", "export"):
            assert "cannot connect to postgresql://postgres@127.0.0.1:1/geostream" in result.err


def test_commands_need_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = cli("history")
    assert result.code == 1
    assert result.err == ("geostream-dns history: no database: give --database-url URL or "
                          "set DATABASE_URL\n")


def test_commands_on_an_unmigrated_database_say_to_migrate(database_url: str) -> None:
    result = cli("history", "--database-url", database_url)
    assert result.code == 1
    assert "has no GeoStream schema; run `geostream-dns migrate` first" in result.err


def test_password_is_never_printed() -> None:
    with pytest.raises(StoreUnavailable) as info:
        from geostream_dns.adapters.pg import connect

        connect("postgresql://postgres:s3cret@127.0.0.1:1/geostream")
    assert "s3cret" not in str(info.value)
    assert "postgres:***@127.0.0.1:1" in str(info.value)
