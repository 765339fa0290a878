"""Production mode keeps drained regions in PostgreSQL: shared by every server,
kept across restarts (SPEC §2 `drain`, issue: drain state in the database)."""

from __future__ import annotations

import os
import pathlib
import subprocess

import psycopg

from tests.postgres.conftest import BIN, Server, cli, launch_server, wait_for, write_zone

ROUTED = """\
www:
  type: A
  routing:
    pools:
      us: {region: us, values: [192.0.2.10], fallback: eu}
      eu: {region: eu, values: [198.51.100.10]}
    rules: [{pool: us}]
"""
REGIONS = "regions:\n  us: {lat: 38.9, lon: -77.4}\n  eu: {lat: 50.1, lon: 8.7}\n"
TOKEN = {"GEOSTREAM_API_TOKEN": "s3cret"}


def drain(server: Server, verb: str, region: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **TOKEN}
    return subprocess.run([str(BIN), verb, region, "--http", f"127.0.0.1:{server.http_port}"],
                          capture_output=True, text=True, env=env, timeout=30, check=False)


def test_a_drain_reaches_every_server_and_survives_restarts(
        migrated_url: str, tmp_path: pathlib.Path, servers: list[Server]) -> None:
    folder = tmp_path / "zones"
    path = write_zone(folder, "example.com.", ROUTED)
    path.write_text(path.read_text().replace("records:\n", REGIONS + "records:\n"))
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    servers.extend(launch_server(tmp_path / f"srv{i}", migrated_url, extra_env=TOKEN)
                   for i in range(2))
    assert all(s.addresses("www.example.com") == {"192.0.2.10"} for s in servers)

    done = drain(servers[0], "drain", "us")
    assert done.returncode == 0 and "region us: drained" in done.stdout, done.stderr
    with psycopg.connect(migrated_url) as conn:
        rows = conn.execute("SELECT region FROM drained_regions").fetchall()
    assert rows == [("us",)]
    # The server that took the drain answers without us at once; the other one
    # reads the drain from the database within its refresh (1 s).
    assert servers[0].addresses("www.example.com") == {"198.51.100.10"}
    assert wait_for(lambda: servers[1].addresses("www.example.com") == {"198.51.100.10"},
                    5.0) is not None, servers[1].log()[-2000:]

    servers[1].stop()
    servers[1] = launch_server(tmp_path / "srv1b", migrated_url, extra_env=TOKEN,
                               state_dir=servers[1].state_dir)
    assert servers[1].addresses("www.example.com") == {"198.51.100.10"}
    assert '"drained":true' in servers[1].http("/v1/regions")[1].replace(" ", "")

    undone = drain(servers[1], "undrain", "us")
    assert undone.returncode == 0, undone.stderr
    assert wait_for(lambda: all(s.addresses("www.example.com") == {"192.0.2.10"}
                                for s in servers), 5.0) is not None
