"""`latency` rules end to end: measurements in over HTTP and from a CSV file (the
CLI), answers over real DNS sockets with ECS, kept across a restart, shared by
two servers through one Redis (a key prefix of their own)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import dns.edns
import pytest

from tests.support.harness import (
    ServerProcess,
    free_port,
    new_redis_prefix,
    remove_redis_prefix,
    run_cli,
    wait_for,
)
from tests.support.zones import write_zone

TOKEN = "latency-test-token"
REDIS_URL = "redis://127.0.0.1:6379/0"
US, EU, AP = "192.0.2.10", "198.51.100.10", "203.0.113.10"
VIRGINIA_NET = "192.0.2.0/24"

RECORDS = """\
www:
  type: A
  ttl: 30
  routing:
    pools:
      us: {region: us, values: [192.0.2.10]}
      eu: {region: eu, values: [198.51.100.10]}
      ap: {region: ap, values: [203.0.113.10]}
    rules:
      - latency: [us, eu, ap]
        min_samples: 3
"""


def zones_in(base: pathlib.Path) -> pathlib.Path:
    folder = base / "zones"
    write_zone(folder, RECORDS)
    return folder


def ask(server: ServerProcess, ecs: str) -> tuple[set[str], int]:
    address, _, prefix = ecs.partition("/")
    reply = server.query("www.example.com.", "A", use_edns=0,
                         options=[dns.edns.ECSOption(address, int(prefix))])
    (option,) = [o for o in reply.options if isinstance(o, dns.edns.ECSOption)]
    return {rd.to_text() for rrset in reply.answer for rd in rrset}, option.scopelen


def post(server: ServerProcess, samples: list[dict[str, Any]], token: str | None = TOKEN,
         query: str = "?wait=true") -> tuple[int, Any]:
    return server.http_json(f"/v1/latency{query}", "POST",
                            body=json.dumps({"samples": samples}).encode(), token=token,
                            content_type="application/json")


def batch(region: str, rtt: float, count: int = 5,
          client: str = VIRGINIA_NET) -> list[dict[str, Any]]:
    return [{"client": client, "region": region, "rtt_ms": rtt, "samples": count}]


@pytest.fixture
def serve(start_server: Callable[..., ServerProcess],
          tmp_path: pathlib.Path) -> Callable[..., ServerProcess]:
    count = iter(range(100))

    def _serve(base: pathlib.Path | None = None, env: dict[str, str] | None = None,
               args: tuple[str, ...] = ()) -> ServerProcess:
        base = base or tmp_path / f"latency{next(count)}"
        return start_server(zones=zones_in(base), env={"GEOSTREAM_API_TOKEN": TOKEN,
                                                       **(env or {})},
                            args=list(args), state_dir=base / "state")
    return _serve


def test_samples_over_the_api_steer_answers(serve: Callable[..., ServerProcess]) -> None:
    server = serve()
    # Without measurements the rule is `nearest`: Virginia gets us.
    assert ask(server, "192.0.2.1/32") == ({US}, 24)
    # writes need the token
    assert post(server, batch("eu", 10), token=None)[0] == 401
    assert post(server, batch("eu", 10), token="wrong")[0] == 401
    # a bad batch is refused whole, every problem located, nothing stored
    status, body = post(server, [*batch("eu", 10), {"client": "nowhere", "region": "mars",
                                                     "rtt_ms": -1, "extra": 1}])
    assert status == 422, body
    assert body["details"] == [
        "samples[1].extra: unknown key",
        'samples[1].client: "nowhere" is not a prefix like 81.2.69.0/24, an address or a '
        "geo code like EU-GB",
        'samples[1].region: unknown region "mars"',
        "samples[1].rtt_ms: -1 is not in (0, 60000] ms",
    ]
    status, known = server.http_json(f"/v1/latency?client={VIRGINIA_NET}")
    assert status == 200 and known["keys"] == 0
    assert ask(server, "192.0.2.1/32") == ({US}, 24)
    # a good batch is in the answers once it is accepted with ?wait=true
    status, body = post(server, [*batch("eu", 10), *batch("us", 80)])
    assert status == 200 and body["stored"] and body["samples"] == 10, body
    assert ask(server, "192.0.2.1/32") == ({EU}, 24)
    status, known = server.http_json(f"/v1/latency?client={VIRGINIA_NET}")
    assert status == 200
    by_key = {m["key"]: m for m in known["measurements"]}
    assert {r["region"]: (r["rtt_ms"], r["samples"]) for r in by_key[VIRGINIA_NET]["regions"]} \
        == {"eu": (10.0, 5.0), "us": (80.0, 5.0)}
    assert by_key["NA-US-VA"]["level"] == "subdivision"
    # explain shows the key used and each pool's evidence
    status, result = server.http_json("/v1/explain?name=www.example.com&type=A"
                                      "&client=192.0.2.1&ecs=192.0.2.0/24")
    assert status == 200
    (step,) = [s for s in result["routing"][0]["steps"] if s.get("kind") == "latency"]
    assert step["latency"]["key_used"] == VIRGINIA_NET
    pools = {p["pool"]: p for p in step["latency"]["pools"]}
    assert pools["eu"]["rtt_ms"] == 10 and pools["eu"]["samples"] == 5
    assert "fewer than 3 samples" in pools["ap"]["skipped"]
    # a beacon's sample without a client is for the address that sent it
    status, _ = post(server, [{"region": "ap", "rtt_ms": 3, "samples": 4}])
    assert status == 200
    assert ask(server, "127.0.0.1/32")[0] == {AP}
    text = server.metrics()
    assert "geostream_latency_keys " in text and 'geostream_latency_samples_total{source="api"}' \
        in text


def test_csv_import_is_all_or_nothing(serve: Callable[..., ServerProcess],
                                      tmp_path: pathlib.Path) -> None:
    server = serve()
    env = {"GEOSTREAM_API_TOKEN": TOKEN}
    http = f"127.0.0.1:{server.http_port}"
    bad = tmp_path / "bad.csv"
    bad.write_text("client,region,rtt_ms,samples\n"
                   "192.0.2.0/24,ap,5,10\n"
                   "EU-XX-YYYY,eu,12,\n"
                   "192.0.2.0/24,ap,fast,3\n")
    result = run_cli("latency", "import", bad, "--http", http, env=env)
    assert result.returncode == 1
    assert f"{bad}:3: \"EU-XX-YYYY\" is not a prefix" in result.stderr
    assert f"{bad}:4: rtt_ms: 'fast' is not a number" in result.stderr
    assert server.http_json(f"/v1/latency?client={VIRGINIA_NET}")[1]["keys"] == 0
    # a region the server does not know: refused by the server, nothing stored
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("client,region,rtt_ms,samples\n192.0.2.0/24,ap,5,10\n"
                       "192.0.2.0/24,mars,5,10\n")
    result = run_cli("latency", "import", unknown, "--http", http, env=env)
    assert result.returncode == 1 and f'{unknown}:3: unknown region "mars"' in result.stderr
    assert server.http_json(f"/v1/latency?client={VIRGINIA_NET}")[1]["keys"] == 0
    good = tmp_path / "good.csv"
    good.write_text("client,region,rtt_ms,samples\n192.0.2.0/24,ap,5,10\n"
                    "192.0.2.0/24,us,40,\nNA-US,us,45,20\n")
    result = run_cli("latency", "import", good, "--http", http, env=env)
    assert result.returncode == 0, result.stderr
    assert "imported 3 rows (31 samples)" in result.stdout
    assert ask(server, "192.0.2.1/32") == ({AP}, 24)


def test_measurements_survive_a_restart(serve: Callable[..., ServerProcess],
                                        tmp_path: pathlib.Path,
                                        city_mmdb: pathlib.Path) -> None:
    base = tmp_path / "restart"
    server = serve(base)
    assert post(server, batch("ap", 7))[0] == 200
    assert ask(server, "192.0.2.1/32")[0] == {AP}
    # the explain command, through the running server
    text = run_cli("explain", "www.example.com", "A", "--client", "192.0.2.1",
                   "--http", f"127.0.0.1:{server.http_port}").stdout
    assert "key used: 192.0.2.0/24 (network)" in text
    assert "ap (ap, healthy): 7.0 ms + bias 0 = 7.0 ms (5 samples at 192.0.2.0/24)" in text
    assert "us (us, healthy): skipped: fewer than 3 samples at 192.0.2.0/24" in text
    assert server.stop() == 0
    assert (base / "state" / "latency.json.gz").exists()
    # ... and offline, from the zones and the state dir the server left
    offline = run_cli("explain", "www.example.com", "A", "--client", "192.0.2.1",
                      "--zones", base / "zones", "--geoip", city_mmdb,
                      "--state-dir", base / "state")
    assert offline.returncode == 0, offline.stderr
    assert "=> pool ap" in offline.stdout and "key used: 192.0.2.0/24" in offline.stdout
    again = serve(base)
    assert ask(again, "192.0.2.1/32")[0] == {AP}
    known = again.http_json(f"/v1/latency?client={VIRGINIA_NET}")[1]
    regions = {m["key"]: m["regions"] for m in known["measurements"]}[VIRGINIA_NET]
    assert [(r["region"], r["rtt_ms"]) for r in regions] == [("ap", 7.0)]
    assert 4.9 < regions[0]["samples"] <= 5.0  # decayed a little, not lost


@pytest.fixture
def prefix() -> Iterator[str]:
    name = new_redis_prefix()
    yield name
    remove_redis_prefix(name, REDIS_URL)


def test_a_fleet_shares_measurements_through_redis(serve: Callable[..., ServerProcess],
                                                   tmp_path: pathlib.Path, prefix: str) -> None:
    env = {"REDIS_URL": REDIS_URL, "GEOSTREAM_REDIS_PREFIX": prefix}
    one = serve(tmp_path / "one", env=env, args=("--server-id", "one", "--site", "s1"))
    two = serve(tmp_path / "two", env=env, args=("--server-id", "two", "--site", "s1"))
    assert ask(two, "192.0.2.1/32")[0] == {US}
    assert post(one, batch("eu", 9))[0] == 200
    waited = wait_for(lambda: ask(two, "192.0.2.1/32")[0] == {EU}, 15.0, step=0.2)
    assert waited is not None, "a sample posted to one server did not reach the other in 15 s"
    # and the other way round
    assert post(two, batch("ap", 2))[0] == 200
    assert wait_for(lambda: ask(one, "192.0.2.1/32")[0] == {AP}, 15.0, step=0.2) is not None
    # a third server, new state dir, takes what the fleet knows from Redis
    assert one.stop() == 0  # writes the fleet's checkpoint
    three = serve(tmp_path / "three", env=env, args=("--server-id", "three", "--site", "s1"))
    assert ask(three, "192.0.2.1/32")[0] == {AP}
    known = three.http_json(f"/v1/latency?client={VIRGINIA_NET}")[1]
    regions = {m["key"]: m["regions"] for m in known["measurements"]}[VIRGINIA_NET]
    assert sorted(r["region"] for r in regions) == ["ap", "eu"]
    assert all(4.9 < r["samples"] <= 5.0 for r in regions), regions  # none counted twice


def test_every_worker_follows_the_measurements(serve: Callable[..., ServerProcess]) -> None:
    server = serve(args=("--workers", "2"))
    assert post(server, batch("ap", 4))[0] == 200

    def all_workers_agree() -> bool:
        # SO_REUSEPORT spreads queries (by source port) over both workers
        return all(ask(server, "192.0.2.1/32")[0] == {AP} for _ in range(20))

    assert wait_for(all_workers_agree, 15.0, step=0.5) is not None


def test_without_its_redis_a_server_measures_alone(serve: Callable[..., ServerProcess],
                                                   tmp_path: pathlib.Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = serve(tmp_path / "alone", env={"REDIS_URL": dead},
                   args=("--server-id", "alone"))
    assert post(server, batch("eu", 6))[0] == 200
    assert ask(server, "192.0.2.1/32")[0] == {EU}
    assert 'geostream_latency_fleet_batches_total{direction="sent"} 0.0' in server.metrics()
