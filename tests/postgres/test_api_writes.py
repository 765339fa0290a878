"""Production mode: `PUT`/`DELETE /v1/zones/{zone}` write a generation to
PostgreSQL, and every server serves it."""

from __future__ import annotations

import pathlib
from typing import Any

import psycopg

from tests.postgres.conftest import cli
from tests.support.harness import ServerProcess, StartServer, wait_for
from tests.support.zones import write_zone

TOKEN = "s3cret"


def call(server: ServerProcess, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    return server.http_json(path, method, body=body, token=TOKEN,
                            content_type="application/yaml", timeout=10)


def test_put_and_delete_through_one_server_reach_every_server(
        migrated_url: str, tmp_path: pathlib.Path, start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    path = write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    servers = [start_server(database_url=migrated_url, env={"GEOSTREAM_API_TOKEN": TOKEN})
               for _ in range(2)]

    new_zone = path.read_text().replace("zone: example.com.", "zone: example.org.")
    status, body = call(servers[0], "PUT", "/v1/zones/example.org", new_zone.encode())
    assert status == 200, body
    assert body["changed"] is True and body["generation"] == 2
    # The server that took the write answers it at once; the other within its poll.
    assert servers[0].addresses("www.example.org") == {"192.0.2.10"}
    assert wait_for(lambda: servers[1].addresses("www.example.org") == {"192.0.2.10"},
                    3.0) is not None
    with psycopg.connect(migrated_url) as conn:
        kind, author = conn.execute(
            "SELECT kind, author FROM generations WHERE generation = 2").fetchone()
    assert kind == "api" and author == "127.0.0.1"

    bad = new_zone.replace("192.0.2.10", "not-an-address")
    status, body = call(servers[1], "PUT", "/v1/zones/example.org", bad.encode())
    assert status == 422 and body["error"] == "invalid zone"
    assert "records.www.value" in str(body["details"][0])

    status, body = call(servers[1], "DELETE", "/v1/zones/example.org")
    assert status == 200 and body["generation"] == 3
    status, body = call(servers[1], "DELETE", "/v1/zones/example.org")
    assert status == 404 and body["error"] == "zone not hosted"
    assert wait_for(lambda: all(not s.addresses("www.example.org") for s in servers),
                    3.0) is not None
    history = cli("history", "--database-url", migrated_url)
    assert history.code == 0 and "api" in history.out
