"""End to end: the real `geostream-dns serve` process, real endpoints, DNS over UDP.

The zone's pool values are 127.0.0.2-4 with an http check (interval 1 s,
fall 2, rise 2) on a port where the farm's endpoints listen (conftest.py);
the server runs with GEOSTREAM_API_TOKEN set and its own --state-dir.
Failover and recovery are read in DNS answers (dnspython over UDP), drains go
through the `geostream-dns drain|undrain` CLI, state through /v1/health,
/v1/regions and /metrics. Each server is stopped by its PID with SIGTERM.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import dns.exception
import dns.message
import dns.query
import pytest

from tests.health.conftest import (
    Endpoint,
    Farm,
    common_port,
    free_udp_tcp_port,
    wait_until,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin" / "geostream-dns"
TOKEN = "s3cret-health-token"
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
FAILOVER_LIMIT = 10.0
US = ("127.0.0.2", "127.0.0.3")
EU = "127.0.0.4"

ZONE = """\
zone: example.com.
ttl: 300
soa: {{primary: ns1.example.com., email: hostmaster@example.com, refresh: 7200,
      retry: 900, expire: 1209600, negative_ttl: 300}}
nameservers: [ns1.example.com.]
regions:
  us-east-1: {{lat: 38.9, lon: -77.4}}
  eu-central-1: {{lat: 50.1, lon: 8.7}}
healthchecks:
  web:
    protocol: http
    port: {port}
    path: /healthz
    host: www.example.com
    expect: {{status: [200], body_contains: ok}}
    interval: 1s
    timeout: 500ms
    rise: 2
    fall: 2
records:
  ns1: {{type: A, value: 192.0.2.53}}
  www:
    type: A
    ttl: 60
    values: [192.0.2.10]
    routing:
      pools:
        us:
          region: us-east-1
          answer: all
          values: [{{value: 127.0.0.2, healthcheck: web}}, {{value: 127.0.0.3, healthcheck: web}}]
          fallback: eu
        eu:
          region: eu-central-1
          answer: all
          values: [{{value: 127.0.0.4, healthcheck: web}}]
      rules:
        - pool: us
"""


# -- the server process -----------------------------------------------------------------


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    dns_port: int | None
    http_port: int
    log_path: pathlib.Path
    log_file: IO[bytes]
    exit_code: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == name:
                out.append(event)
        return out

    def stop(self) -> int | None:
        """SIGTERM this PID; the exit code (None: ignored SIGTERM and was killed)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
                self.exit_code = None
        else:
            self.exit_code = self.process.returncode
        self.log_file.close()
        return self.exit_code

    # -- clients --

    def answer(self, name: str = "www.example.com.") -> set[str]:
        assert self.dns_port is not None
        query = dns.message.make_query(name, "A")
        reply = dns.query.udp(query, "127.0.0.1", port=self.dns_port, timeout=2.0)
        return {rd.to_text() for rrset in reply.answer for rd in rrset}

    def get(self, path: str) -> tuple[int, Any]:
        return http_call("GET", self.http_port, path)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics",
                                    timeout=5) as resp:
            return str(resp.read().decode())


def http_call(method: str, port: int, path: str, token: str | None = None
              ) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode(errors="replace")


def clean_env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("GEOSTREAM_")}
    env["LOG_LEVEL"] = "info"
    if token is not None:
        env["GEOSTREAM_API_TOKEN"] = token
    return env


def launch(base: pathlib.Path, zones: pathlib.Path, *, token: str | None = TOKEN,
           probe_only: bool = False, listen_port: int | None = None,
           extra: tuple[str, ...] = ()) -> Serve:
    """Start `serve` and wait until /ready says 200 (and DNS answers, if any)."""
    base.mkdir(parents=True, exist_ok=True)
    dns_port = listen_port or free_udp_tcp_port()
    http_port = free_udp_tcp_port()
    while http_port == dns_port:
        http_port = free_udp_tcp_port()
    cmd = [str(BIN), "serve", "--zones", str(zones), "--state-dir", str(base / "state"),
           "--listen", f"127.0.0.1:{dns_port}", "--http", f"127.0.0.1:{http_port}"]
    if probe_only:
        cmd.append("--probe-only")
    cmd += extra
    log_path = base / f"server-{time.monotonic_ns()}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=clean_env(token), cwd=base)
    srv = Serve(process, None if probe_only else dns_port, http_port, log_path, log_file)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert process.poll() is None, f"serve exited early:\n{srv.log()}"
            assert time.monotonic() < deadline, f"not ready in {READY_TIMEOUT} s:\n{srv.log()}"
            try:
                if srv.get("/ready")[0] == 200:
                    if probe_only:
                        break
                    srv.answer("ns1.example.com.")
                    break
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.05)
    except BaseException:
        srv.stop()
        raise
    return srv


