"""`geostream-dns import {bind,octodns,route53}`: other tools' zones, converted and
validated; what cannot be carried over is warned about with its source line, never
silently lost. The real-world corpus is in tests/import_corpus."""

from __future__ import annotations

import json
import pathlib

import yaml

from geostream_dns.config.importers import import_bind, import_octodns, import_route53
from geostream_dns.config.loader import load_zone_data
from geostream_dns.core.model import LatencyRule, RecordSet
from tests.support.harness import run_cli

BIND = """\
$TTL 3600
@   IN SOA ns1.example.net. host\\.master.example.net. 2024010101 7200 900 1209600 300
    IN NS ns1
    IN NS ns2.example.net.
    IN MX 10 mail
    IN TXT "v=spf1 -all"
    IN TXT "txtvers=1" "path=/"
ns1 IN A 192.0.2.53
ns2 IN A 198.51.100.53
mail 300 IN A 192.0.2.25
old IN A6 0 2001:db8::1
www IN CNAME @
*.static IN A 192.0.2.99
_sip._tcp IN SRV 10 60 5060 sip
sip IN AAAA 2001:db8::60
host IN HINFO "PC" "Linux"
$GENERATE 1-3 pc$ A 192.0.2.$
$INCLUDE lab.inc lab
"""

OCTODNS = """\
'':
  - type: MX
    values: [{preference: 10, exchange: mail.example.net.}]
  - type: TXT
    value: v=DKIM1\\; k=rsa
mail: {type: A, ttl: 300, value: 192.0.2.25}
intranet: {type: A, value: 10.0.0.1, octodns: {ignored: true}}
www:
  type: A
  values: [192.0.2.10]
  dynamic:
    pools:
      eu: {values: [{value: 198.51.100.10, weight: 2}, {value: 198.51.100.11}], fallback: us}
      us: {values: [{value: 192.0.2.10}]}
    rules:
      - {geos: [EU], subnets: [198.51.100.0/24], pool: eu}
      - pool: us
legacy:
  type: A
  values: [192.0.2.20]
  geo: {EU: [198.51.100.20], NA-US-CA: [203.0.113.20]}
"""


def alias(name: str, target: str, rtype: str = "A") -> dict[str, object]:
    return {"Name": name, "Type": rtype, "AliasTarget": {
        "HostedZoneId": "Z1", "DNSName": target, "EvaluateTargetHealth": False}}


ROUTE53 = {"ResourceRecordSets": [
    {"Name": "example.net", "Type": "SOA", "TTL": 900, "ResourceRecords": [
        {"Value": "ns1.example.net hostmaster.example.net 7 7200 900 1209600 86400"}]},
    {"Name": "example.net", "Type": "NS", "TTL": 172800, "ResourceRecords": [
        {"Value": "ns1.example.net"}, {"Value": "ns-1.awsdns-01.org."}]},
    alias("example.net", "www.example.net"),
    alias("example.net", "www.example.net", "AAAA"),
    {"Name": "ns1.example.net", "Type": "A", "TTL": 900,
     "ResourceRecords": [{"Value": "192.0.2.53"}]},
    {"Name": "www.example.net.", "Type": "A", "TTL": 60,
     "ResourceRecords": [{"Value": "192.0.2.10"}]},
    {"Name": "\\052.static.example.net.", "Type": "TXT", "TTL": 900,
     "ResourceRecords": [{"Value": '"hello" "world"'}]},
    {"Name": "\\043tag.example.net.", "Type": "A", "TTL": 900,
     "ResourceRecords": [{"Value": "192.0.2.35"}]},
    alias("cdn.example.net.", "d111.cloudfront.net."),
    {"Name": "app.example.net", "Type": "A", "TTL": 30, "SetIdentifier": "one",
     "Failover": "PRIMARY", "HealthCheckId": "hc-1",
     "ResourceRecords": [{"Value": "192.0.2.70"}]},
    {"Name": "app.example.net", "Type": "A", "TTL": 30, "SetIdentifier": "two",
     "Failover": "SECONDARY", "ResourceRecords": [{"Value": "198.51.100.70"}]},
    {"Name": "lat.example.net", "Type": "A", "TTL": 60, "SetIdentifier": "use1",
     "Region": "us-east-1", "ResourceRecords": [{"Value": "192.0.2.80"}]},
    {"Name": "lat.example.net", "Type": "A", "TTL": 60, "SetIdentifier": "euc1",
     "Region": "eu-central-1", "ResourceRecords": [{"Value": "198.51.100.80"}]},
    {"Name": "tp.example.net", "Type": "A", "TrafficPolicyInstanceId": "tp-1"},
]}

HEALTH = {"HealthChecks": [{"Id": "hc-1", "HealthCheckConfig": {
    "Type": "HTTPS", "Port": 443, "ResourcePath": "/up", "FullyQualifiedDomainName":
    "app.example.net", "RequestInterval": 10, "FailureThreshold": 2}}]}


