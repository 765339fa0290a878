"""`geostream-dns explain` (CLI, text and JSON) and `GET /v1/explain` on a running server.

The GeoIP database is the deterministic test one (tests/support/geoip.py),
never the bundled GeoLite2 file.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.harness import SAMPLE_ZONES, ServerProcess, run_cli, running


def explain(city_mmdb: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("explain", *args, "--zones", SAMPLE_ZONES, "--geoip", city_mmdb)


def test_text_for_a_geo_match(city_mmdb: pathlib.Path) -> None:
    out = explain(city_mmdb, "www.example.com", "A", "--client", "198.51.100.1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "location: EU-DE-HE at 50.10, 8.70, GeoIP network /25" in text
    assert "rule 0 (line 80) geos ['EU-DE', 'EU-FR']: match: client is in ['EU-DE']" in text
    assert "pool eu-central-1 in eu-central-1: healthy" in text
    assert "=> pool eu-central-1 (all): 198.51.100.10, 198.51.100.11" in text
    assert "www.example.com. 60 A 198.51.100.10" in text
    assert "ECS scope" not in text  # no ECS asked


def test_text_for_nearest_shows_distances_and_bias(city_mmdb: pathlib.Path) -> None:
    text = explain(city_mmdb, "www.example.com", "A", "--client", "203.0.113.7").stdout
    assert "rule 0 (line 80) geos ['EU-DE', 'EU-FR']: no match: client is ['AS', 'AS-SG']" in text
    assert "rule 1 (line 82) subnets" in text and "no match" in text
    assert "rule 2 (line 84) nearest ['us-east-1', 'eu-central-1', 'ap-southeast-1']: match" in text
    # Singapore is 0 km from ap-southeast-1, minus the -500 km bias.
    assert "ap-southeast-1: -500 km (healthy)" in text
    lines = text.splitlines()
    order = [ln.split(":")[0].strip() for ln in lines if " km (" in ln]
    assert order == ["ap-southeast-1", "eu-central-1", "us-east-1"]
    assert "=> pool ap-southeast-1 (multivalue): 203.0.113.10, 203.0.113.11" in text


def test_json_for_an_ecs_query_through_a_cname(city_mmdb: pathlib.Path) -> None:
    out = explain(city_mmdb, "api.example.com", "A", "--client", "192.0.2.1",
                  "--ecs", "198.51.100.128/25", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["located_by"] == "ECS 198.51.100.128/25"
    assert result["location"]["codes"] == ["EU", "EU-FR", "EU-FR-IDF"]
    assert result["rcode"] == "NOERROR"
    assert [r["type"] for r in result["answer"]] == ["CNAME", "A", "A"]
    routing = result["routing"][0]
    assert routing["record"] == "www.example.com." and routing["pool"] == "eu-central-1"
    assert routing["steps"][0]["matched"] is True
    assert result["ecs_scope"] == 25


def test_unknown_client_never_matches_geos(city_mmdb: pathlib.Path) -> None:
    result = json.loads(explain(city_mmdb, "www.example.com", "A", "--client", "10.1.2.3",
                                "--json").stdout)
    assert result["location"]["known"] is False
    steps = result["routing"][0]["steps"]
    assert steps[0]["matched"] is False and steps[0]["why"] == "location unknown"
    assert steps[1]["kind"] == "subnets" and steps[1]["matched"] is True
    assert result["routing"][0]["pool"] == "us-east-1"


def test_static_and_refused_names(city_mmdb: pathlib.Path) -> None:
    static = json.loads(explain(city_mmdb, "static.example.com", "A", "--client", "192.0.2.1",
                                "--json").stdout)
    assert static["routing"] == [] and len(static["answer"]) == 2
    refused = explain(city_mmdb, "www.example.net", "A", "--client", "192.0.2.1")
    assert "not in any hosted zone: REFUSED" in refused.stdout
    nx = json.loads(explain(city_mmdb, "nope.example.com", "A", "--client", "192.0.2.1",
                            "--json").stdout)
    assert nx["rcode"] == "NXDOMAIN" and nx["authority"][0]["type"] == "SOA"


def test_bad_input_is_a_clear_error(city_mmdb: pathlib.Path) -> None:
    out = explain(city_mmdb, "www.example.com", "A", "--client", "not-an-ip")
    assert out.returncode == 2
    assert "client 'not-an-ip' is not an IP address" in out.stderr


@pytest.fixture(scope="module")
def server(city_mmdb: pathlib.Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running(tmp_path_factory.mktemp("explain"), zones=SAMPLE_ZONES, geoip=city_mmdb,
                 args=["--no-probe"]) as srv:
        yield srv


def test_http_explain_matches_the_cli(server: ServerProcess, city_mmdb: pathlib.Path) -> None:
    status, body = server.http_json("/v1/explain?name=www.example.com&type=A&client=198.51.100.1")
    assert status == 200
    cli = json.loads(explain(city_mmdb, "www.example.com", "A", "--client", "198.51.100.1",
                             "--json").stdout)
    for key in ("query", "location", "zone", "rcode", "answer", "routing"):
        assert body[key] == cli[key], key


def test_http_explain_with_ecs_and_errors(server: ServerProcess) -> None:
    status, body = server.http_json("/v1/explain?name=www.example.com&type=A&client=192.0.2.1"
                                    "&ecs=2001:db8:2::/48")
    # The subnets rule 2001:db8::/32 picks the pool, but the geos rule before it
    # was tried on the GeoIP /48 (2001:db8:1::/48 is in Germany): scope /48.
    assert status == 200 and body["ecs_scope"] == 48
    assert body["routing"][0]["pool"] == "us-east-1"
    status, body = server.http_json("/v1/explain?name=www.example.com&type=A")
    assert status == 400 and body["error"] == "missing query parameter 'client'"
    status, body = server.http_json("/v1/explain?name=www.example.com&type=A&client=x")
    assert status == 400 and "not an IP address" in str(body["error"])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_an_ipv4_mapped_client_is_located_as_ipv4(city_mmdb: pathlib.Path) -> None:
    mapped = json.loads(explain(city_mmdb, "www.example.com", "A", "--client",
                                "::ffff:198.51.100.1", "--json").stdout)
    plain = json.loads(explain(city_mmdb, "www.example.com", "A", "--client", "198.51.100.1",
                               "--json").stdout)
    assert mapped["location"] == plain["location"]
    assert mapped["location"]["network_prefix"] == 25


def test_an_external_alias_target_unresolved_then_resolved_once(
        city_mmdb: pathlib.Path, tmp_path: pathlib.Path) -> None:
    from tests.support.zones import write_zone

    front = tmp_path / "front"
    write_zone(front, "'@': {type: ALIAS, value: edge.cdn.test.}\n")
    upstream = tmp_path / "up" / "zones"
    write_zone(upstream, "edge: {type: A, ttl: 42, value: 127.0.0.11}\n", "cdn.test.")

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli("explain", "example.com", "A", "--client", "192.0.2.1", "--zones",
                       front, "--geoip", city_mmdb, *extra)

    out = run()
    assert out.returncode == 0, out.stderr
    assert "ALIAS to edge.cdn.test." in out.stdout
    assert "not resolved (until it is, the ALIAS answers SERVFAIL)" in out.stdout
    assert "answer (SERVFAIL)" in out.stdout
    with running(tmp_path / "up", zones=upstream, geoip=city_mmdb, http=False,
                 args=["--no-probe"]) as server:
        out = run("--alias-resolver", f"127.0.0.1:{server.port}")
        assert out.returncode == 0, out.stderr
        assert "A: 127.0.0.11 (TTL 42)" in out.stdout
        assert "example.com. 42 A 127.0.0.11" in out.stdout
        result = json.loads(run("--alias-resolver", f"127.0.0.1:{server.port}",
                                "--json").stdout)
        assert result["alias"]["resolved"] is True
        assert result["alias"]["resolver"]["state"] == "resolved"
