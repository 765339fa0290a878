"""Every record type a zone holds: one valid zone with each of them round-trips through
its canonical document, and one test per kind of problem asserts the exact message.

Snippets go under ``records:`` (file line R); snippet line N is file line R + N.
"""

from __future__ import annotations

import textwrap

import pytest

from geostream_dns.config.document import document_yaml, zone_document
from geostream_dns.config.loader import load_zone_data
from tests.config.helpers import R, at, load, record_problems, records

FP = "ab" * 32  # a SHA-256 fingerprint
CERT = "0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6"

EVERY_TYPE = f"""\
'@':
  - {{type: SSHFP, value: {{algorithm: 4, fingerprint_type: 2, fingerprint: {FP.upper()}}}}}
  - {{type: TXT, values: [[a, b], "c", "{"x" * 300}"]}}
  - {{type: SPF, value: "v=spf1 -all"}}
  - type: LOC
    value: {{lat_degrees: 52, lat_minutes: 22, lat_seconds: 23.5, lat_direction: N,
             long_degrees: 4, long_minutes: 53, long_seconds: 32, long_direction: E,
             altitude: -2, size: 6, precision_horz: 10, precision_vert: 2}}
  - {{type: URI, value: {{priority: 10, weight: 1, target: "ftp://ftp1.example.com/public"}}}}
  - type: HTTPS
    values:
      - svcpriority: 1
        targetname: .
        svcparams: {{alpn: [h2, h3], port: 8443, ipv4hint: [192.0.2.1], no-default-alpn: null,
                     key65000: hello}}
      - {{svcpriority: 0, targetname: cdn.example.net.}}
  - {{type: CERT, value: "PGP 0 0 AQIDBAUGBwg="}}
  - {{type: HINFO, value: '"INTEL" "Linux"'}}
  - {{type: RP, value: "admin.example.com. txt.example.com."}}
  - {{type: OPENPGPKEY, value: "mQINBFit2jsBEADrbl5vjVxYeAE0g0IDYCBpHirv1Sjlqxx5gjtPhb2YAvyDMA=="}}
  - {{type: TYPE49, value: '\\# 4 c0000201'}}
  - {{type: CAA, value: {{tag: issue, value: ca.example.net}}}}
_443._tcp.www:
  type: TLSA
  value: {{certificate_usage: 3, selector: 1, matching_type: 1,
           certificate_association_data: {CERT}}}
x._smimecert:
  type: SMIMEA
  value: {{certificate_usage: 3, selector: 1, matching_type: 1,
           certificate_association_data: {CERT}}}
sip:
  type: NAPTR
  value: {{order: 100, preference: 10, flags: S, service: "SIP+D2U", regexp: "",
           replacement: _sip._udp.example.com.}}
svc:
  type: SVCB
  value: {{svcpriority: 1, targetname: svc.example.net.,
           svcparams: {{alpn: h2, mandatory: [alpn]}}}}
sub:
  - {{type: NS, values: [ns1.example.net.]}}
  - {{type: DS, value: {{key_tag: 60485, algorithm: 5, digest_type: 1,
                        digest: 2BB183AF5F22588179A53B0A98631FAD1A292118}}}}
"""

PRESENTATION = {
    ("example.com.", "SSHFP"): ["4 2 " + FP],
    ("example.com.", "TXT"): ['"a" "b"', '"c"', '"' + "x" * 255 + '" "' + "x" * 45 + '"'],
    ("example.com.", "SPF"): ['"v=spf1 -all"'],
    ("example.com.", "LOC"): ["52 22 23.500 N 4 53 32.000 E -2.00m 6.00m 10.00m 2.00m"],
    ("example.com.", "URI"): ['10 1 "ftp://ftp1.example.com/public"'],
    ("example.com.", "HTTPS"): [
        '1 . alpn="h2,h3" no-default-alpn port="8443" ipv4hint="192.0.2.1" key65000="hello"',
        "0 cdn.example.net."],
    ("example.com.", "CERT"): ["PGP 0 0 AQIDBAUGBwg="],
    ("example.com.", "HINFO"): ['"INTEL" "Linux"'],
    ("example.com.", "RP"): ["admin.example.com. txt.example.com."],
    ("example.com.", "OPENPGPKEY"): [
        "mQINBFit2jsBEADrbl5vjVxYeAE0g0IDYCBpHirv1Sjlqxx5gjtPhb2YAvyDMA=="],
    ("example.com.", "TYPE49"): ["wAACAQ=="],
    ("example.com.", "CAA"): ['0 issue "ca.example.net"'],
    ("_443._tcp.www.example.com.", "TLSA"): ["3 1 1 " + CERT],
    ("x._smimecert.example.com.", "SMIMEA"): ["3 1 1 " + CERT],
    ("sip.example.com.", "NAPTR"): ['100 10 "S" "SIP+D2U" "" _sip._udp.example.com.'],
    ("svc.example.com.", "SVCB"): ['1 svc.example.net. mandatory="alpn" alpn="h2"'],
    ("sub.example.com.", "NS"): ["ns1.example.net."],
    ("sub.example.com.", "DS"): ["60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118"],
}


