"""A real fleet on loopback: several `geostream-dns serve` processes, one database, one Redis.

The module's fleet (`fleet`): nameservers a1 and a2 in site a, b1 in site b, and
a probe-only server c1 in site c, on a database of the module's own and a
Redis prefix of their own on the machine's Redis. The zone `fleet.example.`
routes `www` over two loopback endpoints X and Y (check `web`) and `strict`
over Z (check `strict`, `quorum: 1`) and Y; every check runs every second
with rise 1 and fall 1. The endpoints (tests/fleet/support.py) read the
prober's User-Agent and can fail for some sites only. Tests on this fleet
leave it as they found it (endpoints healed), except the lease takeover,
which kills a server and so runs last of them.

Redis outages and the Sentinel failover run fleets of their own on Redis
processes of the test's own (`redis-server`, `redis-server --sentinel`) on
spare loopback ports, so the machine's Redis is never touched.

Timing bounds are generous (the machine is shared); the figures the fleet is
held to are measured by `make fleet-drill`.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from geostream_dns.version import VERSION
from tests.fleet.conftest import MACHINE_REDIS, remove_prefix
from tests.fleet.support import Endpoints, Fleet, RedisProcess
from tests.postgres.conftest import cli, create_database, drop_database, url_for
from tests.support.harness import ServerProcess, run_cli, wait_until
from tests.support.zones import write_zone

ORIGIN = "fleet.example."
WWW = "www.fleet.example."
STRICT = "strict.fleet.example."
X, Y, Z = "127.0.9.1", "127.0.9.2", "127.0.9.3"
VERDICT_LIMIT = 10.0  # seconds for a verdict to reach every answer (the target is 1 s + probes)
TOKEN = "fleet-token"

RECORDS = """\
ns1: {{type: A, value: 127.0.9.53}}
www:
  type: A
  ttl: 5
  routing:
    pools:
      here: {{region: here, answer: all, values: [{{value: {x}, healthcheck: web}},
                                                {{value: {y}, healthcheck: web}}]}}
    rules:
      - pool: here
strict:
  type: A
  ttl: 5
  routing:
    pools:
      here: {{region: here, answer: all, values: [{{value: {z}, healthcheck: strict}},
                                                {{value: {y}, healthcheck: web}}]}}
    rules:
      - pool: here
{extra}"""


def check(port: int, quorum: int | None = None) -> str:
    extra = f", quorum: {quorum}" if quorum is not None else ""
    return (f"{{protocol: http, port: {port}, path: /health, interval: 1s, timeout: 500ms, "
            f"rise: 1, fall: 1, expect: {{status: [200], body_contains: ok}}{extra}}}")


def write_fleet_zone(folder: pathlib.Path, port: int, extra: str = "") -> pathlib.Path:
    return write_zone(folder, RECORDS.format(x=X, y=Y, z=Z, extra=extra), ORIGIN,
                      regions={"here": (50.1, 8.7)},
                      healthchecks={"web": check(port), "strict": check(port, quorum=1)})


def apply(folder: pathlib.Path, url: str) -> None:
    result = cli("apply", folder, "--database-url", url)
    assert result.code == 0, result


def answers_everywhere(servers: list[ServerProcess], name: str, want: set[str]) -> bool:
    return all(s.addresses(name) == want for s in servers)


def metric(server: ServerProcess, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", server.metrics(), re.M)
    return float(match.group(1)) if match else None


def site_verdict(server: ServerProcess, target: str, site: str) -> str | None:
    """What `server` knows of `site`'s verdict on `target` (check web or strict)."""
    status, body = server.http_json("/v1/health")
    if status != 200:
        return None
    for entry in body["targets"]:
        if entry["target"] == target:
            return entry.get("sites", {}).get(site)
    return None


# -- the module's fleet ---------------------------------------------------------------


class ModuleFleet(Fleet):
    endpoints: Endpoints
    zones: pathlib.Path