def cli(*args: str, token: str | None = None, http_env: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = clean_env(token)
    if http_env is not None:
        env["GEOSTREAM_HTTP"] = http_env
    return subprocess.run([str(BIN), *args], env=env, capture_output=True,
                          text=True, timeout=20, stdin=subprocess.DEVNULL)


# -- fixtures ------------------------------------------------------------------------


@dataclass
class Site:
    base: pathlib.Path
    zones: pathlib.Path
    port: int
    web: dict[str, Endpoint]


@pytest.fixture
def site(tmp_path: pathlib.Path, endpoints: Farm) -> Site:
    port = common_port([*US, EU])
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(ZONE.format(port=port))
    web = {host: endpoints.endpoint(host, port) for host in (*US, EU)}
    return Site(tmp_path, zones, port, web)


@pytest.fixture
def start(site: Site) -> Iterator[Callable[..., Serve]]:
    """Start servers for a test; each must exit 0 on SIGTERM within STOP_TIMEOUT."""
    started: list[Serve] = []

    def _start(**kwargs: Any) -> Serve:
        srv = launch(site.base / "srv", site.zones, **kwargs)
        started.append(srv)
        return srv

    yield _start
    codes = [(srv.stop(), srv) for srv in started]
    for code, srv in codes:
        assert code == 0, f"serve exited with {code}:\n{srv.log()[-3000:]}"


def bound_sockets(pid: int) -> set[tuple[str, int]]:
    """(protocol, local port) of every listening TCP and every UDP socket of `pid`."""
    inodes = set()
    fd_dir = pathlib.Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        lines = pathlib.Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes:
                continue
            if proto.startswith("tcp") and state != "0A":  # LISTEN
                continue
            out.add((proto.rstrip("6"), int(local.rpartition(":")[2], 16)))
    return out


def all_probed(srv: Serve, at_least: int = 1) -> bool:
    _, body = srv.get("/v1/health")
    return bool(body["targets"]) and all(t["checks"] >= at_least for t in body["targets"])


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text, or None when absent."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return None


# -- failover ---------------------------------------------------------------------------


def test_failover_and_recovery_in_dns_answers(site: Site,
                                              start: Callable[..., Serve]) -> None:
    srv = start()
    assert srv.answer() == set(US)
    wait_until(lambda: all_probed(srv, 2), 5.0)
    assert srv.answer() == set(US)

    stopped = time.monotonic()
    site.web["127.0.0.3"].stop()
    failover = wait_until(lambda: srv.answer() == {"127.0.0.2"}, FAILOVER_LIMIT, 0.05)
    _, health = srv.get("/v1/health")
    victim = next(t for t in health["targets"] if t["target"] == "127.0.0.3")
    assert victim["state"] == "down"
    assert victim["last_result"]["reason"] == "connection refused"
    assert victim["consecutive_failures"] >= 2
    # never answered it again while down
    for _ in range(5):
        assert srv.answer() == {"127.0.0.2"}

    text = srv.metrics()
    up = {"zone": "example.com.", "check": "web", "target": "127.0.0.3"}
    assert metric(text, "geostream_health_target_up", **up) == 0
    assert metric(text, "geostream_health_target_up", **{**up, "target": "127.0.0.2"}) == 1
    assert metric(text, "geostream_health_transitions_total", **up, to="down") == 1

    restarted = time.monotonic()
    site.web["127.0.0.3"].start()
    recovery = wait_until(lambda: srv.answer() == set(US), FAILOVER_LIMIT, 0.05)
    first_pass = site.web["127.0.0.3"].seen_since(restarted)[0].at
    after_first_pass = time.monotonic() - first_pass
    text = srv.metrics()
    assert metric(text, "geostream_health_target_up", **up) == 1
    assert metric(text, "geostream_health_transitions_total", **up, to="up") == 1

    changes = srv.events("health.changed")
    assert [(e["target"], e["old"], e["new"]) for e in changes] == [
        ("127.0.0.3", "up", "down"), ("127.0.0.3", "down", "up")]
    assert changes[0]["reason"] == "connection refused"
    print(f"\nserve: failover {failover:.2f} s after the stop, recovery {recovery:.2f} s "
          f"after the restart ({after_first_pass:.2f} s after the first passing probe; "
          f"down for {time.monotonic() - stopped:.2f} s)")
    # SPEC §5 promises interval * fall + 1 s and interval * rise + 1 s (3 s here);
    # the suite asserts a generous bound so a loaded CI machine is not flaky, and
    # `make failover-drill` reports the real figures.
    assert failover <= FAILOVER_LIMIT
    assert after_first_pass <= FAILOVER_LIMIT


def test_v1_health_lists_every_target(site: Site, start: Callable[..., Serve]) -> None:
    site.web[EU].status = 503
    srv = start()
    wait_until(lambda: all_probed(srv, 2), 6.0)
    # (the positive control for the probe-only test's socket check)
    assert bound_sockets(srv.process.pid) >= {
        ("udp", srv.dns_port), ("tcp", srv.dns_port), ("tcp", srv.http_port)}
    status, body = srv.get("/v1/health")
    assert status == 200
    assert body["prober"] is True
    assert body["drained_regions"] == []
    by_target = {t["target"]: t for t in body["targets"]}
    assert set(by_target) == {*US, EU}
    for target, entry in by_target.items():
        assert entry["zone"] == "example.com."
        assert entry["check"] == "web"
        assert (entry["protocol"], entry["port"]) == ("http", site.port)
        assert entry["state"] in ("up", "down")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["since"])
        last = entry["last_result"]
        assert set(last) >= {"ok", "reason", "at"}
        assert isinstance(entry["last_latency_s"], float) and 0 <= entry["last_latency_s"] < 0.5
        assert entry["consecutive_passes"] + entry["consecutive_failures"] >= 2
        assert entry["checks"] >= 2
        assert entry["breaker_open"] is False
        assert (entry["interval_s"], entry["rise"], entry["fall"]) == (1.0, 2, 2), target
    for target in US:
        entry = by_target[target]
        assert entry["state"] == "up"
        assert entry["last_result"]["ok"] is True
        assert entry["last_result"]["reason"] == "HTTP 200, body has 'ok'"
        assert entry["consecutive_failures"] == 0
    eu = by_target[EU]
    assert eu["state"] == "down"
    assert eu["last_result"]["ok"] is False
    assert eu["last_result"]["reason"] == "HTTP 503, expected 200"
    assert eu["consecutive_passes"] == 0
    assert eu["since"] >= by_target["127.0.0.2"]["since"]


