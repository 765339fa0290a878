"""The octoDNS provider with the real `octodns-sync` against a running GeoStream server.

The server runs in embedded mode on free loopback ports with an API token; an
octoDNS config in a temporary folder syncs a YamlProvider zone (dynamic records
included) into it, and the answers are checked with dnspython. A second sync
plans no change (what GeoStream hands back is what octoDNS wrote), and a third
applies an edit.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import dns.message
import dns.query
import dns.rdatatype
import pytest
import yaml

from tests.support.harness import ServerProcess, StartServer

TOKEN = "octodns-test-token"
SYNC = pathlib.Path(sys.executable).parent / "octodns-sync"

ZONE = textwrap.dedent("""\
    ---
    '':
      - type: NS
        values: [ns1.example.com., ns2.example.net.]
      - type: MX
        values: [{exchange: mail.example.com., preference: 10}]
      - type: TXT
        values: [v=spf1 -all, some-key=a\\; b=c]
      - type: CAA
        value: {flags: 0, tag: issue, value: ca.example.net}
    ns1: {type: A, value: 192.0.2.53}
    mail: {type: A, ttl: 300, value: 192.0.2.25}
    www:
      type: A
      ttl: 60
      values: [192.0.2.10]
      dynamic:
        pools:
          eu:
            fallback: us
            values: [{value: 198.51.100.10, weight: 2}, {value: 198.51.100.11}]
          us:
            values: [{value: 192.0.2.10}]
        rules:
          - {geos: [EU], subnets: [127.0.0.0/8], pool: eu}
          - pool: us
    _sip._tcp:
      type: SRV
      value: {priority: 10, weight: 20, port: 5060, target: sip.example.com.}
    sip:
      - {type: A, value: 192.0.2.60}
      - type: SSHFP
        value: {algorithm: 4, fingerprint_type: 2,
                fingerprint: 3b6ba6ee8d2ea4e6dcd9ea3e9ef0e6fe5b83b76ea9b5b1a2c8ab3b0d87e11e4f}
    alias: {type: CNAME, value: www.example.com.}
    """)


# What the zone holds before octoDNS manages it: things octoDNS cannot see stay.
BEFORE = textwrap.dedent("""\
    zone: example.com.
    ttl: 3600
    soa: {primary: ns1.example.com., email: hostmaster@example.com, refresh: 7200,
          retry: 900, expire: 1209600, negative_ttl: 300, serial: 2024060101}
    nameservers: [ns1.example.com., ns2.example.net.]
    regions:
      us: {lat: 38.9, lon: -77.4}
      eu: {lat: 50.1, lon: 8.7}
    dnssec: {algorithm: ed25519}
    records:
      ns1: {type: A, value: 192.0.2.53}
      box: {type: HINFO, value: '"PC" "Linux"'}
      near:
        type: A
        routing:
          pools:
            us: {region: us, values: [192.0.2.90]}
            eu: {region: eu, values: [198.51.100.90]}
          rules: [{nearest: [us, eu]}]
    """)


@pytest.fixture
def geostream(tmp_path: pathlib.Path, start_server: StartServer,
              city_mmdb: pathlib.Path) -> ServerProcess:
    zones = tmp_path / "server" / "zones"
    zones.mkdir(parents=True)
    (zones / "example.com.yaml").write_text(BEFORE)
    return start_server(tmp_path / "server", zones=zones, geoip=city_mmdb, args=["--no-probe"],
                        env={"GEOSTREAM_API_TOKEN": TOKEN})


def sync(folder: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEOSTREAM_API_TOKEN": TOKEN}
    return subprocess.run([str(SYNC), "--config-file", str(folder / "octodns.yaml"), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=folder,
                          check=False)


def config(folder: pathlib.Path, server: ServerProcess) -> None:
    (folder / "config").mkdir(exist_ok=True)
    (folder / "config" / "example.com.yaml").write_text(ZONE)
    (folder / "octodns.yaml").write_text(yaml.safe_dump({
        "providers": {
            "config": {"class": "octodns.provider.yaml.YamlProvider",
                       "directory": str(folder / "config"), "default_ttl": 3600,
                       "enforce_order": False},
            "geostream": {"class": "geostream_dns.octodns.GeoStreamProvider",
                          "url": f"http://127.0.0.1:{server.http_port}",
                          "token": "env/GEOSTREAM_API_TOKEN"},
        },
        "zones": {"example.com.": {"sources": ["config"], "targets": ["geostream"]}},
    }))


def ask(server: ServerProcess, name: str, rtype: str) -> tuple[set[str], set[int]]:
    reply = dns.query.tcp(dns.message.make_query(name, rtype), server.host, port=server.port,
                          timeout=5)
    want = dns.rdatatype.from_text(rtype)
    return ({r.to_text() for rrset in reply.answer if rrset.rdtype == want for r in rrset},
            {rrset.ttl for rrset in reply.answer if rrset.rdtype == want})


def test_octodns_sync_into_geostream(tmp_path: pathlib.Path, geostream: ServerProcess) -> None:
    config(tmp_path, geostream)
    first = sync(tmp_path, "--doit")
    assert first.returncode == 0, first.stdout + first.stderr
    assert ask(geostream, "example.com.", "MX") == ({"10 mail.example.com."}, {3600})
    assert ask(geostream, "example.com.", "TXT")[0] == {'"v=spf1 -all"', '"some-key=a; b=c"'}
    assert ask(geostream, "example.com.", "NS")[0] == {"ns1.example.com.", "ns2.example.net."}
    assert ask(geostream, "mail.example.com.", "A") == ({"192.0.2.25"}, {300})
    assert ask(geostream, "_sip._tcp.example.com.", "SRV")[0] == {"10 20 5060 sip.example.com."}
    assert ask(geostream, "sip.example.com.", "SSHFP")[0] == {
        "4 2 3b6ba6ee8d2ea4e6dcd9ea3e9ef0e6fe5b83b76ea9b5b1a2c8ab3b0d87e11e4f"}
    # the dynamic record is routed: 127.0.0.1 matches the subnets rule, pool eu
    assert ask(geostream, "www.example.com.", "A")[0] <= {"198.51.100.10", "198.51.100.11"}
    written = yaml.safe_load((geostream.zones_dir / "example.com.yaml").read_text())
    www = written["records"]["www"]
    assert www["routing"]["rules"] == [  # one octoDNS rule with both conditions: two rules
        {"subnets": ["127.0.0.0/8"], "pool": "eu"}, {"geos": ["EU"], "pool": "eu"},
        {"pool": "us"}]
    assert www["routing"]["pools"]["eu"]["fallback"] == "us"
    # kept: the SOA and its serial, regions, a type and a routing octoDNS does not know
    assert written["soa"]["serial"] == 2024060101 and set(written["regions"]) == {"us", "eu"}
    assert written["dnssec"]["algorithm"] == "ed25519"  # signing stays on
    assert written["records"]["box"]["type"] == "HINFO"
    assert written["records"]["near"]["routing"]["rules"] == [{"nearest": ["us", "eu"]}]
    assert ask(geostream, "box.example.com.", "HINFO")[0] == {'"PC" "Linux"'}

    again = sync(tmp_path)  # plan only: nothing left to change
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes were planned" in again.stdout + again.stderr

    (tmp_path / "config" / "example.com.yaml").write_text(
        ZONE.replace("192.0.2.25", "192.0.2.26").replace(
            "alias: {type: CNAME, value: www.example.com.}\n", ""))
    third = sync(tmp_path, "--doit")
    assert third.returncode == 0, third.stdout + third.stderr
    assert ask(geostream, "mail.example.com.", "A")[0] == {"192.0.2.26"}
    assert ask(geostream, "alias.example.com.", "CNAME")[0] == set()
