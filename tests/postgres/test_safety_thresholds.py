"""`apply` and API writes refuse plans over the 30% thresholds unless forced."""

from __future__ import annotations

import pathlib

import psycopg

from tests.postgres.conftest import cli
from tests.support.harness import StartServer
from tests.support.zones import write_zone, zone_text

TOKEN = "s3cret"


def records(count: int, first: int = 1) -> str:
    return "".join(f"h{i}: {{type: A, value: 192.0.2.{i}}}\n" for i in range(first, count + 1))


def stored_names(url: str, zone: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM record_sets WHERE zone = %s", (zone,)).fetchone()
    assert row is not None
    return int(row[0])


def test_apply_refuses_a_truncated_zone_unless_forced(migrated_url: str,
                                                      tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    path = write_zone(folder, records(20))
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    before = stored_names(migrated_url, "example.com.")
    # 5 of 20 record sets removed: under 30%, applied.
    path.write_text(zone_text(records(15)))
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    assert stored_names(migrated_url, "example.com.") == before - 5
    # 10 of 15 removed: refused, nothing applied.
    path.write_text(zone_text(records(5)))
    refused = cli("apply", folder, "--database-url", migrated_url)
    assert refused.code == 1, refused
    assert ("example.com.: would change or delete 10 of its 15 record sets (66%, more than "
            "30%)") in refused.err, refused
    assert "--force" in refused.err
    assert stored_names(migrated_url, "example.com.") == before - 5
    forced = cli("apply", folder, "--database-url", migrated_url, "--force")
    assert forced.code == 0, forced
    assert stored_names(migrated_url, "example.com.") == before - 15


def test_apply_delete_missing_refuses_deleting_most_zones(migrated_url: str,
                                                         tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    for zone in ("a.example.", "b.example.", "c.example.", "d.example."):
        write_zone(folder, "www: {type: A, value: 192.0.2.1}", zone)
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    for zone in ("b.example.", "c.example.", "d.example."):
        (folder / f"{zone.rstrip('.')}.yaml").unlink()
    refused = cli("apply", folder, "--delete-missing", "--database-url", migrated_url)
    assert refused.code == 1
    assert "would delete 3 of the 4 zones (75%, more than 30%)" in refused.err, refused
    with psycopg.connect(migrated_url) as conn:
        row = conn.execute("SELECT count(*) FROM zones").fetchone()
    assert row is not None and row[0] == 4
    forced = cli("apply", folder, "--delete-missing", "--force", "--database-url", migrated_url)
    assert forced.code == 0, forced
    with psycopg.connect(migrated_url) as conn:
        row = conn.execute("SELECT count(*) FROM zones").fetchone()
    assert row is not None and row[0] == 1


def test_api_put_refuses_a_truncated_zone_unless_forced(
        migrated_url: str, tmp_path: pathlib.Path, start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, records(20))
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    server = start_server(database_url=migrated_url, env={"GEOSTREAM_API_TOKEN": TOKEN},
                          args=["--no-probe"])
    body = zone_text(records(3)).encode()

    def put(path: str) -> tuple[int, object]:
        return server.http_json(path, "PUT", body=body, token=TOKEN,
                                content_type="application/yaml", timeout=10)

    status, answer = put("/v1/zones/example.com")
    assert status == 409, answer
    assert isinstance(answer, dict) and answer["details"] == [
        "example.com.: would change or delete 17 of its 20 record sets (85%, more than 30%)"]
    assert server.addresses("h10.example.com") == {"192.0.2.10"}
    status, answer = put("/v1/zones/example.com?force=true")
    assert status == 200, answer
    assert server.addresses("h10.example.com") == set()
    assert server.addresses("h3.example.com") == {"192.0.2.3"}
