"""Production mode end to end: two `serve` processes on one database, over real UDP."""

from __future__ import annotations

import pathlib
import time

from tests.postgres.conftest import cli
from tests.support.harness import StartServer, wait_for
from tests.support.zones import write_zone


def test_two_servers_answer_a_change_within_a_second_of_apply(
        migrated_url: str, tmp_path: pathlib.Path, start_server: StartServer) -> None:
    db = ["--database-url", migrated_url]
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    assert cli("apply", folder, *db).code == 0
    servers = [start_server(database_url=migrated_url, wait=False) for _ in range(2)]
    for server in servers:
        server.wait_ready(20)
        assert server.addresses("www.example.com") == {"192.0.2.10"}
        ready = server.ready()
        assert ready["generation"] == 1 and ready["database_reachable"] is True
        assert ready["source"] == "database" and ready["staleness_seconds"] < 1

    figures = []
    for i in range(3):
        address = f"192.0.2.{100 + i}"
        write_zone(folder, f"www: {{type: A, value: 192.0.2.10}}\n"
                           f"new{i}: {{type: A, value: {address}}}")
        assert cli("apply", folder, *db).code == 0
        applied = time.monotonic()
        seen = wait_for(lambda a=address, n=i: all(
            s.addresses(f"new{n}.example.com", timeout=0.2) == {a} for s in servers), 5.0)
        assert seen is not None, [s.log()[-2000:] for s in servers]
        figures.append(time.monotonic() - applied)
    print(f"\napply -> both servers answer: {', '.join(f'{f * 1000:.0f} ms' for f in figures)}")
    assert max(figures) < 3.0  # the target is 1 s; 3 s keeps a loaded CI machine unflaky
    for server in servers:
        published = server.events("snapshot.published")
        assert published[-1]["generation"] == 4  # the generation served is logged
        assert server.events("store.loaded")[-1]["generation"] == 4
        metrics = server.http("/metrics")[1]
        assert "geostream_store_reachable 1.0" in metrics
        assert "geostream_store_staleness_seconds" in metrics
        assert "geostream_config_generation 4.0" in metrics
        saved = server.state_dir / "snapshot.json"
        assert wait_for(saved.exists, 5) is not None  # written a second after each load
