"""`geostream-dns import {bind,octodns,route53}`: other tools' zones, converted and
validated; what cannot be carried over is warned about, never silently lost."""

from __future__ import annotations

import json
import pathlib
import subprocess

import yaml

from geostream_dns.config.convert import from_bind, from_octodns, from_route53
from geostream_dns.config.loader import load_zone_data

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin" / "geostream-dns"

BIND = """\
$ORIGIN example.net.
$TTL 3600
@   IN SOA ns1.example.net. host\\.master.example.net. 2024010101 7200 900 1209600 300
    IN NS ns1.example.net.
    IN NS ns2.example.net.
    IN MX 10 mail
    IN TXT "v=spf1 -all"
ns1 IN A 192.0.2.53
ns2 IN A 198.51.100.53
mail 300 IN A 192.0.2.25
www IN CNAME @
*.static IN A 192.0.2.99
_sip._tcp IN SRV 10 60 5060 sip
sip IN AAAA 2001:db8::60
@ IN CAA 0 issue "letsencrypt.org"
host IN HINFO "PC" "Linux"
"""

OCTODNS = """\
'':
  - type: NS
    values: [ns1.example.net., ns2.example.net.]
  - type: MX
    values: [{preference: 10, exchange: mail.example.net.}]
  - type: TXT
    value: v=DKIM1\\; k=rsa
ns1: {type: A, value: 192.0.2.53}
ns2: {type: A, value: 198.51.100.53}
mail: {type: A, ttl: 300, value: 192.0.2.25}
www:
  type: A
  values: [192.0.2.10, 192.0.2.11]
  dynamic: {pools: {}, rules: []}
"""

ROUTE53 = {"ResourceRecordSets": [
    {"Name": "example.net.", "Type": "SOA", "TTL": 900, "ResourceRecords": [
        {"Value": "ns1.example.net. hostmaster.example.net. 1 7200 900 1209600 86400"}]},
    {"Name": "example.net.", "Type": "NS", "TTL": 172800, "ResourceRecords": [
        {"Value": "ns1.example.net."}, {"Value": "ns2.example.net."}]},
    {"Name": "example.net.", "Type": "A", "AliasTarget": {
        "HostedZoneId": "Z1", "DNSName": "www.example.net.", "EvaluateTargetHealth": False}},
    {"Name": "example.net.", "Type": "AAAA", "AliasTarget": {
        "HostedZoneId": "Z1", "DNSName": "www.example.net.", "EvaluateTargetHealth": False}},
    {"Name": "ns1.example.net.", "Type": "A", "TTL": 900,
     "ResourceRecords": [{"Value": "192.0.2.53"}]},
    {"Name": "ns2.example.net.", "Type": "A", "TTL": 900,
     "ResourceRecords": [{"Value": "198.51.100.53"}]},
    {"Name": "www.example.net.", "Type": "A", "TTL": 60,
     "ResourceRecords": [{"Value": "192.0.2.10"}]},
    {"Name": "\\052.static.example.net.", "Type": "TXT", "TTL": 900,
     "ResourceRecords": [{"Value": '"hello world"'}]},
    {"Name": "api.example.net.", "Type": "A", "TTL": 60, "SetIdentifier": "eu",
     "Weight": 10, "ResourceRecords": [{"Value": "198.51.100.10"}]},
    {"Name": "cdn.example.net.", "Type": "A", "AliasTarget": {
        "HostedZoneId": "Z2", "DNSName": "d111.cloudfront.net.", "EvaluateTargetHealth": False}},
]}


def records_of(doc: dict[str, object]) -> dict[str, object]:
    zone = load_zone_data(doc, "import/example.net.yaml")  # the converted zone is valid
    return {(r.name, r.rtype): r for r in zone.rrsets}  # type: ignore[return-value]


def test_bind() -> None:
    doc, warnings = from_bind(BIND)
    assert warnings == ["host.example.net. HINFO: not served by GeoStream, skipped"]
    assert doc["ttl"] == 3600 and doc["nameservers"] == ["ns1.example.net.", "ns2.example.net."]
    assert doc["soa"]["email"] == "host.master@example.net"  # type: ignore[index]
    got = records_of(doc)
    assert got[("mail.example.net.", "A")].ttl == 300
    assert got[("www.example.net.", "CNAME")].rdatas[0].to_text() == "example.net."
    assert got[("*.static.example.net.", "A")].rdatas[0].to_text() == "192.0.2.99"
    assert got[("_sip._tcp.example.net.", "SRV")].rdatas[0].to_text() == \
        "10 60 5060 sip.example.net."
    assert ("example.net.", "CAA") in got and ("example.net.", "MX") in got


def test_octodns() -> None:
    doc, warnings = from_octodns(OCTODNS, "example.net")
    assert warnings == ["www A: octoDNS dynamic rules not converted; the record's own "
                        "values are kept (add a routing block)"]
    got = records_of(doc)
    assert got[("example.net.", "TXT")].rdatas[0].to_text() == '"v=DKIM1; k=rsa"'
    assert got[("mail.example.net.", "A")].ttl == 300
    assert doc["soa"]["primary"] == "ns1.example.net."  # type: ignore[index]


def test_route53() -> None:
    doc, warnings = from_route53(json.dumps(ROUTE53))
    assert warnings == [
        "api.example.net. A (eu): Route 53 routing policy not converted, skipped "
        "(add a routing block)",
        "cdn.example.net. A: alias to d111.cloudfront.net. outside the zone, skipped"]
    assert doc["ttl"] == 900
    got = records_of(doc)
    assert got[("example.net.", "ALIAS")].alias == "www.example.net."  # one for A and AAAA
    assert got[("*.static.example.net.", "TXT")].rdatas[0].to_text() == '"hello world"'
    assert got[("www.example.net.", "A")].ttl == 60


def test_cli_writes_a_file_that_check_accepts(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "example.net.zone"
    source.write_text(BIND)
    out = tmp_path / "zones"
    out.mkdir()
    done = subprocess.run([str(BIN), "import", "bind", str(source), "--out", str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "warning: host.example.net. HINFO" in done.stderr
    written = out / "example.net.yaml"
    assert yaml.safe_load(written.read_text())["zone"] == "example.net."
    check = subprocess.run([str(BIN), "check", str(out)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout


def test_cli_errors_are_one_line(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = subprocess.run([str(BIN), "import", "route53", str(bad)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(f"geostream-dns import: {bad}: not list-resource-record-sets")
    octo = subprocess.run([str(BIN), "import", "octodns", str(bad)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert octo.returncode == 2 and "--zone NAME" in octo.stderr
