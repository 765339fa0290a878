"""The prober's round trips as a weak latency signal: a real server probes real
loopback endpoints (the farm), and its passing probes' round trips appear under
the `probes` key for the regions of the pools the probed values belong to; the
latency rule then answers from them, having no client data."""

from __future__ import annotations

import pathlib

from tests.health.farm import Farm
from tests.health.zone import REGIONS
from tests.support.harness import StartServer, free_port, wait_for
from tests.support.zones import http_check, zone_text

RECORDS = """\
www:
  type: A
  ttl: 30
  routing:
    pools:
      us: {region: us-east-1, values: [{value: 127.0.0.2, healthcheck: web}]}
      eu: {region: eu-central-1, values: [{value: 127.0.0.4, healthcheck: web}]}
    rules:
      - latency: [us, eu]
        min_samples: 1
"""


def test_probe_round_trips_are_measurements_of_last_resort(
        tmp_path: pathlib.Path, endpoints: Farm, start_server: StartServer) -> None:
    port = free_port("127.0.0.2", "127.0.0.4")
    for host in ("127.0.0.2", "127.0.0.4"):
        endpoints.endpoint(host, port)
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(zone_text(
        RECORDS, regions=REGIONS,
        healthchecks={"web": http_check(port, interval="1s", timeout="500ms")}))
    server = start_server(tmp_path / "srv", zones=zones)

    def probes() -> dict[str, float]:
        _, known = server.http_json("/v1/latency?client=EU")
        rows = {m["key"]: m["regions"] for m in known["measurements"]}.get("probes", [])
        return {r["region"]: r["rtt_ms"] for r in rows}

    assert wait_for(lambda: set(probes()) == {"us-east-1", "eu-central-1"}, 25.0,
                    step=0.5) is not None, server.log()
    got = probes()
    assert all(0 < ms < 2000 for ms in got.values()), got
    metrics = server.metrics()
    assert 'geostream_latency_samples_total{source="probe"}' in metrics
    _, result = server.http_json("/v1/explain?name=www.example.com&type=A&client=127.0.0.1")
    (step,) = [s for s in result["routing"][0]["steps"] if s.get("kind") == "latency"]
    assert step["latency"]["key_used"] == "probes"
    faster = min(got, key=lambda region: got[region])
    assert result["routing"][0]["pool"] == {"us-east-1": "us", "eu-central-1": "eu"}[faster]