@pytest.fixture(scope="module")
def fleet(fleet_db: str, city_mmdb: pathlib.Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleFleet]:
    base = tmp_path_factory.mktemp("fleet")
    endpoints = Endpoints((X, Y, Z))
    zones = base / "zones"
    write_fleet_zone(zones, endpoints.port)
    apply(zones, fleet_db)
    prefix = f"gs-fleet-{uuid.uuid4().hex[:10]}:"
    made = ModuleFleet(base, fleet_db, MACHINE_REDIS, prefix, city_mmdb)
    made.endpoints, made.zones = endpoints, zones
    try:
        for name, site in (("a1", "a"), ("a2", "a"), ("b1", "b")):
            made.start(name, site, wait=False)
        made.start("c1", "c", probe_only=True, wait=False)
        for server in made.servers.values():
            server.wait_ready()
        # every site has published its verdicts, every server sees the three sites
        wait_until(lambda: all(site_verdict(s, X, site) == "up" for s in made.dns()
                               for site in "abc"), 15, 0.1)
        yield made
        made.close()
    finally:
        for server in made.servers.values():
            server.stop()
        endpoints.close()
        remove_prefix(MACHINE_REDIS, prefix)


@pytest.fixture
def healed(fleet: ModuleFleet) -> Iterator[ModuleFleet]:
    """The fleet; every endpoint answers again, everywhere, when the test ends."""
    yield fleet
    fleet.endpoints.heal()
    # Healed means every site's verdict is up again, as every server knows it: the
    # answers alone come back once a majority is up, and a site still saying down
    # would decide the next test's majority.
    wait_until(lambda: answers_everywhere(fleet.dns(), WWW, {X, Y})
               and answers_everywhere(fleet.dns(), STRICT, {Y, Z})
               and all(site_verdict(server, target, site) == "up" for server in fleet.dns()
                       for target in (X, Y, Z) for site in "abc"), VERDICT_LIMIT, 0.05)


def test_one_probe_stream_per_site(healed: ModuleFleet) -> None:
    eps = healed.endpoints
    # site a has two nameservers, yet one prober: the lease holder's
    holder = redis.Redis.from_url(MACHINE_REDIS).get(healed.prefix + "lease:a")
    assert holder in (b"a1", b"a2")
    started = time.monotonic()
    time.sleep(4.0)
    ended = time.monotonic()
    counts = {(host, site): eps.count(host, site, started, ended)
              for host in (X, Y, Z) for site in "abc"}
    # one stream probes every ~1 s (jitter only shortens the gap): 4-5 in 4 s;
    # two servers of site a probing would make 8 or more
    assert all(2 <= n <= 6 for n in counts.values()), counts
    assert eps.count(X, "?", 0.0) == 0  # every probe says who sent it
    assert {f"geostream-dns-prober/{VERSION} (site={s})" for s in "abc"} == eps.agents
    status, body = healed.servers["a1"].http_json("/v1/servers")
    assert status == 200
    roles = {s["id"]: (s["site"], s["role"]) for s in body["servers"]}
    assert roles == {"a1": ("a", "dns"), "a2": ("a", "dns"), "b1": ("b", "dns"),
                     "c1": ("c", "prober")}


def test_a_majority_of_sites_decides(healed: ModuleFleet) -> None:
    eps, servers = healed.endpoints, healed.dns()
    eps.fail(X, "a")  # one site of three sees X down: X stays in the answers
    wait_until(lambda: all(site_verdict(s, X, "a") == "down" for s in servers),
               VERDICT_LIMIT, 0.1)
    for _ in range(5):
        assert answers_everywhere(servers, WWW, {X, Y})
        time.sleep(0.1)
    status, body = servers[0].http_json("/v1/health")
    entry = next(t for t in body["targets"] if t["target"] == X)
    assert (entry["state"], entry["sites"]) == ("up", {"a": "down", "b": "up", "c": "up"})
    eps.fail(X, "b")  # two of three: down in every server's answers
    wait_until(lambda: answers_everywhere(servers, WWW, {Y}), VERDICT_LIMIT, 0.05)
    assert all('geostream_health_target_up{check="web",target="127.0.9.1",'
               'zone="fleet.example."} 0.0' in s.metrics() for s in servers)


