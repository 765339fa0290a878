"""ALIAS targets outside the hosted zones, end to end, against a real authority.

The target's authority is a second GeoStream server on loopback (`upstream`,
authoritative for `cdn.test.`); the server under test (`front`) resolves the
ALIAS targets through it with `--alias-resolver`. The tests run in file
order: the last one stops the upstream.
"""

from __future__ import annotations

import pathlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.rcode
import dns.rdatatype
import pytest

from tests.support.harness import ServerProcess, free_port, running, wait_for
from tests.support.zones import write_zone

NO_PROBE = ["--no-probe"]
EDGE_TTL = 2
STEADY_TTL = 600

UPSTREAM = f"""\
edge:
  - {{type: A, ttl: {EDGE_TTL}, values: [127.0.0.11, 127.0.0.12]}}
  - {{type: AAAA, ttl: {EDGE_TTL}, value: "2001:db8::11"}}
steady: {{type: A, ttl: {STEADY_TTL}, value: 127.0.0.21}}
v4only: {{type: A, ttl: 30, value: 127.0.0.31}}
chain: {{type: CNAME, ttl: 1, value: edge.cdn.test.}}
"""

FRONT = """\
'@':
  - {type: ALIAS, ttl: 3600, value: edge.cdn.test.}
  - {type: MX, values: [{preference: 10, exchange: mail.example.com.}]}
steady: {type: ALIAS, value: steady.cdn.test.}
v4: {type: ALIAS, value: v4only.cdn.test.}
gone: {type: ALIAS, value: nothing.cdn.test.}
chained: {type: ALIAS, value: chain.cdn.test.}
api: {type: CNAME, value: example.com.}
'*.w': {type: ALIAS, value: edge.cdn.test.}
mail: {type: A, value: 192.0.2.25}
"""


@dataclass
class Pair:
    upstream: ServerProcess
    front: ServerProcess
    upstream_zones: pathlib.Path


def addresses(server: ServerProcess, name: str, rdtype: str = "A") -> tuple[int, set[str], int]:
    """(rcode, the answer's addresses, the answer's TTL or -1)."""
    reply = server.query(name, rdtype, timeout=3)
    want = dns.rdatatype.from_text(rdtype)
    rrsets = [r for r in reply.answer if r.rdtype == want]
    return (reply.rcode(), {r.to_text() for rrset in rrsets for r in rrset},
            rrsets[0].ttl if rrsets else -1)


def upstream_queries(server: ServerProcess) -> int:
    """Queries the upstream has answered, from its metrics."""
    total = 0.0
    for line in server.metrics().splitlines():
        if line.startswith("geostream_dns_queries_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def metric(server: ServerProcess, pattern: str) -> float:
    for line in server.metrics().splitlines():
        if re.fullmatch(pattern, line.rsplit(" ", 1)[0]):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {pattern}")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, city_mmdb: pathlib.Path) -> Iterator[Pair]:
    base = tmp_path_factory.mktemp("alias")
    up_zones = base / "up" / "zones"
    write_zone(up_zones, UPSTREAM, "cdn.test.", negative_ttl=30)
    front_zones = base / "front" / "zones"
    write_zone(front_zones, FRONT)
    with running(base / "up", zones=up_zones, geoip=city_mmdb, args=NO_PROBE) as upstream:
        with running(base / "front", zones=front_zones, geoip=city_mmdb,
                     args=[*NO_PROBE, "--alias-resolver", f"127.0.0.1:{upstream.port}",
                           "--alias-refresh-min", "1"]) as front:
            assert wait_for(lambda: addresses(front, "example.com")[0] == dns.rcode.NOERROR,
                            15), front.log()
            yield Pair(upstream, front, up_zones)


def test_apex_alias_answers_the_external_targets_records_with_its_ttl(pair: Pair) -> None:
    rcode, got, ttl = addresses(pair.front, "example.com")
    assert rcode == dns.rcode.NOERROR
    assert got == {"127.0.0.11", "127.0.0.12"}
    assert ttl == EDGE_TTL  # the target's TTL, not the ALIAS record's 3600
    rcode, got, ttl = addresses(pair.front, "example.com", "AAAA")
    assert (rcode, got, ttl) == (dns.rcode.NOERROR, {"2001:db8::11"}, EDGE_TTL)
    assert addresses(pair.front, "steady.example.com")[1:] == ({"127.0.0.21"}, STEADY_TTL)


def test_a_cname_chain_at_the_target_gives_the_smallest_ttl(pair: Pair) -> None:
    rcode, got, ttl = addresses(pair.front, "chained.example.com")
    assert (rcode, got, ttl) == (dns.rcode.NOERROR, {"127.0.0.11", "127.0.0.12"}, 1)


def test_a_target_without_a_type_or_without_records_is_nodata(pair: Pair) -> None:
    assert addresses(pair.front, "v4.example.com")[:2] == (dns.rcode.NOERROR, {"127.0.0.31"})
    reply = pair.front.query("v4.example.com", "AAAA", timeout=3)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]
    for rdtype in ("A", "AAAA"):
        reply = pair.front.query("gone.example.com", rdtype, timeout=3)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer, rdtype