def records(doc: dict[str, object], name: str = "import/example.net.yaml") \
        -> dict[tuple[str, str], RecordSet]:
    zone = load_zone_data(doc, name)  # the converted zone is valid
    return {(r.name, r.rtype): r for r in zone.rrsets}


def write(folder: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = folder / name
    path.write_text(text)
    return path


def test_bind(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "lab.inc", "@ A 198.51.100.1\nprinter A 198.51.100.9\n")
    source = write(tmp_path, "example.net.db", BIND)
    imported = import_bind(source, "example.net")
    assert [str(w) for w in imported.warnings] == [
        f"{source}:11: A6 record skipped: obsolete type"]
    doc = imported.document
    assert doc["ttl"] == 3600 and doc["nameservers"] == ["ns1.example.net.", "ns2.example.net."]
    assert doc["soa"]["email"] == "host.master@example.net"  # type: ignore[index]
    assert doc["soa"]["serial"] == 2024010101  # type: ignore[index]
    got = records(doc)
    assert got[("mail.example.net.", "A")].ttl == 300
    assert got[("www.example.net.", "CNAME")].rdatas[0].to_text() == "example.net."
    assert got[("*.static.example.net.", "A")].rdatas[0].to_text() == "192.0.2.99"
    assert got[("host.example.net.", "HINFO")].rdatas[0].to_text() == '"PC" "Linux"'
    assert [r.to_text() for r in got[("example.net.", "TXT")].rdatas] == [
        '"v=spf1 -all"', '"txtvers=1" "path=/"']  # several strings stay one record
    assert ("pc3.example.net.", "A") in got and ("printer.lab.example.net.", "A") in got


def test_bind_without_origin_needs_the_zone(tmp_path: pathlib.Path) -> None:
    source = write(tmp_path, "db.example", BIND.replace("$INCLUDE lab.inc lab\n", ""))
    done = run_cli("import", "bind", str(source))
    assert done.returncode == 1
    assert done.stderr == (f"geostream-dns import: {source}: the file has no $ORIGIN line: "
                           "give the zone's name with --zone NAME\n")


def test_bind_without_origin_but_absolute_names(tmp_path: pathlib.Path) -> None:
    source = write(tmp_path, "db", "example.org. 300 IN SOA ns.example.net. h.example.org. "
                                   "5 1 1 1 1\nexample.org. 300 IN NS ns.example.net.\n"
                                   "www.example.org. 300 IN A 192.0.2.1\n")
    imported = import_bind(source)
    assert imported.document["zone"] == "example.org." and imported.warnings == []
    assert ("www.example.org.", "A") in records(imported.document, "import/example.org.yaml")


def test_octodns(tmp_path: pathlib.Path) -> None:
    source = write(tmp_path, "example.net.yaml", OCTODNS)
    imported = import_octodns(source, nameservers=["ns1.example.net.", "ns2.example.net."])
    assert [str(w) for w in imported.warnings] == [
        f"{source}:7: intranet.example.net. A skipped: octodns.ignored is set"]
    doc = imported.document
    assert doc["zone"] == "example.net." and doc["ttl"] == 3600  # octoDNS's default TTL
    got = records(doc)
    assert got[("example.net.", "TXT")].rdatas[0].to_text() == '"v=DKIM1; k=rsa"'
    assert got[("mail.example.net.", "A")].ttl == 300
    www = got[("www.example.net.", "A")].routing
    assert www is not None
    assert [(r.kind, r.pool) for r in www.rules] == [  # type: ignore[union-attr]
        ("subnets", "eu"), ("geos", "eu"), ("catch-all", "us")]
    assert www.pools["eu"].fallback == "us" and www.pools["eu"].values[0].weight == 2
    legacy = got[("legacy.example.net.", "A")].routing
    assert legacy is not None
    assert [r.geos for r in legacy.rules] == [("NA-US-CA",), ("EU",)]  # type: ignore[union-attr]


def test_octodns_without_apex_ns(tmp_path: pathlib.Path) -> None:
    source = write(tmp_path, "example.net.yaml", OCTODNS)
    done = run_cli("import", "octodns", str(source))
    assert done.returncode == 1
    assert done.stderr == (f"geostream-dns import: {source}: the source has no apex NS records: "
                           "give the zone's name servers with --nameservers NAME[,NAME...]\n")
    ok = run_cli("import", "octodns", str(source), "--nameservers", "ns1.example.net.",
                 "--nameservers", "ns2.example.net,ns3.example.net")
    assert ok.returncode == 0, ok.stderr
    text = ok.stdout
    assert yaml.safe_load(text)["nameservers"] == [
        "ns1.example.net.", "ns2.example.net.", "ns3.example.net."]


def test_route53(tmp_path: pathlib.Path) -> None:
    source = write(tmp_path, "example.net.json", json.dumps(ROUTE53, indent=1))
    checks = write(tmp_path, "checks.json", json.dumps(HEALTH))
    imported = import_route53(source, health_checks=checks)
    lines = ROUTE53["ResourceRecordSets"]
    text = source.read_text().splitlines()
    tp_line = next(i for i, t in enumerate(text, 1) if '"tp.example.net"' in t) - 1
    assert [str(w) for w in imported.warnings] == [
        f"{source}:{tp_line}: tp.example.net. A skipped: created by traffic policy instance "
        "tp-1; the export holds no values",
    ]
    assert len(lines) == 14
    doc = imported.document
    assert doc["ttl"] == 900 and doc["soa"]["serial"] == 7  # type: ignore[index]
    got = records(doc)
    assert got[("example.net.", "ALIAS")].alias == "www.example.net."  # one for A and AAAA
    assert got[("cdn.example.net.", "ALIAS")].alias == "d111.cloudfront.net."  # outside
    assert [r.to_text() for r in got[("*.static.example.net.", "TXT")].rdatas] == [
        '"hello" "world"']
    assert ("#tag.example.net.", "A") in got
    app = got[("app.example.net.", "A")].routing
    assert app is not None and app.pools["one"].fallback == "two"
    assert app.pools["one"].values[0].healthcheck == "r53-hc-1"
    lat = got[("lat.example.net.", "A")].routing
    assert lat is not None and lat.rules[0].kind == "latency"
    assert lat.rules[0] == LatencyRule(tuple(lat.pools), (), 10, lat.rules[0].line)
    assert {p.region for p in lat.pools.values()} == {"us-east-1", "eu-central-1"}


def test_cli_writes_a_file_that_check_accepts(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "lab.inc", "@ A 198.51.100.1\n")
    source = write(tmp_path, "example.net.zone", BIND)
    out = tmp_path / "zones"
    done = run_cli("import", "bind", str(source), "--zone", "example.net", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == \
        f"warning: {source}:11: A6 record skipped: obsolete type"
    written = out / "example.net.yaml"
    assert yaml.safe_load(written.read_text())["zone"] == "example.net."
    check = run_cli("check", str(out))
    assert check.returncode == 0, check.stdout
    again = run_cli("import", "bind", str(source), "--zone", "example.net", "--out", str(out))
    assert again.returncode == 1
    assert again.stderr.endswith(f"geostream-dns import: {written} exists; give --force to "
                                 "replace it\n")
    forced = run_cli("import", "bind", str(source), "--zone", "example.net", "--out", str(out),
                     "--force")
    assert forced.returncode == 0, forced.stderr


def test_cli_strict_turns_warnings_into_errors(tmp_path: pathlib.Path) -> None:
    write(tmp_path, "lab.inc", "@ A 198.51.100.1\n")
    source = write(tmp_path, "example.net.zone", BIND)
    out = tmp_path / "zones"
    done = run_cli("import", "bind", str(source), "--zone", "example.net", "--out", str(out),
                   "--strict")
    assert done.returncode == 1
    assert done.stderr == (f"error: {source}:11: A6 record skipped: obsolete type\n"
                           f"geostream-dns import: {source}: 1 warnings and --strict; nothing "
                           "written\n")
    assert not out.exists()


def test_cli_zone_warnings_name_the_source_line(tmp_path: pathlib.Path) -> None:
    text = json.dumps({"ResourceRecordSets": [
        *ROUTE53["ResourceRecordSets"][:2], ROUTE53["ResourceRecordSets"][4],
        {"Name": "dev.example.net", "Type": "NS", "TTL": 300,
         "ResourceRecords": [{"Value": "ns.dev.example.net"}]},
        {"Name": "dev.example.net", "Type": "TXT", "TTL": 300,
         "ResourceRecords": [{"Value": '"beside the cut"'}]},
    ]}, indent=1)
    source = write(tmp_path, "example.net.json", text)
    done = run_cli("import", "route53", str(source))
    assert done.returncode == 0, done.stderr
    ns, txt = [i for i, t in enumerate(text.splitlines()) if '"dev.example.net"' in t]
    assert done.stderr.splitlines() == [  # each record set starts on the line before its name
        f"warning: {source}:{ns}: records.dev[0]: ns.dev.example.net. is inside the "
        "delegation but has no A or AAAA glue record",
        f"warning: {source}:{txt}: records.dev[1]: TXT data beside the delegation "
        "dev.example.net. is not served: queries get the referral",
    ]


def test_cli_errors_are_one_line(tmp_path: pathlib.Path) -> None:
    bad = write(tmp_path, "bad.json", "{}")
    done = run_cli("import", "route53", str(bad))
    assert done.returncode == 1
    assert done.stderr == (f"geostream-dns import: {bad}: not list-resource-record-sets JSON: "
                           "no ResourceRecordSets list\n")
    octo = run_cli("import", "octodns", str(bad))
    assert octo.returncode == 1 and "give --zone NAME" in octo.stderr