# -- drain -------------------------------------------------------------------------------


def test_drain_and_undrain_through_the_cli_and_across_a_restart(
        site: Site, start: Callable[..., Serve]) -> None:
    srv = start()
    http = f"127.0.0.1:{srv.http_port}"
    assert srv.answer() == set(US)

    done = cli("drain", "us-east-1", "--http", http, token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "region us-east-1: drained"
    assert srv.answer() == {EU}, "a drain reaches the very next answer"
    _, regions = srv.get("/v1/regions")
    by_name = {r["region"]: r for r in regions["regions"]}
    assert set(by_name) == {"us-east-1", "eu-central-1"}
    assert by_name["us-east-1"]["drained"] is True
    assert by_name["us-east-1"]["drained_since"]
    assert by_name["us-east-1"]["zones"] == ["example.com."]
    assert by_name["eu-central-1"]["drained"] is False
    text = srv.metrics()
    assert metric(text, "geostream_region_drained", region="us-east-1") == 1
    assert metric(text, "geostream_region_drained", region="eu-central-1") in (None, 0)
    again = cli("drain", "us-east-1", "--http", http, token=TOKEN)
    assert again.returncode == 0 and "(already)" in again.stdout
    # the prober still sees the drained values up: the drain is an operator's word
    _, health = srv.get("/v1/health")
    assert health["drained_regions"] == ["us-east-1"]

    # a restart on the same --state-dir keeps the drain from the first answer on
    assert srv.stop() == 0
    srv = start()
    assert srv.answer() == {EU}
    _, regions = srv.get("/v1/regions")
    assert {r["region"]: r["drained"] for r in regions["regions"]} == {
        "us-east-1": True, "eu-central-1": False}

    # this time the endpoint comes from GEOSTREAM_HTTP
    done = cli("undrain", "us-east-1", token=TOKEN, http_env=f"127.0.0.1:{srv.http_port}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "region us-east-1: in service"
    assert srv.answer() == set(US)
    _, regions = srv.get("/v1/regions")
    assert all(r["drained"] is False for r in regions["regions"])
    assert metric(srv.metrics(), "geostream_region_drained", region="us-east-1") in (None, 0)
    assert [e["region"] for e in srv.events("region.undrained")] == ["us-east-1"]


def test_drain_refusals(site: Site, start: Callable[..., Serve]) -> None:
    srv = start()
    http = f"127.0.0.1:{srv.http_port}"

    no_token = cli("drain", "us-east-1", "--http", http)
    assert no_token.returncode == 1
    assert "401" in no_token.stderr and "token" in no_token.stderr, no_token.stderr
    wrong = cli("drain", "us-east-1", "--http", http, "--token", "nope")
    assert wrong.returncode == 1 and "401" in wrong.stderr

    unknown = cli("drain", "mars-north-1", "--http", http, token=TOKEN)
    assert unknown.returncode == 1
    assert "404" in unknown.stderr and "unknown region" in unknown.stderr, unknown.stderr

    status, body = http_call("POST", srv.http_port, "/v1/regions/us-east-1/drain", "nope")
    assert status == 401 and "error" in body
    status, body = http_call("DELETE", srv.http_port, "/v1/regions/mars-north-1/drain", TOKEN)
    assert status == 404 and body["error"] == "unknown region"

    unreachable = cli("drain", "us-east-1", "--http", f"127.0.0.1:{free_udp_tcp_port()}",
                      token=TOKEN)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr

    # nothing of that changed anything
    assert srv.answer() == set(US)
    _, regions = srv.get("/v1/regions")
    assert all(r["drained"] is False for r in regions["regions"])


# -- probe-only, read-only ------------------------------------------------------------


def test_probe_only_without_a_token_probes_and_is_read_only(
        site: Site, start: Callable[..., Serve]) -> None:
    listen = free_udp_tcp_port()
    srv = start(token=None, probe_only=True, listen_port=listen)
    wait_until(lambda: all_probed(srv), 5.0)
    _, body = srv.get("/v1/health")
    assert body["prober"] is True
    assert {t["target"]: t["state"] for t in body["targets"]} == {
        "127.0.0.2": "up", "127.0.0.3": "up", "127.0.0.4": "up"}
    assert site.web["127.0.0.2"].requests, "the prober really probes"

    # no DNS listener, not even on the --listen given: the process holds one
    # listening socket, the HTTP endpoint's, and no UDP socket at all
    assert bound_sockets(srv.process.pid) == {("tcp", srv.http_port)}
    assert srv.events("listener.started") == []
    query = dns.message.make_query("www.example.com.", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, "127.0.0.1", port=listen, timeout=0.5)

    # without GEOSTREAM_API_TOKEN the API is read-only: 403, whatever the token
    status, body = http_call("POST", srv.http_port, "/v1/regions/us-east-1/drain", TOKEN)
    assert status == 403
    assert "GEOSTREAM_API_TOKEN" in body["error"]
    refused = cli("drain", "us-east-1", "--http", f"127.0.0.1:{srv.http_port}", token=TOKEN)
    assert refused.returncode == 1 and "403" in refused.stderr
    _, regions = srv.get("/v1/regions")
    assert all(r["drained"] is False for r in regions["regions"])

    # and it still fails over: /v1/health follows the endpoints
    site.web[EU].stop()
    wait_until(lambda: any(t["target"] == EU and t["state"] == "down"
                           for t in srv.get("/v1/health")[1]["targets"]), FAILOVER_LIMIT)
    assert metric(srv.metrics(), "geostream_health_target_up", zone="example.com.",
                  check="web", target=EU) == 0


def test_no_probe_counts_every_value_up_but_still_obeys_drains(
        site: Site, start: Callable[..., Serve]) -> None:
    site.web["127.0.0.3"].stop()
    srv = start(extra=("--no-probe",))
    time.sleep(2.5)  # long enough for a prober (interval 1 s, fall 2) to act
    assert srv.answer() == set(US)
    assert site.web["127.0.0.2"].requests == []  # nothing probes
    _, body = srv.get("/v1/health")
    # every target is listed as routing sees it (up), with nothing probed here
    assert body["prober"] is False and body["targets"]
    assert all(t["state"] == "up" and "last_result" not in t for t in body["targets"])
    done = cli("drain", "us-east-1", "--http", f"127.0.0.1:{srv.http_port}", token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert srv.answer() == {EU}


def test_workers_share_one_prober_and_answer_alike(site: Site,
                                                   start: Callable[..., Serve]) -> None:
    """With --workers 2 only worker 0 probes (each target about once per interval),
    and the other worker follows its down-set: every answer, whichever worker
    the kernel hands the query to, drops a failed value."""
    srv = start(extra=("--workers", "2"))
    wait_until(lambda: all_probed(srv, 2), 5.0)
    since = time.monotonic()
    time.sleep(3.0)
    probes = len(site.web["127.0.0.2"].seen_since(since))
    assert 2 <= probes <= 4, f"{probes} probes in 3 s at a 1 s interval: one prober"

    site.web["127.0.0.3"].stop()
    # Many queries, each from a new source port, so both workers answer some.
    wait_until(lambda: all(srv.answer() == {"127.0.0.2"} for _ in range(20)),
               FAILOVER_LIMIT, 0.05)
    site.web["127.0.0.3"].start()
    wait_until(lambda: all(srv.answer() == set(US) for _ in range(20)), FAILOVER_LIMIT, 0.05)