def test_cname_chains_and_wildcards_reach_the_external_answer(pair: Pair) -> None:
    reply = pair.front.query("api.example.com", "A", timeout=3)
    assert [(r.name.to_text(), r.rdtype) for r in reply.answer] == [
        ("api.example.com.", dns.rdatatype.CNAME), ("example.com.", dns.rdatatype.A)]
    assert addresses(pair.front, "x.w.example.com")[1] == {"127.0.0.11", "127.0.0.12"}
    assert addresses(pair.front, "example.com", "MX")[0] == dns.rcode.NOERROR


def test_explain_shows_the_resolved_target(pair: Pair) -> None:
    status, body = pair.front.http_json("/v1/explain?name=example.com&type=A&client=127.0.0.1")
    assert status == 200, body
    alias = body["alias"]
    assert alias["target"] == "edge.cdn.test." and alias["resolved"] is True
    assert sorted(alias["a"]["values"]) == ["127.0.0.11", "127.0.0.12"]
    assert alias["a"]["ttl"] == EDGE_TTL
    assert alias["resolver"]["state"] == "resolved"
    assert alias["resolver"]["resolver"] == f"127.0.0.1:{pair.upstream.port}"


def test_queries_never_reach_the_targets_authority(pair: Pair) -> None:
    before = upstream_queries(pair.upstream)
    started = time.monotonic()
    for i in range(300):  # bounded: 300 queries, each a cached answer
        name = "example.com" if i % 2 else f"q{i}.w.example.com"  # pre-rendered, and slow path
        assert addresses(pair.front, name)[0] == dns.rcode.NOERROR
    elapsed = time.monotonic() - started
    asked = upstream_queries(pair.upstream) - before
    # Only the background refreshes reach the upstream: a few per TTL for each target,
    # A and AAAA (the metric counts every query the upstream answered, these reads too).
    refreshes = (elapsed / EDGE_TTL + 2) * 2 * 5
    assert asked < refreshes, (asked, elapsed)


def test_the_targets_ttl_is_honoured(pair: Pair) -> None:
    write_zone(pair.upstream_zones,
               UPSTREAM.replace("127.0.0.11, 127.0.0.12", "127.0.0.13")
               .replace("127.0.0.21", "127.0.0.22"), "cdn.test.", negative_ttl=30)
    # The upstream reloads within a second; the short-TTL target is asked again when
    # its TTL runs out.
    took = wait_for(lambda: addresses(pair.front, "example.com")[1] == {"127.0.0.13"}, 15)
    assert took is not None, pair.front.log()
    # The long-TTL target is not asked before its TTL runs out: still the old answer.
    assert addresses(pair.front, "steady.example.com")[1] == {"127.0.0.21"}
    assert metric(pair.front, "geostream_alias_updates_total") >= 2


def test_the_last_good_answer_is_kept_when_the_resolver_fails(pair: Pair) -> None:
    assert pair.upstream.stop() == 0
    failed_before = metric(pair.front, 'geostream_alias_resolutions_total{result="failed"}')
    deadline = time.monotonic() + 3 * EDGE_TTL + 3
    asked = 0
    while time.monotonic() < deadline:  # bounded in time, and by the loop below
        for name in ("example.com", f"new{asked}.w.example.com", "api.example.com"):
            started = time.monotonic()
            rcode, got, _ = addresses(pair.front, name)
            # answered from the cache: no wait for the (stopped) upstream's timeout
            assert time.monotonic() - started < 1.5
            assert (rcode, got) == (dns.rcode.NOERROR, {"127.0.0.13"}), name
            asked += 1
        time.sleep(0.1)
    assert asked > 20
    assert metric(pair.front, 'geostream_alias_resolutions_total{result="failed"}') > failed_before
    assert metric(pair.front, 'geostream_alias_targets{state="stale"}') >= 1
    assert metric(pair.front, "geostream_alias_oldest_answer_age_seconds") > EDGE_TTL
    assert any(e.get("event") == "alias.resolve_failed" and e.get("kept_last_good")
               for e in pair.front.log_events())
    status, body = pair.front.http_json("/v1/explain?name=example.com&type=A&client=127.0.0.1")
    assert status == 200 and body["alias"]["resolver"]["state"] == "stale"
    assert body["alias"]["resolver"]["last_error"]