def test_a_checks_quorum_beats_the_majority(healed: ModuleFleet) -> None:
    eps, servers = healed.endpoints, healed.dns()
    eps.fail(Z, "c")  # only the probe-only site sees Z down; `strict` has quorum 1
    eps.fail(X, "c")  # ... and X too, whose check `web` has the default majority
    wait_until(lambda: answers_everywhere(servers, STRICT, {Y}), VERDICT_LIMIT, 0.05)
    assert answers_everywhere(servers, WWW, {X, Y})
    status, body = servers[-1].http_json("/v1/health")
    entry = next(t for t in body["targets"] if t["target"] == Z)
    assert (entry["quorum"], entry["state"], entry["sites"]["c"]) == (1, "down", "down")


def test_insync_and_apply_wait(healed: ModuleFleet, tmp_path: pathlib.Path) -> None:
    servers = healed.dns()
    env = {"DATABASE_URL": healed.database_url, "REDIS_URL": healed.redis_url,
           "GEOSTREAM_REDIS_PREFIX": healed.prefix}
    folder = tmp_path / "zones"
    write_fleet_zone(folder, healed.endpoints.port, "note: {type: TXT, value: one}\n")
    result = run_cli("apply", folder, "--wait", "30", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Every live server \(3\) serves generation (\d+) after [\d.]+s",
                     result.stdout), result.stdout
    generation = int(re.search(r"generation (\d+)", result.stdout).group(1))  # type: ignore[union-attr]
    # in sync means every answering server serves it now
    assert all(s.answer("note.fleet.example.", "TXT") == {'"one"'} for s in servers)
    status, body = servers[0].http_json(f"/v1/changes/{generation}")
    assert status == 200 and body["status"] == "INSYNC" and body["lagging"] == []
    assert {s["id"] for s in body["servers"]} == {"a1", "a2", "b1", "c1"}
    assert all(s["generation"] >= generation for s in body["servers"] if s["role"] == "dns")

    # PUT ...?wait= on one server: the answer comes once the others serve it too
    text = (folder / "fleet.example.yaml").read_text().replace("value: one", "value: two")
    status, body = servers[0].http_json("/v1/zones/fleet.example.?wait=30", "PUT",
                                        body=text.encode(), token=TOKEN,
                                        content_type="application/yaml")
    assert status == 200, body
    assert body["fleet"]["status"] == "INSYNC" and body["generation"] > generation
    assert all(s.answer("note.fleet.example.", "TXT") == {'"two"'} for s in servers)

    # a server that does not catch up (a heartbeat of generation 1): PENDING, exit 3
    client = redis.Redis.from_url(MACHINE_REDIS)
    laggard = {"id": "zz-lagging", "site": "z", "role": "dns", "version": VERSION,
               "generation": 1, "health_epoch": 0, "ready": True, "last_seen": time.time()}
    client.set(healed.prefix + "server:zz-lagging", json.dumps(laggard), px=20_000)
    client.sadd(healed.prefix + "servers", "zz-lagging")
    try:
        status, body = servers[1].http_json(f"/v1/changes/{body['generation']}")
        assert body["status"] == "PENDING"
        assert [s["id"] for s in body["lagging"]] == ["zz-lagging"]
        write_fleet_zone(folder, healed.endpoints.port, "note: {type: TXT, value: three}\n")
        result = run_cli("apply", folder, "--wait", "1", env=env)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "PENDING" in result.stderr and "zz-lagging" in result.stderr
    finally:
        client.delete(healed.prefix + "server:zz-lagging")
        client.close()


def test_a_new_server_starts_with_the_fleets_verdicts(healed: ModuleFleet) -> None:
    eps = healed.endpoints
    eps.fail(X, "a", "b", "c")
    wait_until(lambda: answers_everywhere(healed.dns(), WWW, {Y}), VERDICT_LIMIT, 0.05)
    joiner = healed.start("a3", "a", wait=False)
    try:
        first: set[str] | None = None
        deadline = time.monotonic() + 20
        while first is None and time.monotonic() < deadline:
            assert joiner.alive(), joiner.log()
            try:
                reply = joiner.query(WWW, timeout=0.2)
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.02)
                continue
            first = {rd.to_text() for rrset in reply.answer for rd in rrset}
        assert first == {Y}, f"the first answer of a new server: {first}\n{joiner.log()}"
        assert joiner.events("fleet.joined"), joiner.log()
    finally:
        assert joiner.stopped_cleanly() is None


