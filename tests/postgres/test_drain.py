"""Production mode keeps drained regions in PostgreSQL: shared by every server,
kept across restarts (`geostream-dns drain` and `undrain` through a server's API)."""

from __future__ import annotations

import pathlib
import subprocess

import psycopg

from tests.postgres.conftest import cli
from tests.support.harness import ServerProcess, StartServer, run_cli, wait_for
from tests.support.zones import write_zone

ROUTED = """\
www:
  type: A
  routing:
    pools:
      us: {region: us, values: [192.0.2.10], fallback: eu}
      eu: {region: eu, values: [198.51.100.10]}
    rules: [{pool: us}]
"""
TOKEN = {"GEOSTREAM_API_TOKEN": "s3cret"}


def drain(server: ServerProcess, verb: str, region: str) -> subprocess.CompletedProcess[str]:
    return run_cli(verb, region, "--http", f"127.0.0.1:{server.http_port}", env=TOKEN,
                   timeout=30)


def test_a_drain_reaches_every_server_and_survives_restarts(
        migrated_url: str, tmp_path: pathlib.Path, start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, ROUTED)  # the standard header has the regions us and eu
    assert cli("apply", folder, "--database-url", migrated_url).code == 0
    servers = [start_server(database_url=migrated_url, env=TOKEN) for _ in range(2)]
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
    servers[1] = start_server(database_url=migrated_url, env=TOKEN,
                              state_dir=servers[1].state_dir)
    assert servers[1].addresses("www.example.com") == {"198.51.100.10"}
    assert '"drained":true' in servers[1].http("/v1/regions")[1].replace(" ", "")

    undone = drain(servers[1], "undrain", "us")
    assert undone.returncode == 0, undone.stderr
    assert wait_for(lambda: all(s.addresses("www.example.com") == {"192.0.2.10"}
                                for s in servers), 5.0) is not None
