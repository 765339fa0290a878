"""A billion-laughs zone file gets the same located error from `check`, `serve`,
`apply` and `PUT /v1/zones/{zone}`; nothing hangs and nothing is applied."""

from __future__ import annotations

import pathlib
import time

import psycopg

from tests.config.test_yaml_limits import BILLION_LAUGHS
from tests.postgres.conftest import cli
from tests.support.harness import StartServer, run_cli
from tests.support.zones import write_zone

LOCATED = ":7: (file): refused: aliases expand the document to 490,329,068 nodes"


def test_check_reports_the_bomb(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    folder.mkdir()
    bomb = folder / "example.com.yaml"
    bomb.write_text(BILLION_LAUGHS)
    started = time.monotonic()
    result = run_cli("check", folder, timeout=30)
    assert result.returncode == 1, result
    assert result.stdout.startswith(f"{bomb}{LOCATED}"), result.stdout
    assert time.monotonic() - started < 20


def test_apply_refuses_the_bomb(migrated_url: str, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}", "example.org.")
    bomb = folder / "example.com.yaml"
    bomb.write_text(BILLION_LAUGHS)
    result = cli("apply", folder, "--database-url", migrated_url)
    assert result.code == 1, result
    assert f"{bomb}{LOCATED}" in result.out + result.err, result
    with psycopg.connect(migrated_url) as conn:
        [(count,)] = conn.execute("SELECT count(*) FROM zones").fetchall()
    assert count == 0


def test_serve_reports_the_bomb_and_serves_the_rest(tmp_path: pathlib.Path,
                                                    start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}", "example.org.")
    bomb = folder / "example.com.yaml"
    bomb.write_text(BILLION_LAUGHS)
    server = start_server(zones=folder, args=["--no-probe"])
    assert server.addresses("www.example.org") == {"192.0.2.10"}
    problems = server.ready().get("zone_problems", [])
    assert any(p.startswith(f"{bomb}{LOCATED}") for p in problems), problems


def test_put_refuses_the_bomb(migrated_url: str, tmp_path: pathlib.Path,
                              start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}", "example.org.")
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    server = start_server(database_url=migrated_url, env={"GEOSTREAM_API_TOKEN": "t"},
                          args=["--no-probe"])
    status, body = server.http_json("/v1/zones/example.com", "PUT",
                                    body=BILLION_LAUGHS.encode(), token="t",
                                    content_type="application/yaml", timeout=20)
    assert status == 422, body
    assert body["details"][0].startswith(f"api/example.com.yaml{LOCATED}"), body
    with psycopg.connect(migrated_url) as conn:
        zones = [z for (z,) in conn.execute("SELECT name FROM zones").fetchall()]
    assert zones == ["example.org."]
