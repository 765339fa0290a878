"""The fleet's answer cache, in-process, against the machine's real PostgreSQL and Redis.

Each "server" here is a `PostgresStore` plus a `SnapshotBuilder` over one Redis
key prefix (unique per test, removed afterwards). What is checked is what the
fleet relies on: a zone built by one server is loaded by the others without
being validated or rendered again; a corrupt entry is ignored and replaced;
two servers building at once build each zone once between them; a builder
that dies does not block the others beyond its claim's lifetime.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator

import pytest
import redis

from geostream_dns.adapters import answer_cache, builder
from geostream_dns.adapters.answer_cache import AnswerCache
from geostream_dns.adapters.builder import BuildReport, SnapshotBuilder
from geostream_dns.adapters.postgres_store import PostgresStore
from geostream_dns.adapters.redis_link import RedisLink, parse_redis_url
from geostream_dns.core.resolve import resolve
from geostream_dns.core.snapshot import EMPTY, Snapshot
from geostream_dns.core.world import World
from tests.core.helpers import query
from tests.postgres.conftest import cli
from tests.support.harness import new_redis_prefix, remove_redis_prefix
from tests.support.zones import write_zone

REDIS_URL = "redis://127.0.0.1:6379/0"
ZONES = 40


@pytest.fixture
def prefix() -> Iterator[str]:
    name = new_redis_prefix()
    yield name
    remove_redis_prefix(name, REDIS_URL)


@pytest.fixture
def applied(migrated_url: str, tmp_path: pathlib.Path) -> str:
    folder = tmp_path / "zones"
    for i in range(ZONES):
        write_zone(folder, f"www: {{type: A, value: 192.0.2.{i + 1}}}\n"
                   f"txt: {{type: TXT, value: zone {i}}}\n", f"zone{i}.example.")
    result = cli("apply", folder, "--database-url", migrated_url)
    assert result.code == 0, result
    return migrated_url


class Server:
    """A store and a builder, as one server of the fleet has them."""

    def __init__(self, url: str, state: pathlib.Path, prefix: str) -> None:
        self.store = PostgresStore(url, state, save_delay=0)
        self.link = RedisLink(parse_redis_url(REDIS_URL), prefix)
        self.link.up = True  # the App's fleet sets this on its first heartbeat
        self.cache = AnswerCache(self.link)
        self.builder = SnapshotBuilder(self.store, self.cache)
        self.snapshot: Snapshot = EMPTY

    def build(self) -> BuildReport:
        self.store.poll()
        sources, _ = self.store.sources()
        self.snapshot, report = self.builder.build(sources, self.store.generation or 0,
                                                   self.snapshot)
        return report

    def answer(self, name: str) -> bytes | None:
        return resolve(query(name, "A").to_wire(), "127.0.0.1", World.create(self.snapshot))[0]

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def servers(applied: str, tmp_path: pathlib.Path, prefix: str) -> Iterator[list[Server]]:
    made = [Server(applied, tmp_path / f"state{i}", prefix) for i in range(3)]
    yield made
    for server in made:
        server.close()


def test_a_zone_built_once_is_loaded_by_the_others(servers: list[Server]) -> None:
    first, second, _ = servers
    report = first.build()
    assert (report.built, report.from_cache) == (ZONES, 0)
    assert first.cache.counts["stored"] == ZONES
    report = second.build()
    assert (report.built, report.from_cache) == (0, ZONES)
    # nothing was validated: the second server never read a document
    assert all(source.zone is None for source in second.store.sources()[0])
    for i in (0, ZONES - 1):
        assert second.answer(f"www.zone{i}.example.") == first.answer(f"www.zone{i}.example.")
    # a rebuild with nothing changed reuses everything
    assert second.build().reused == ZONES


def test_a_corrupt_entry_is_ignored_and_rebuilt(servers: list[Server], prefix: str) -> None:
    first, second, _ = servers
    first.build()
    client = redis.Redis.from_url(REDIS_URL)
    keys = sorted(client.scan_iter(match=prefix + "cache:*"))
    assert len(keys) == ZONES
    client.set(keys[0], b"GSZC" + b"\x00" * 60)  # right magic, wrong everything else
    client.setrange(keys[1], 200, b"\xff\xff\xff\xff")  # a flipped byte inside
    value = client.get(keys[2])
    assert value is not None
    client.set(keys[2], value[: len(value) // 2])  # truncated
    report = second.build()
    assert (report.built, report.from_cache) == (3, ZONES - 3)
    assert second.cache.counts["corrupt"] == 3
    # ... and replaced: a third server finds every entry whole
    assert servers[2].build().from_cache == ZONES
    client.close()


def test_two_servers_building_at_once_build_each_zone_once(servers: list[Server]) -> None:
    first, second, _ = servers
    reports: list[BuildReport] = []
    barrier = threading.Barrier(2)

    def build(server: Server) -> None:
        barrier.wait(timeout=10)
        reports.append(server.build())

    threads = [threading.Thread(target=build, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(reports) == 2
    assert sum(r.built for r in reports) == ZONES  # not once per server
    for r in reports:
        assert r.built + r.from_cache == ZONES
    assert first.answer("www.zone7.example.") == second.answer("www.zone7.example.")


def test_a_dead_builders_claim_lapses(servers: list[Server],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer_cache, "CLAIM_MS", 300)
    monkeypatch.setattr(builder, "CLAIM_MS", 300)
    first, second, _ = servers
    first.store.poll()
    sources, _ = first.store.sources()
    from geostream_dns.core.build import children_of, unit_key

    children = children_of(s.origin for s in sources)
    keys = [unit_key(s.digest, children[s.origin]) for s in sources]
    # "first" claims every zone and dies before building any
    assert len(first.cache.claim(keys) or ()) == ZONES
    report = second.build()
    assert report.built == ZONES and report.waited_for == 0
    assert second.answer("www.zone3.example.") is not None
