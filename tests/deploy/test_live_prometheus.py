"""The alerts and dashboards against real data: a real Prometheus scraping a
real fleet under query load.

How this works: the module starts, once, a small fleet on loopback —
PostgreSQL (a database of its own), Redis (a key prefix of its own), `ns1`
(site-a, `--workers 2`, a query log) and `ns2` (site-b), both probing a real
HTTP endpoint on 127.0.0.2 and a dead one on 127.0.0.3, and `ns3`, an
embedded-mode server with a zone file that never loads and a Redis that is
not there — then the real `prometheus` binary scraping the three every
second, and a thread sending every kind of query (types, IPv4 and IPv6, NXDOMAIN, REFUSED,
FORMERR, ECS, TCP, truncated, routed, failed open) until the
module ends. Every wait is bounded.

Then every Grafana panel query (tests/deploy/expressions.py) must return
data through Prometheus's HTTP API, every alert expression must evaluate, and
the alerts this fleet provokes (target down, fail-open, Redis down, zones
failing, reload errors, and — after `ns3` is stopped — server down) must
select something. A panel whose metrics no server exports fails the test.
"""

from __future__ import annotations

import json
import pathlib
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.message
import pytest

from tests.deploy.expressions import (
    alert_expressions,
    dashboard_expressions,
    metric_names,
)
from tests.deploy.tools import require_tool
from tests.health.farm import Farm
from tests.postgres.conftest import create_database, drop_database, url_for
from tests.support.harness import (
    ServerProcess,
    finish,
    free_port,
    remove_redis_prefix,
    run_cli,
    stop_process,
    wait_for,
)
from tests.support.zones import write_zone, zone_text

REDIS_URL = "redis://127.0.0.1:6379/0"
START_TIMEOUT = 30.0
DATA_TIMEOUT = 60.0  # seconds for a panel query to return data
LOAD_LIMIT = 600.0  # the query load stops after this long, whatever happens

FLEET_RECORDS = """\
www:
  type: A
  ttl: 60
  values: [127.0.0.9]
  routing:
    pools:
      good: {region: us, values: [{value: 127.0.0.2, healthcheck: web}]}
      dead: {region: eu, values: [{value: 127.0.0.3, healthcheck: web}]}
    rules:
      - {geos: [EU-DE], pool: dead}
      - {pool: good}
static: [{type: A, value: 192.0.2.80}, {type: AAAA, value: "2001:db8::80"}]
mail: {type: A, value: 192.0.2.25}
'': [{type: MX, value: {preference: 10, exchange: mail.example.com.}},
     {type: TXT, value: "v=spf1 -all"}]
_sip._tcp: {type: SRV, value: {priority: 1, weight: 1, port: 5060, target: mail.example.com.}}
big: {type: TXT, values: [BIG]}
""".replace("BIG", ", ".join(f'"{i:02d}{"x" * 200}"' for i in range(12)))


def checks(port: int) -> dict[str, str]:
    return {"web": f"{{protocol: http, port: {port}, path: /, interval: 1s, timeout: 500ms, "
                   f"rise: 1, fall: 1}}"}


# -- Prometheus ------------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: pathlib.Path

    def query(self, promql: str) -> tuple[int, dict[str, Any]]:
        body = urllib.parse.urlencode({"query": promql}).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/query", data=body)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def result(self, promql: str) -> list[dict[str, Any]]:
        status, answer = self.query(promql)
        assert status == 200 and answer["status"] == "success", (promql, answer)
        return list(answer["data"]["result"])


def start_prometheus(folder: pathlib.Path, targets: list[str]) -> Prometheus:
    binary = require_tool("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: geostream-dns\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n")
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log)

    def ready() -> bool:
        assert process.poll() is None, f"prometheus exited: {log.read_text()}"
        try:
            with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    if wait_for(ready, START_TIMEOUT, 0.2) is None:
        stop_process(process, 10)
        pytest.fail(f"prometheus not ready within {START_TIMEOUT} s: {log.read_text()}")
    return prometheus


# -- query load ----------------------------------------------------------------------