def test_servfail_until_the_target_is_first_resolved(tmp_path: pathlib.Path,
                                                     city_mmdb: pathlib.Path) -> None:
    up_zones = tmp_path / "up" / "zones"
    write_zone(up_zones, UPSTREAM, "cdn.test.", negative_ttl=30)
    front_zones = tmp_path / "front" / "zones"
    write_zone(front_zones, FRONT)
    port = free_port()  # the upstream is not running yet
    with running(tmp_path / "front", zones=front_zones, geoip=city_mmdb,
                 args=[*NO_PROBE, "--alias-resolver", f"127.0.0.1:{port}",
                       "--alias-refresh-min", "1"]) as front:
        for name in ("example.com", "api.example.com", "x.w.example.com"):
            assert front.query(name, "A", timeout=3).rcode() == dns.rcode.SERVFAIL, name
        assert addresses(front, "example.com", "MX")[0] == dns.rcode.NOERROR
        assert metric(front, 'geostream_alias_targets{state="pending"}') == 5
        status, body = front.http_json("/v1/explain?name=example.com&type=A&client=127.0.0.1")
        assert status == 200 and body["rcode"] == "SERVFAIL"
        assert body["alias"]["resolved"] is False
        assert body["alias"]["resolver"]["state"] == "pending"
        with running(tmp_path / "up", zones=up_zones, geoip=city_mmdb, args=NO_PROBE,
                     listens=[("127.0.0.1", port)]):
            took = wait_for(lambda: addresses(front, "example.com")[0] == dns.rcode.NOERROR,
                            20)
            assert took is not None, front.log()
            assert addresses(front, "example.com")[1] == {"127.0.0.11", "127.0.0.12"}


ROUTE53 = """\
{"ResourceRecordSets": [
 {"Name": "shop.example.", "Type": "NS", "TTL": 172800,
  "ResourceRecords": [{"Value": "ns-1.awsdns-00.com."}, {"Value": "ns-2.awsdns-00.net."}]},
 {"Name": "shop.example.", "Type": "SOA", "TTL": 900, "ResourceRecords": [
  {"Value": "ns-1.awsdns-00.com. awsdns-hostmaster.amazon.com. 7 7200 900 1209600 86400"}]},
 {"Name": "shop.example", "Type": "A", "AliasTarget": {"HostedZoneId": "Z2FDTNDATAQYW2",
  "DNSName": "edge.cdn.test", "EvaluateTargetHealth": false}},
 {"Name": "shop.example", "Type": "AAAA", "AliasTarget": {"HostedZoneId": "Z2FDTNDATAQYW2",
  "DNSName": "edge.cdn.test.", "EvaluateTargetHealth": false}}
]}
"""


def test_a_route53_alias_to_a_cdn_imported_then_served(tmp_path: pathlib.Path,
                                                        city_mmdb: pathlib.Path) -> None:
    from tests.support.harness import run_cli

    source = tmp_path / "shop.example.json"
    source.write_text(ROUTE53)
    zones = tmp_path / "front" / "zones"
    zones.mkdir(parents=True)
    out = run_cli("import", "route53", source, "--out", zones)
    assert out.returncode == 0, out.stderr
    up_zones = tmp_path / "up" / "zones"
    write_zone(up_zones, UPSTREAM, "cdn.test.", negative_ttl=30)
    with running(tmp_path / "up", zones=up_zones, geoip=city_mmdb, http=False,
                 args=NO_PROBE) as upstream:
        with running(tmp_path / "front", zones=zones, geoip=city_mmdb, http=False,
                     args=[*NO_PROBE, "--alias-resolver", f"127.0.0.1:{upstream.port}"]) as front:
            assert wait_for(lambda: addresses(front, "shop.example")[0] == dns.rcode.NOERROR,
                            15), front.log()
            assert addresses(front, "shop.example")[1:] == ({"127.0.0.11", "127.0.0.12"},
                                                            EDGE_TTL)
            assert addresses(front, "shop.example", "AAAA")[1:] == ({"2001:db8::11"}, EDGE_TTL)


def test_alias_resolver_off_resolves_nothing(tmp_path: pathlib.Path,
                                             city_mmdb: pathlib.Path) -> None:
    zones = tmp_path / "zones"
    write_zone(zones, FRONT)
    with running(tmp_path, zones=zones, geoip=city_mmdb, args=[
            *NO_PROBE, "--alias-resolver", "off"]) as front:
        assert front.query("example.com", "A", timeout=3).rcode() == dns.rcode.SERVFAIL
        assert addresses(front, "mail.example.com")[1] == {"192.0.2.25"}
        assert front.events("alias.resolver_off")
        assert metric(front, 'geostream_alias_resolutions_total{result="ok"}') == 0
        status, body = front.http_json("/v1/explain?name=example.com&type=A&client=127.0.0.1")
        assert status == 200 and body["alias"]["resolver"]["state"] == "off"