def test_every_type_loads_and_round_trips() -> None:
    zone = load(records(EVERY_TYPE))
    got = {(r.name, r.rtype): [d.to_text() for d in r.rdatas] for r in zone.rrsets}
    assert got == PRESENTATION
    doc = zone_document(zone)
    again = load_zone_data(doc, "x/example.com.yaml")
    assert zone_document(again) == doc
    assert zone_document(load(document_yaml(doc))) == doc  # and as YAML text
    assert {(r.name, r.rtype): r.rdatas for r in again.rrsets} == {
        (r.name, r.rtype): r.rdatas for r in zone.rrsets}
    apex = {e["type"]: e for e in doc["records"]["@"]}
    assert apex["TXT"]["values"][0] == ["a", "b"]  # several strings in one record stay a list
    assert apex["TXT"]["values"][2] == "x" * 300  # one long string stays one string
    assert apex["SSHFP"]["value"]["fingerprint"] == FP
    assert apex["TYPE49"]["value"] == "\\# 4 c0000201"


def problem(snippet: str) -> list[str]:
    return record_problems(textwrap.dedent(snippet))


SSHFP = "www: {type: SSHFP, value: {algorithm: 4, fingerprint_type: 2, fingerprint: %s}}\n"


def test_unknown_field() -> None:
    assert problem("www: {type: URI, value: {priority: 1, weight: 1, target: x, port: 1}}\n") \
        == [at(R + 1, 'records.www.value.port: unknown key "port"')]


def test_missing_field() -> None:
    assert problem("www: {type: SSHFP, value: {algorithm: 4, fingerprint: ab}}\n") == [
        at(R + 1, "records.www.value.fingerprint_type: missing required key")]


def test_field_out_of_range() -> None:
    assert problem("www: {type: SSHFP, value: {algorithm: 256, fingerprint_type: 2, "
                   f"fingerprint: {FP}}}}}\n") == [
        at(R + 1, "records.www.value.algorithm: 256 is not in 0..255")]


def test_not_hexadecimal() -> None:
    assert problem(SSHFP % "abc") == [
        at(R + 1, 'records.www.value.fingerprint: "abc" is not hexadecimal (an even number of '
                  "0-9, a-f)")]


def test_value_inconsistent_as_a_whole() -> None:
    assert problem(SSHFP % "abcd") == [
        at(R + 1, "records.www.value: not a valid SSHFP value: fingerprint length inconsistent "
                  "with fingerprint type")]


def test_structured_value_not_a_mapping() -> None:
    assert problem("sub: [{type: NS, value: ns.example.net.}, {type: DS, value: 1 2 3 abcd}]\n") \
        == [at(R + 1, "records.sub[1].value: expected a mapping with key_tag, algorithm, "
                      'digest_type, digest, got "1 2 3 abcd"')]


def test_loc_direction() -> None:
    assert problem("www: {type: LOC, value: {lat_degrees: 1, lat_direction: E, "
                   "long_degrees: 2, long_direction: E}}\n") == [
        at(R + 1, 'records.www.value.lat_direction: expected one of N, S, got "E"')]


def test_loc_seconds() -> None:
    assert problem("www: {type: LOC, value: {lat_degrees: 1, lat_seconds: 60, lat_direction: N, "
                   "long_degrees: 2, long_direction: E}}\n") == [
        at(R + 1, "records.www.value.lat_seconds: 60 is not in 0..59.999")]


def test_character_string_too_long() -> None:
    assert problem("www: {type: NAPTR, value: {order: 1, preference: 1, flags: S, service: x, "
                   f"regexp: {'r' * 256}, replacement: .}}}}\n") == [
        at(R + 1, "records.www.value.regexp: at most 255 bytes, got 256")]