def query_kinds(ecs_de: dns.edns.ECSOption) -> list[tuple[str, str, bool, dict[str, Any]]]:
    """(name, type, over TCP, make_query options): one of every kind of query."""
    return [
        ("www.example.com.", "A", False, {}),                                  # routed
        ("www.example.com.", "A", False, {"use_edns": 0, "options": [ecs_de]}),  # fail open
        ("www.example.com.", "A", True, {}),
        ("static.example.com.", "AAAA", False, {}),
        ("example.com.", "MX", False, {}),
        ("example.com.", "TXT", True, {}),
        ("example.com.", "SOA", False, {}),
        ("example.com.", "NS", False, {}),
        ("_sip._tcp.example.com.", "SRV", False, {}),
        ("example.com.", "ANY", False, {}),
        ("mail.example.com.", "CAA", False, {}),                                # NODATA
        ("nothing.example.com.", "A", False, {}),                               # NXDOMAIN
        ("www.example.net.", "A", False, {}),                                   # REFUSED
        ("big.example.com.", "TXT", False, {"use_edns": False}),                # truncated
        ("big.example.com.", "TXT", True, {}),
    ]


def send_load(servers: list[ServerProcess], broken: ServerProcess,
              stop: threading.Event) -> None:
    ecs_de = dns.edns.ECSOption("198.51.100.0", 25)
    kinds = query_kinds(ecs_de)
    malformed = dns.message.make_query("static.example.com.", "A").to_wire() + b"junk"
    started = time.monotonic()
    while not stop.is_set() and time.monotonic() - started < LOAD_LIMIT:
        for server in servers:
            for name, rdtype, tcp, options in kinds:
                try:
                    server.query(name, rdtype, tcp=tcp, timeout=0.5, **options)
                except Exception:  # noqa: BLE001 - a lost query is no reason to stop the load
                    pass
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # FORMERR
                sock.sendto(malformed, (server.host, server.port))
            for listen in server.listens[1:]:  # IPv6, over UDP and TCP
                for tcp in (False, True):
                    try:
                        server.query("static.example.com.", "AAAA", tcp=tcp, timeout=0.5,
                                     listen=listen)
                    except Exception:  # noqa: BLE001
                        pass
        try:
            broken.query("www.broken.test.", "A", timeout=0.5)  # a zone that never loaded
        except Exception:  # noqa: BLE001
            pass
        try:  # a signed answer
            broken.query("static.example.com.", "A", timeout=0.5, use_edns=0, want_dnssec=True)
        except Exception:  # noqa: BLE001
            pass
        for _ in range(4):  # over ns3's rate limit of one a second: dropped and slipped
            try:
                broken.query("static.example.com.", "A", timeout=0.2)
            except Exception:  # noqa: BLE001
                pass
        stop.wait(0.2)


# -- the fleet -----------------------------------------------------------------------


@dataclass
class Fleet:
    prometheus: Prometheus
    servers: dict[str, ServerProcess]
    broken_zone: pathlib.Path


