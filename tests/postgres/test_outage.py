"""PostgreSQL goes away and comes back: servers keep answering, restart from their saved
snapshot, and catch up. Runs its own throwaway PostgreSQL (never the shared one)."""

from __future__ import annotations

import pathlib
import shutil
import time
from collections.abc import Iterator

import pytest

from tests.postgres.conftest import cli
from tests.postgres.throwaway import ThrowawayPostgres
from tests.support.harness import StartServer, wait_for
from tests.support.zones import write_zone


@pytest.fixture
def throwaway() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


def test_outage_keeps_answers_restarts_from_the_file_and_catches_up(
        throwaway: ThrowawayPostgres, tmp_path: pathlib.Path,
        start_server: StartServer) -> None:
    url = throwaway.create_database("geostream")
    db = ["--database-url", url]
    assert cli("migrate", *db).code == 0
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    assert cli("apply", folder, *db).code == 0
    running = start_server(tmp_path / "running", database_url=url)
    assert running.addresses("www.example.com") == {"192.0.2.10"}
    assert wait_for(lambda: (running.state_dir / "snapshot.json").exists(), 5) is not None

    throwaway.stop("fast")
    assert wait_for(lambda: running.ready().get("database_reachable") is False, 5) is not None
    for _ in range(10):  # answers go on, from memory
        assert running.addresses("www.example.com") == {"192.0.2.10"}
        time.sleep(0.1)
    status, _ = running.http("/ready")
    assert status == 200
    assert "geostream_store_reachable 0.0" in running.http("/metrics")[1]
    assert running.ready()["staleness_seconds"] > 0.5

    refused = cli("apply", folder, *db)
    assert refused.code == 1
    assert refused.err.startswith("geostream-dns apply: cannot connect to ")
    assert refused.err.count("\n") == 1 and "Traceback" not in refused.err

    # A server (re)started during the outage serves its state folder's saved snapshot.
    state = tmp_path / "restarted" / "state"
    state.mkdir(parents=True)
    shutil.copy(running.state_dir / "snapshot.json", state / "snapshot.json")
    restarted = start_server(tmp_path / "restarted", database_url=url, state_dir=state)
    servers = [running, restarted]
    assert restarted.addresses("www.example.com") == {"192.0.2.10"}
    ready = restarted.ready()
    assert (ready["source"], ready["database_reachable"], ready["generation"]) == (
        "file", False, 1)
    assert restarted.events("store.serving_saved_snapshot")

    throwaway.start()
    write_zone(folder, "www: {type: A, value: 192.0.2.10}\n"
                       "new: {type: A, value: 192.0.2.77}")
    assert cli("apply", folder, *db).code == 0
    applied = time.monotonic()
    caught_up = wait_for(lambda: all(s.addresses("new.example.com", timeout=0.2)
                                     == {"192.0.2.77"} for s in servers), 15.0)
    assert caught_up is not None, [s.log()[-3000:] for s in servers]
    print(f"\ncatch-up after the database came back: {caught_up * 1000:.0f} ms "
          f"(reconnect backoff capped at 5 s)")
    for server in servers:
        ready = server.ready()
        assert ready["database_reachable"] is True and ready["generation"] == 2
        assert ready["source"] == "database"
    assert time.monotonic() - applied < 15