def test_a_corrupt_cache_entry_is_ignored_and_rebuilt(healed: ModuleFleet) -> None:
    client = redis.Redis.from_url(MACHINE_REDIS)
    try:
        # the zone as served now, and as it was before earlier tests changed it
        keys = sorted(client.scan_iter(match=healed.prefix + "cache:*"))
        assert keys, "the fleet keeps its compiled zone in Redis"
        for key in keys:
            value = client.get(key)
            assert isinstance(value, bytes)
            client.set(key, value[: len(value) // 2] + b"\x00garbage")
        fixer = healed.start("a4", "a")
        built = fixer.events("snapshot.built")[0]
        assert (built["zones"], built["built"], built["from_cache"]) == (1, 1, 0), built
        assert fixer.events("cache.entry_ignored")
        assert 'geostream_cache_requests_total{result="corrupt",tier="redis"} 1.0' \
            in fixer.metrics()
        assert fixer.addresses(WWW) == {X, Y}
        # ... and replaced: the next server loads it whole
        assert any(not bytes(client.get(k)).endswith(b"\x00garbage") for k in keys)  # type: ignore[arg-type]
        loader = healed.start("a5", "a")
        built = loader.events("snapshot.built")[0]
        assert (built["built"], built["from_cache"]) == (0, 1), built
        assert loader.addresses(WWW) == {X, Y}
    finally:
        client.close()
        for name in ("a4", "a5"):
            if name in healed.servers:
                assert healed.servers[name].stopped_cleanly() is None


def test_the_lease_is_taken_over_when_its_holder_dies(healed: ModuleFleet) -> None:
    eps = healed.endpoints
    client = redis.Redis.from_url(MACHINE_REDIS)
    lease = healed.prefix + "lease:a"
    try:
        holder = client.get(lease)
        assert holder in (b"a1", b"a2")
        other = "a2" if holder == b"a1" else "a1"
        healed.kill(holder.decode())  # type: ignore[union-attr]
        killed = time.monotonic()
        took = wait_until(lambda: client.get(lease) == other.encode(), 10, 0.05)
        wait_until(lambda: bool([t for t in eps.times(X, "a") if t > killed + took]), 10, 0.05)
        probing = max(t for t in eps.times(X, "a")) - killed
        print(f"lease taken over {took:.2f} s after the kill; site a probes again "
              f"after {probing:.2f} s")
        assert took <= 6.0 and probing <= 8.0  # the target is 3 s; the machine is shared
        # the new holder decides for site a: a failure seen from a (and b) is acted on
        eps.fail(X, "a", "b")
        wait_until(lambda: answers_everywhere(healed.dns(), WWW, {Y}), VERDICT_LIMIT, 0.05)
        # and the dead server leaves the fleet once its heartbeat lapses (5 s)
        survivor = healed.servers[other]

        def listed() -> set[str]:
            return {s["id"] for s in survivor.http_json("/v1/servers")[1]["servers"]}

        wait_until(lambda: listed() == {"a1", "a2", "b1", "c1"} - {holder.decode()}, 10, 0.2)
    finally:
        client.close()


# -- fleets of their own --------------------------------------------------------------


@pytest.fixture
def own_endpoints() -> Iterator[Endpoints]:
    eps = Endpoints((X, Y, Z))
    yield eps
    eps.close()


def fleet_on(tmp_path: pathlib.Path, database_url: str, redis_url: str, prefix: str,
             geoip: pathlib.Path) -> Fleet:
    return Fleet(tmp_path / "fleet", database_url, redis_url, prefix, geoip)


@pytest.fixture
def zone_db(own_endpoints: Endpoints, tmp_path: pathlib.Path) -> Iterator[str]:
    """A database of the test's own serving the fleet zone on `own_endpoints`."""
    name = create_database()
    url = url_for(name)
    try:
        assert cli("migrate", "--database-url", url).code == 0
        write_fleet_zone(tmp_path / "zones", own_endpoints.port)
        apply(tmp_path / "zones", url)
        yield url
    finally:
        drop_database(name)


def test_two_servers_building_the_same_zones_at_once_build_them_once(
        tmp_path: pathlib.Path, zone_db: str, city_mmdb: pathlib.Path,
        redis_prefix: Callable[[], str]) -> None:
    made = fleet_on(tmp_path, zone_db, MACHINE_REDIS, redis_prefix(), city_mmdb)
    try:
        first = made.start("n1", "a", wait=False, args=["--no-probe"])
        second = made.start("n2", "a", wait=False, args=["--no-probe"])
        first.wait_ready()
        second.wait_ready()
        # both notice the same apply of many zones within a poll of each other
        folder = tmp_path / "many"
        zones = 150
        for i in range(zones):
            write_zone(folder, f"www: {{type: A, value: 127.0.10.{i % 250 + 1}}}\n"
                       f"txt: {{type: TXT, value: zone {i}}}\n", f"zone{i}.example.")
        apply(folder, zone_db)
        last = f"www.zone{zones - 1}.example."
        wait_until(lambda: all(s.addresses(last) for s in (first, second)), 60, 0.1)
        builds = [next(e for e in s.events("snapshot.built") if e["zones"] >= zones)
                  for s in (first, second)]
        for b in builds:  # the fleet's own zone was served already
            assert (b["zones"], b["reused"], b["built"] + b["from_cache"]) == \
                (zones + 1, 1, zones), b
        assert sum(b["built"] for b in builds) == zones, builds  # not once per server
        print("zones built:", [b["built"] for b in builds])
        assert first.answer("txt.zone77.example.", "TXT") == \
            second.answer("txt.zone77.example.", "TXT") == {'"zone 77"'}
    finally:
        made.close()


def ready_redis(server: ServerProcess) -> dict[str, object]:
    body = server.ready()
    assert body["status"] == "ready", body
    return dict(body["redis"])  # type: ignore[call-overload]


def test_redis_outage_and_return(tmp_path: pathlib.Path, zone_db: str,
                                 own_endpoints: Endpoints, city_mmdb: pathlib.Path) -> None:
    eps = own_endpoints
    own = RedisProcess(tmp_path / "redis").start()
    made = fleet_on(tmp_path, zone_db, own.url, "gs-outage:", city_mmdb)
    try:
        servers = [made.start("o1", "a", wait=False), made.start("o2", "a", wait=False),
                   made.start("ob", "b", wait=False)]
        for s in servers:
            s.wait_ready()
        wait_until(lambda: all(ready_redis(s)["health_from"] == "fleet" for s in servers)
                   and own.client().exists("gs-outage:verdicts:a", "gs-outage:verdicts:b")
                   == 2, 10, 0.1)

        def rate(seconds: float = 3.0) -> int:
            started = time.monotonic()
            time.sleep(seconds)
            return eps.count(X, "a", started)

        assert rate() <= 4  # one stream for site a: ~3 probes in 3 s

        own.kill()
        wait_until(lambda: all(metric(s, "geostream_redis_up") == 0.0 for s in servers),
                   10, 0.1)
        for s in servers:
            details = ready_redis(s)
            assert (details["up"], details["health_from"]) == (False, "own prober"), details
            assert details["error"]
            assert s.addresses(WWW) == {X, Y}  # still answering, from its own memory
        time.sleep(1.5)  # both probers are running
        assert rate() >= 5  # every server probes for itself: two streams from site a
        eps.fail(X, "a", "b")  # each server's own prober takes X out
        wait_until(lambda: answers_everywhere(servers, WWW, {Y}), VERDICT_LIMIT, 0.05)
        eps.heal()
        wait_until(lambda: answers_everywhere(servers, WWW, {X, Y}), VERDICT_LIMIT, 0.05)

        # a server started while Redis is away says so loudly, and starts anyway
        late = made.start("o3", "a")
        unreachable = late.events("redis.unreachable")
        assert unreachable and unreachable[0]["level"] == "error", late.log()
        servers.append(late)

        own.start()  # the same port, empty: the servers rejoin without a restart
        wait_until(lambda: all(metric(s, "geostream_redis_up") == 1.0
                               and ready_redis(s)["health_from"] == "fleet"
                               for s in servers), 20, 0.2)
        client = own.client()
        wait_until(lambda: client.get("gs-outage:lease:a") is not None
                   and client.get("gs-outage:lease:b") == b"ob"
                   and client.scard("gs-outage:servers") == 4, 10, 0.1)
        # the sites' verdicts are in Redis again, for servers that join later (site b's
        # holder is the one that held its lease before the outage)
        wait_until(lambda: client.hlen("gs-outage:verdicts:a") == 3
                   and client.hlen("gs-outage:verdicts:b") == 3, 10, 0.1)
        time.sleep(1.5)
        assert rate() <= 4  # one stream again
        eps.fail(X, "a", "b")  # ... and the fleet decides again
        wait_until(lambda: answers_everywhere(servers, WWW, {Y}), VERDICT_LIMIT, 0.05)
        assert client.hget("gs-outage:verdicts:a", json.dumps(
            [ORIGIN, "web", X], separators=(",", ":"))) == b"down"
        client.close()
    finally:
        made.close()
        own.stop()


def test_sentinel_failover(tmp_path: pathlib.Path, zone_db: str, own_endpoints: Endpoints,
                           city_mmdb: pathlib.Path) -> None:
    eps = own_endpoints
    primary = RedisProcess(tmp_path / "primary").start()
    replica = RedisProcess(tmp_path / "replica", replica_of=primary.port).start()
    sentinel = RedisProcess(tmp_path / "sentinel", sentinel_for=("gsm", primary.port))
    made: Fleet | None = None
    try:
        wait_until(lambda: replica.client().info("replication").get("master_link_status")
                   == "up", 10, 0.1)
        sentinel.start()
        wait_until(lambda: bool(sentinel.client().execute_command("SENTINEL", "REPLICAS",
                                                                  "gsm")), 15, 0.1)
        made = fleet_on(tmp_path, zone_db, f"redis+sentinel://127.0.0.1:{sentinel.port}/gsm",
                        "gs-sentinel:", city_mmdb)
        servers = [made.start("s1", "a", wait=False), made.start("s2", "b", wait=False)]
        for s in servers:
            s.wait_ready()
        wait_until(lambda: primary.client().scard("gs-sentinel:servers") == 2, 10, 0.1)

        primary.kill()
        started = time.monotonic()
        wait_until(lambda: sentinel.client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "gsm")[1] == str(replica.port).encode(),
            30, 0.1)
        promoted = time.monotonic() - started
        client = replica.client()
        # the servers follow: fresh heartbeats on the new primary, Redis up again
        now = time.time()
        wait_until(lambda: all(
            (raw := client.get(f"gs-sentinel:server:{n}")) is not None
            and json.loads(raw)["last_seen"] > now for n in ("s1", "s2")), 20, 0.1)
        wait_until(lambda: all(metric(s, "geostream_redis_up") == 1.0
                               and ready_redis(s)["health_from"] == "fleet"
                               for s in servers), 10, 0.1)
        print(f"sentinel promoted the replica {promoted:.2f} s after the kill")
        assert all(s.addresses(WWW) == {X, Y} for s in servers)
        eps.fail(X, "a", "b")  # the fleet decides through the new primary
        wait_until(lambda: answers_everywhere(servers, WWW, {Y}), VERDICT_LIMIT, 0.05)
        assert client.hget("gs-sentinel:verdicts:b", json.dumps(
            [ORIGIN, "web", X], separators=(",", ":"))) == b"down"
        client.close()
    finally:
        if made is not None:
            made.close()
        for process in (sentinel, replica, primary):
            process.stop()

