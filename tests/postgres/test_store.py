"""PostgresStore in-process: live changes, a lost database, backoff, the saved snapshot."""

from __future__ import annotations

import json
import pathlib
import random

import psycopg

from geostream_dns.adapters.pg import redact
from geostream_dns.adapters.postgres_store import BACKOFF_CAP, PostgresStore
from geostream_dns.adapters.state_file import StateFile
from geostream_dns.config.document import zone_document
from geostream_dns.config.loader import load_zone_file
from tests.postgres.conftest import cli
from tests.support.zones import write_zone

DEAD = "postgresql://postgres@127.0.0.1:1/geostream"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def apply(url: str, folder: pathlib.Path) -> None:
    result = cli("apply", folder, "--delete-missing", "--database-url", url)
    assert result.code == 0, result


def test_poll_loads_changes_and_only_what_changed(migrated_url: str,
                                                  tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    write_zone(folder, "www: {type: A, value: 192.0.2.20}", "example.org.")
    apply(migrated_url, folder)
    store = PostgresStore(migrated_url, tmp_path / "state", save_delay=0)
    try:
        assert store.poll() == (True, [])
        # A poll reads digests, not documents: nothing is validated until asked for.
        sources, _ = store.sources()
        assert [(s.origin, s.zone) for s in sources] == [("example.com.", None),
                                                         ("example.org.", None)]
        digests = {s.origin: s.digest for s in sources}
        zones, problems = store.zones()
        assert problems == [] and store.generation == 1 and store.reachable
        assert sorted(z.origin for z in zones) == ["example.com.", "example.org."]
        # Zones are the loader's own objects: the same document as the file gives.
        by_origin = {z.origin: z for z in zones}
        assert zone_document(by_origin["example.com."]) == zone_document(
            load_zone_file(folder / "example.com.yaml"))
        org = by_origin["example.org."]
        assert store.poll() == (False, [])

        write_zone(folder, "www: {type: A, value: 192.0.2.11}")
        apply(migrated_url, folder)
        assert store.poll() == (True, [])
        moved = {s.origin: s.digest for s in store.sources()[0]}
        assert moved["example.org."] == digests["example.org."]  # same content, same digest
        assert moved["example.com."] != digests["example.com."]
        zones, _ = store.zones()
        by_origin = {z.origin: z for z in zones}
        assert store.generation == 2
        assert by_origin["example.org."] is org  # untouched zones are not rebuilt
        assert [r.to_text() for r in by_origin["example.com."].rrsets[0].rdatas] == [
            "192.0.2.11"]
        assert by_origin["example.com."].serial > 1

        (folder / "example.org.yaml").unlink()
        apply(migrated_url, folder)
        assert store.poll() == (True, [])
        assert [z.origin for z in store.zones()[0]] == ["example.com."]
        store.keep()
        store.state.flush()
        saved = StateFile(tmp_path / "state").read()
        assert saved.generation == 3 and [z.origin for z in saved.zones] == ["example.com."]
    finally:
        store.close()


def test_unreachable_database_never_raises_and_backs_off(tmp_path: pathlib.Path) -> None:
    clock = FakeClock()
    store = PostgresStore(DEAD, tmp_path / "state", rng=random.Random(7), clock=clock)
    changed, problems = store.poll()
    assert (changed, len(problems)) == (False, 1)
    assert problems[0].file == "postgres" and "cannot connect to" in problems[0].message
    assert not store.reachable and not store.loaded
    assert store.poll() == (False, [])  # waiting for the retry: no new problem, no attempt
    delays = []
    for _ in range(12):
        retry_at = store._retry_at
        delays.append(retry_at - clock.now)
        clock.now = retry_at
        changed, problems = store.poll()
        assert (changed, len(problems)) == (False, 1)
    assert all(0 < d <= BACKOFF_CAP for d in delays)
    assert delays[4] > delays[0]  # grows ...
    assert max(delays[-4:]) > BACKOFF_CAP / 2  # ... up to about the cap, with jitter
    assert len(set(delays)) == len(delays)


def test_start_without_database_serves_the_saved_snapshot(migrated_url: str,
                                                          tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    apply(migrated_url, folder)
    state = tmp_path / "state"
    first = PostgresStore(migrated_url, state, save_delay=0)
    assert first.poll() == (True, [])
    first.keep()  # after a build: the documents, for a restart during an outage
    first.close()

    # A saved snapshot of another database is never served (a shared state dir).
    other = PostgresStore(DEAD, state)
    assert other.poll()[0] is False and not other.loaded
    other.close()

    # The same database, now unreachable (here: the file says it was written for
    # the URL the offline store uses, as after a real outage).
    saved = json.loads((state / "snapshot.json").read_text())
    saved["database"] = redact(DEAD)
    (state / "snapshot.json").write_text(json.dumps(saved))
    offline = PostgresStore(DEAD, state)
    changed, problems = offline.poll()
    assert changed and len(problems) == 1
    assert offline.loaded and offline.source == "file" and offline.generation == 1
    assert [z.origin for z in offline.zones()[0]] == ["example.com."]
    assert offline.last_ok > 0 and offline.staleness() >= 0

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "snapshot.json").write_text("{not json")
    nothing = PostgresStore(DEAD, broken)
    assert nothing.poll()[0] is False and not nothing.loaded


def test_lost_connection_is_reported_then_caught_up(migrated_url: str,
                                                    tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    apply(migrated_url, folder)
    clock = FakeClock()
    store = PostgresStore(migrated_url, tmp_path / "state", clock=clock, save_delay=0)
    try:
        assert store.poll() == (True, [])
        assert len(store.zones()[0]) == 1
        with psycopg.connect(migrated_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        changed, problems = store.poll()
        assert not changed and len(problems) == 1 and not store.reachable
        assert len(store.zones()[0]) == 1  # still held
        # A change made while the store was away is caught up on reconnect.
        write_zone(folder, "www: {type: A, value: 192.0.2.12}")
        apply(migrated_url, folder)
        clock.now = store._retry_at
        assert store.poll() == (True, [])
        assert store.reachable and store.generation == 2 and store.zones()[1] == []
    finally:
        store.close()


def test_drained_regions(migrated_url: str, tmp_path: pathlib.Path) -> None:
    store = PostgresStore(migrated_url, tmp_path / "state", save_delay=0)
    try:
        store.poll()
        assert store.drained_regions() == []
        assert store.drain_region("eu-central-1", "alice") is True
        assert store.drain_region("eu-central-1", "bob") is False
        assert [(r, a) for r, _, a in store.drained_regions()] == [("eu-central-1", "alice")]
        assert store.undrain_region("eu-central-1") is True
        assert store.undrain_region("eu-central-1") is False
    finally:
        store.close()


def test_an_invalid_stored_zone_is_reported_and_keeps_its_previous_version(
        migrated_url: str, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    apply(migrated_url, folder)
    store = PostgresStore(migrated_url, tmp_path / "state", save_delay=0)
    try:
        assert store.poll() == (True, [])
        assert store.zones()[1] == []
        with psycopg.connect(migrated_url) as conn:  # what no `apply` would ever write
            conn.execute("INSERT INTO generations (generation, author, kind, summary, diff) "
                         "VALUES (2, 'test', 'apply', 'bad', '[]')")
            conn.execute("""UPDATE record_sets SET data = '{"type": "A", "ttl": 300, """
                         """"value": "192.0.2.999"}'""")
            conn.execute("UPDATE zones SET generation = 2")
            conn.execute("UPDATE config_head SET generation = 2")
        assert store.poll() == (True, [])  # a poll validates nothing
        loaded, problems = store.load(["example.com."])
        assert loaded == {}
        assert [str(p) for p in problems] == [
            'postgres:example.com.:0: records.www.value: "192.0.2.999" is not an IPv4 address']
        zones, standing = store.zones()
        assert standing == problems
        assert [r.to_text() for r in zones[0].rrsets[0].rdatas] == ["192.0.2.10"]
    finally:
        store.close()