def exported(servers: list[ServerProcess]) -> set[str]:
    """The sample names (metric names as PromQL selects them) the servers export."""
    names = set()
    for server in servers:
        for line in server.metrics().splitlines():
            if line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory,
          city_mmdb: pathlib.Path) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("live-prometheus")
    farm = Farm()
    check_port = free_port("127.0.0.2", "127.0.0.3")
    farm.endpoint("127.0.0.2", check_port)  # 127.0.0.3 has no endpoint: its check fails
    database = create_database()
    prefix = f"geostream-test-{uuid.uuid4().hex}:"
    servers: dict[str, ServerProcess] = {}
    stop = threading.Event()
    load: threading.Thread | None = None
    prometheus: Prometheus | None = None
    try:
        url = url_for(database)
        zones = base / "zones"
        write_zone(zones, FLEET_RECORDS, healthchecks=checks(check_port))
        for args in (["migrate"], ["apply", str(zones)]):
            result = run_cli(*args, env={"DATABASE_URL": url})
            assert result.returncode == 0, result
        fleet_env = {"REDIS_URL": REDIS_URL, "GEOSTREAM_REDIS_PREFIX": prefix}
        servers["ns1"] = ServerProcess.start(
            base / "ns1", database_url=url, geoip=city_mmdb, env=fleet_env,
            args=["--site", "site-a", "--server-id", "ns1", "--workers", "2",
                  "--query-log", str(base / "queries.log")])
        ns2_port = free_port("127.0.0.1", "::1")
        servers["ns2"] = ServerProcess.start(
            base / "ns2", database_url=url, geoip=city_mmdb, env=fleet_env,
            listens=[("127.0.0.1", ns2_port), ("::1", ns2_port)],
            args=["--site", "site-b", "--server-id", "ns2"])
        # ns3: embedded mode, a signed zone, one zone that never loads, no Redis where
        # it looks, and a response-rate limit the load goes over.
        embedded = base / "embedded"
        write_zone(embedded, "static: {type: A, value: 192.0.2.80}\n", healthchecks={},
                   dnssec="true")  # a signed zone, for the DNSSEC panels and metrics
        broken_zone = embedded / "broken.test.yaml"
        broken_zone.write_text(zone_text("www: {type: A, value: not-an-address}\n",
                                         "broken.test.", healthchecks={}))
        dead_redis = f"redis://127.0.0.1:{free_port()}/0"
        servers["ns3"] = ServerProcess.start(
            base / "ns3", zones=embedded, geoip=city_mmdb, env={"REDIS_URL": dead_redis},
            args=["--site", "site-c", "--server-id", "ns3", "--no-probe",
                  "--rrl-rate", "1", "--rrl-exempt", "none"])
        load = threading.Thread(
            target=send_load, args=([servers["ns1"], servers["ns2"]], servers["ns3"], stop),
            name="query-load", daemon=True)
        load.start()
        prometheus = start_prometheus(
            base, [f"127.0.0.1:{s.http_port}" for s in servers.values()])
        # Every target scraped a few times before anything is asked.
        if wait_for(lambda: len([r for r in prometheus.result("count_over_time(up[1m]) >= 5")
                                 ]) == 3, DATA_TIMEOUT, 0.5) is None:
            pytest.fail(f"prometheus did not scrape the fleet: {prometheus.result('up')}")
        yield Fleet(prometheus, servers, broken_zone)
    finally:
        stop.set()
        if load is not None:
            load.join(10)
        if prometheus is not None:
            stop_process(prometheus.process, 10)
        try:
            finish(*servers.values())
        finally:
            farm.close()
            drop_database(database)
            remove_redis_prefix(prefix, REDIS_URL)


def eventually(check: Callable[[], Any], timeout: float = DATA_TIMEOUT) -> Any:
    """The first truthy value of `check()` within `timeout` seconds, else the last one."""
    found: list[Any] = [None]

    def holds() -> bool:
        found[0] = check()
        return bool(found[0])

    wait_for(holds, timeout, 0.5)
    return found[0]


# -- the dashboards ------------------------------------------------------------------


def test_the_fleet_answers_every_kind_of_query(fleet: Fleet) -> None:
    metrics = fleet.servers["ns1"].metrics()
    for labels in ('qtype="A",rcode="NOERROR",transport="udp"',
                   'qtype="A",rcode="NXDOMAIN",transport="udp"',
                   'qtype="A",rcode="REFUSED",transport="udp"',
                   'qtype="TXT",rcode="NOERROR",transport="tcp"'):
        assert f"geostream_dns_queries_total{{{labels}}}" in metrics
    assert re.search(r'rcode="FORMERR"', metrics)
    assert re.search(r"^geostream_dns_truncated_total [1-9]", metrics, re.M)
    assert re.search(r'^geostream_route_decisions_total\{pool="good"', metrics, re.M)
    assert re.search(r"^geostream_route_all_down_total [1-9]", metrics, re.M)
    ns2 = fleet.servers["ns2"].metrics()
    for transport in ("udp", "tcp"):
        for family in ("ipv4", "ipv6"):
            assert re.search(rf'^geostream_dns_queries_by_family_total\{{family="{family}",'
                             rf'transport="{transport}"\}} [1-9]', ns2, re.M), (transport, family)


