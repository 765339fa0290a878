"""End to end: the real `geostream-dns serve` process, real endpoints, DNS over UDP.

The zone (tests/health/zone.py) has pool values 127.0.0.2-4 with an http check
(interval 1 s, fall 2, rise 2) on a port where the farm's endpoints listen;
the server runs with GEOSTREAM_API_TOKEN set and its own --state-dir.
Failover and recovery are read in DNS answers (dnspython over UDP), drains go
through the `geostream-dns drain|undrain` CLI, state through /v1/health,
/v1/regions and /metrics. Each server is stopped by its PID with SIGTERM.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.message
import dns.query
import pytest

from tests.health.farm import Endpoint, Farm
from tests.health.zone import EU, US, failover_zone
from tests.support.harness import ServerProcess, StartServer, free_port, run_cli, wait_until

TOKEN = "s3cret-health-token"
FAILOVER_LIMIT = 10.0
WWW = "www.example.com."


def cli(*args: str, token: str | None = None, http_env: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {}
    if token is not None:
        env["GEOSTREAM_API_TOKEN"] = token
    if http_env is not None:
        env["GEOSTREAM_HTTP"] = http_env
    return run_cli(*args, env=env, timeout=20)


# -- fixtures ------------------------------------------------------------------------


@dataclass
class Site:
    base: pathlib.Path
    zones: pathlib.Path
    port: int
    web: dict[str, Endpoint]


@pytest.fixture
def site(tmp_path: pathlib.Path, endpoints: Farm) -> Site:
    port = free_port(*US, EU)
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(failover_zone(port))
    web = {host: endpoints.endpoint(host, port) for host in (*US, EU)}
    return Site(tmp_path, zones, port, web)


@pytest.fixture
def start(site: Site, start_server: StartServer) -> Callable[..., ServerProcess]:
    """Start servers on the site's zones, all in one folder (so one --state-dir).

    `token` is GEOSTREAM_API_TOKEN (None: unset) and `args` more options; each
    server must exit 0 on SIGTERM within STOP_TIMEOUT (see `start_server`).
    """

    def _start(*, token: str | None = TOKEN, args: Sequence[str] = (),
               **options: Any) -> ServerProcess:
        env = {"GEOSTREAM_API_TOKEN": token} if token is not None else {}
        return start_server(site.base / "srv", zones=site.zones, env=env, args=args,
                            **options)

    return _start


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


def all_probed(srv: ServerProcess, at_least: int = 1) -> bool:
    _, body = srv.http_json("/v1/health")
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
                                              start: Callable[..., ServerProcess]) -> None:
    srv = start()
    assert srv.answer(WWW) == set(US)
    wait_until(lambda: all_probed(srv, 2), 5.0)
    assert srv.answer(WWW) == set(US)

    stopped = time.monotonic()
    site.web["127.0.0.3"].stop()
    failover = wait_until(lambda: srv.answer(WWW) == {"127.0.0.2"}, FAILOVER_LIMIT, 0.05)
    _, health = srv.http_json("/v1/health")
    victim = next(t for t in health["targets"] if t["target"] == "127.0.0.3")
    assert victim["state"] == "down"
    assert victim["last_result"]["reason"] == "connection refused"
    assert victim["consecutive_failures"] >= 2
    # never answered it again while down
    for _ in range(5):
        assert srv.answer(WWW) == {"127.0.0.2"}

    text = srv.metrics()
    up = {"zone": "example.com.", "check": "web", "target": "127.0.0.3"}
    assert metric(text, "geostream_health_target_up", **up) == 0
    assert metric(text, "geostream_health_target_up", **{**up, "target": "127.0.0.2"}) == 1
    assert metric(text, "geostream_health_transitions_total", **up, to="down") == 1

    restarted = time.monotonic()
    site.web["127.0.0.3"].start()
    recovery = wait_until(lambda: srv.answer(WWW) == set(US), FAILOVER_LIMIT, 0.05)
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
    # The targets are interval * fall + 1 s to fail over and interval * rise + 1 s to
    # recover (3 s here);
    # the suite asserts a generous bound so a loaded CI machine is not flaky, and
    # `make failover-drill` reports the real figures.
    assert failover <= FAILOVER_LIMIT
    assert after_first_pass <= FAILOVER_LIMIT


def test_v1_health_lists_every_target(site: Site, start: Callable[..., ServerProcess]) -> None:
    site.web[EU].status = 503
    srv = start()
    wait_until(lambda: all_probed(srv, 2), 6.0)
    # (the positive control for the probe-only test's socket check)
    assert bound_sockets(srv.pid) >= {
        ("udp", srv.port), ("tcp", srv.port), ("tcp", srv.http_port)}
    status, body = srv.http_json("/v1/health")
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
        site: Site, start: Callable[..., ServerProcess]) -> None:
    srv = start()
    http = f"127.0.0.1:{srv.http_port}"
    assert srv.answer(WWW) == set(US)

    done = cli("drain", "us-east-1", "--http", http, token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "region us-east-1: drained"
    assert srv.answer(WWW) == {EU}, "a drain reaches the very next answer"
    _, regions = srv.http_json("/v1/regions")
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
    _, health = srv.http_json("/v1/health")
    assert health["drained_regions"] == ["us-east-1"]

    # a restart on the same --state-dir keeps the drain from the first answer on
    assert srv.stop() == 0
    srv = start()
    assert srv.answer(WWW) == {EU}
    _, regions = srv.http_json("/v1/regions")
    assert {r["region"]: r["drained"] for r in regions["regions"]} == {
        "us-east-1": True, "eu-central-1": False}

    # this time the endpoint comes from GEOSTREAM_HTTP
    done = cli("undrain", "us-east-1", token=TOKEN, http_env=f"127.0.0.1:{srv.http_port}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "region us-east-1: in service"
    assert srv.answer(WWW) == set(US)
    _, regions = srv.http_json("/v1/regions")
    assert all(r["drained"] is False for r in regions["regions"])
    assert metric(srv.metrics(), "geostream_region_drained", region="us-east-1") in (None, 0)
    assert [e["region"] for e in srv.events("region.undrained")] == ["us-east-1"]


def test_drain_refusals(site: Site, start: Callable[..., ServerProcess]) -> None:
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

    status, body = srv.http_json("/v1/regions/us-east-1/drain", "POST", token="nope")
    assert status == 401 and "error" in body
    status, body = srv.http_json("/v1/regions/mars-north-1/drain", "DELETE", token=TOKEN)
    assert status == 404 and body["error"] == "unknown region"

    unreachable = cli("drain", "us-east-1", "--http", f"127.0.0.1:{free_port()}",
                      token=TOKEN)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr

    # nothing of that changed anything
    assert srv.answer(WWW) == set(US)
    _, regions = srv.http_json("/v1/regions")
    assert all(r["drained"] is False for r in regions["regions"])


# -- probe-only, read-only ------------------------------------------------------------


def test_probe_only_without_a_token_probes_and_is_read_only(
        site: Site, start: Callable[..., ServerProcess]) -> None:
    listen = free_port()
    srv = start(token=None, args=["--probe-only"], serves_dns=False,
                listens=[("127.0.0.1", listen)])
    wait_until(lambda: all_probed(srv), 5.0)
    _, body = srv.http_json("/v1/health")
    assert body["prober"] is True
    assert {t["target"]: t["state"] for t in body["targets"]} == {
        "127.0.0.2": "up", "127.0.0.3": "up", "127.0.0.4": "up"}
    assert site.web["127.0.0.2"].requests, "the prober really probes"

    # no DNS listener, not even on the --listen given: the process holds one
    # listening socket, the HTTP endpoint's, and no UDP socket at all
    assert bound_sockets(srv.pid) == {("tcp", srv.http_port)}
    assert srv.events("listener.started") == []
    query = dns.message.make_query("www.example.com.", "A")
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(query, "127.0.0.1", port=listen, timeout=0.5)

    # without GEOSTREAM_API_TOKEN the API is read-only: 403, whatever the token
    status, body = srv.http_json("/v1/regions/us-east-1/drain", "POST", token=TOKEN)
    assert status == 403
    assert "GEOSTREAM_API_TOKEN" in body["error"]
    refused = cli("drain", "us-east-1", "--http", f"127.0.0.1:{srv.http_port}", token=TOKEN)
    assert refused.returncode == 1 and "403" in refused.stderr
    _, regions = srv.http_json("/v1/regions")
    assert all(r["drained"] is False for r in regions["regions"])

    # and it still fails over: /v1/health follows the endpoints
    site.web[EU].stop()
    wait_until(lambda: any(t["target"] == EU and t["state"] == "down"
                           for t in srv.http_json("/v1/health")[1]["targets"]), FAILOVER_LIMIT)
    assert metric(srv.metrics(), "geostream_health_target_up", zone="example.com.",
                  check="web", target=EU) == 0


def test_no_probe_counts_every_value_up_but_still_obeys_drains(
        site: Site, start: Callable[..., ServerProcess]) -> None:
    site.web["127.0.0.3"].stop()
    srv = start(args=["--no-probe"])
    time.sleep(2.5)  # long enough for a prober (interval 1 s, fall 2) to act
    assert srv.answer(WWW) == set(US)
    assert site.web["127.0.0.2"].requests == []  # nothing probes
    _, body = srv.http_json("/v1/health")
    # every target is listed as routing sees it (up), with nothing probed here
    assert body["prober"] is False and body["targets"]
    assert all(t["state"] == "up" and "last_result" not in t for t in body["targets"])
    done = cli("drain", "us-east-1", "--http", f"127.0.0.1:{srv.http_port}", token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert srv.answer(WWW) == {EU}


def test_workers_share_one_prober_and_answer_alike(site: Site,
                                                   start: Callable[..., ServerProcess]) -> None:
    """With --workers 2 only worker 0 probes (each target about once per interval),
    and the other worker follows its down-set: every answer, whichever worker
    the kernel hands the query to, drops a failed value."""
    srv = start(args=["--workers", "2"])
    wait_until(lambda: all_probed(srv, 2), 5.0)
    since = time.monotonic()
    time.sleep(3.0)
    probes = len(site.web["127.0.0.2"].seen_since(since))
    assert 2 <= probes <= 4, f"{probes} probes in 3 s at a 1 s interval: one prober"

    site.web["127.0.0.3"].stop()
    # Many queries, each from a new source port, so both workers answer some.
    wait_until(lambda: all(srv.answer(WWW) == {"127.0.0.2"} for _ in range(20)),
               FAILOVER_LIMIT, 0.05)
    site.web["127.0.0.3"].start()
    wait_until(lambda: all(srv.answer(WWW) == set(US) for _ in range(20)), FAILOVER_LIMIT, 0.05)