def test_svcparam_unknown_key() -> None:
    assert problem("www: {type: SVCB, value: {svcpriority: 1, targetname: ., "
                   "svcparams: {colour: blue}}}\n") == [
        at(R + 1, 'records.www.value.svcparams.colour: unknown svcparam "colour" (expected one '
                  "of mandatory, alpn, no-default-alpn, port, ipv4hint, ech, ipv6hint, dohpath, "
                  "ohttp, docpath, or keyNNN)")]


def test_svcparam_mandatory_missing() -> None:
    assert problem("www: {type: HTTPS, value: {svcpriority: 1, targetname: ., "
                   "svcparams: {mandatory: [port]}}}\n") == [
        at(R + 1, "records.www.value: not a valid HTTPS value: key 3 declared mandatory but "
                  "not present")]


def test_svcparam_list_item_with_comma() -> None:
    assert problem("www: {type: HTTPS, value: {svcpriority: 1, targetname: ., "
                   "svcparams: {alpn: ['h2,h3']}}}\n") == [
        at(R + 1, 'records.www.value.svcparams.alpn[0]: "h2,h3": a list item cannot hold "," '
                  'or "\\"')]


def test_txt_list_string_too_long() -> None:
    assert problem(f"www: {{type: TXT, value: [a, {'b' * 256}]}}\n") == [
        at(R + 1, "records.www.value[1]: a string in a list is at most 255 bytes, this one has "
                  "256 (a single string is split for you)")]


def test_txt_list_of_non_strings() -> None:
    assert problem("www: {type: TXT, value: [a, {b: 1}]}\n") == [
        at(R + 1, "records.www.value[1]: expected a string, got a mapping")]


def test_txt_empty_list() -> None:
    assert problem("www: {type: TXT, values: [[]]}\n") == [
        at(R + 1, "records.www.values[0]: must not be empty")]


def test_txt_not_a_string() -> None:
    assert problem("www: {type: TXT, value: {a: 1}}\n") == [
        at(R + 1, "records.www.value: expected a string or a list of strings, got a mapping")]


def test_presentation_text_invalid() -> None:
    assert problem("www: {type: HINFO, value: 'INTEL'}\n") == [
        at(R + 1, 'records.www.value: "INTEL" is not valid HINFO data: expecting a string')]


def test_presentation_text_relative_name() -> None:
    assert problem("www: {type: RP, value: 'admin txt.example.com.'}\n") == [
        at(R + 1, 'records.www.value: "admin txt.example.com.": names must be absolute (end '
                  'with ".")')]


def test_generic_type_needs_generic_data() -> None:
    assert problem("www: {type: TYPE49, value: 'c0000201'}\n") == [
        at(R + 1, 'records.www.value: expected RFC 3597 generic data like "\\# 4 c0000201", '
                  'got "c0000201"')]


def test_generic_data_length() -> None:
    assert problem("www: {type: TYPE65333, value: '\\# 5 c0000201'}\n") == [
        at(R + 1, 'records.www.value: "\\# 5 c0000201" is not valid generic data: generic '
                  "rdata hex data has wrong length")]


@pytest.mark.parametrize(("rtype", "why"), [
    ("TYPE1", '"TYPE1" is A: write type A'),
    ("TYPE6", '"TYPE6" is SOA: write type SOA'),
    ("TYPE0", '"TYPE0": a type number is 1..65535'),
    ("TYPE65536", '"TYPE65536": a type number is 1..65535'),
    ("TYPE41", '"TYPE41" (OPT) is a meta type that a zone cannot hold'),
    ("TYPE255", '"TYPE255" (ANY) is a meta type that a zone cannot hold'),
    ("TYPE65401", '"TYPE65401" (TYPE65401) is a meta type that a zone cannot hold'),
    ("TYPE46", '"TYPE46" (RRSIG) is made by the server when the zone is signed'),
])
def test_generic_type_refused(rtype: str, why: str) -> None:
    assert problem(f"www: {{type: {rtype}, value: '\\# 0'}}\n") == [
        at(R + 1, f"records.www.type: {why}")]


def test_ds_only_at_a_delegation() -> None:
    snippet = f"www: {{type: DS, value: {{key_tag: 1, algorithm: 13, digest_type: 2, "\
              f"digest: {FP}}}}}\n"
    assert problem(snippet) == [
        at(R + 1, "records.www: DS records belong at a delegation (a name with NS records below "
                  "the apex)")]