def test_every_dashboard_query_returns_data(fleet: Fleet) -> None:
    names = exported(list(fleet.servers.values())) | {"up"}
    empty: list[str] = []
    expressions = list(dashboard_expressions())
    assert len(expressions) >= 30
    for expression in expressions:
        missing = metric_names(expression.promql) - names
        assert not missing, f"{expression}: no server exports {sorted(missing)}"
        result = eventually(lambda e=expression: fleet.prometheus.result(e.promql))  # type: ignore[misc]
        if not result:
            empty.append(f"{expression}: {expression.promql}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


# -- the alerts ----------------------------------------------------------------------

ALERTS = {e.where.rsplit("/", 1)[1]: e for e in alert_expressions()}


def test_every_alert_expression_evaluates(fleet: Fleet) -> None:
    assert len(ALERTS) >= 8
    for name, expression in ALERTS.items():
        status, answer = fleet.prometheus.query(expression.promql)
        assert status == 200 and answer["status"] == "success", (name, answer)


def firing(fleet: Fleet, alert: str) -> list[dict[str, Any]]:
    return list(eventually(lambda: fleet.prometheus.result(ALERTS[alert].promql)))


def test_a_dead_health_target_and_fail_open_answers_alert(fleet: Fleet) -> None:
    down = firing(fleet, "GeoStreamHealthTargetDown")
    assert [r["metric"]["target"] for r in down] == ["127.0.0.3"], down
    assert firing(fleet, "GeoStreamFailOpen")


def test_redis_down_zone_problems_and_reload_errors_alert(fleet: Fleet) -> None:
    ns3 = f"127.0.0.1:{fleet.servers['ns3'].http_port}"
    redis_down = firing(fleet, "GeoStreamRedisDown")
    assert [r["metric"]["instance"] for r in redis_down] == [ns3]
    problems = firing(fleet, "GeoStreamZoneProblems")
    assert [r["metric"]["instance"] for r in problems] == [ns3]
    # Another broken version of the zone: a reload error, seen by increase().
    fleet.broken_zone.write_text(fleet.broken_zone.read_text().replace(
        "not-an-address", "still-not-an-address"))
    reload_errors = firing(fleet, "GeoStreamConfigReloadErrors")
    assert ns3 in [r["metric"]["instance"] for r in reload_errors]
    assert not fleet.prometheus.result(ALERTS["GeoStreamFleetOutOfSync"].promql)


# -- docs/metrics.md -----------------------------------------------------------------

METRICS_DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def families(text: str) -> dict[str, str]:
    """name -> type of every metric family in a /metrics text."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def documented() -> dict[str, str]:
    """name -> type of every row of docs/metrics.md's tables."""
    return dict(re.findall(r"^\| `([a-z_]+)` \| (\w+) \|", METRICS_DOC.read_text(), re.M))


def test_docs_metrics_lists_exactly_what_the_servers_export(fleet: Fleet) -> None:
    """ns1 runs with everything that adds metrics (PostgreSQL, Redis, the prober,
    workers, the query log), ns2 and ns3 with less: their union is all there is."""
    exported_families: dict[str, str] = {}
    for server in fleet.servers.values():
        if server.alive():
            exported_families.update(families(server.metrics()))
    docs = documented()
    assert len(exported_families) >= 40
    undocumented = sorted(exported_families.keys() - docs.keys())
    assert not undocumented, f"exported but not in docs/metrics.md: {undocumented}"
    missing = sorted(docs.keys() - exported_families.keys())
    assert not missing, f"in docs/metrics.md but exported by no server: {missing}"
    wrong = {n: (t, docs[n]) for n, t in exported_families.items() if docs[n] != t}
    assert not wrong, f"(exported type, documented type): {wrong}"


def test_a_stopped_server_alerts(fleet: Fleet) -> None:
    assert not fleet.prometheus.result(ALERTS["GeoStreamServerDown"].promql)
    ns3 = fleet.servers["ns3"]
    assert ns3.stopped_cleanly() is None
    down = firing(fleet, "GeoStreamServerDown")
    assert [r["metric"]["instance"] for r in down] == [f"127.0.0.1:{ns3.http_port}"]
