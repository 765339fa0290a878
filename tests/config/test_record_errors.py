"""One test per kind of record problem, asserting the exact message.

Snippets go under ``records:`` (file line R); snippet line N is file line R + N.
"""

from __future__ import annotations

import dns.rdata
import pytest

from tests.config.helpers import R, at, load, record_problems, record_warnings, records


def test_absolute_label() -> None:
    assert record_problems("www.example.com.: {type: A, value: 192.0.2.1}\n") == [
        at(
            R + 1,
            'records.www.example.com.: "www.example.com." must be relative to the zone '
            "(no trailing dot)",
        )
    ]


@pytest.mark.parametrize(
    ("label", "why"),
    [
        ("a.*", '"*" is only allowed as the leftmost label'),
        ("*x.static", '"*" must be a whole label (as in *.example)'),
        ("a..b", "empty label"),
        ("we b", '"we b" has characters a DNS label cannot have'),
    ],
)
def test_bad_label(label: str, why: str) -> None:
    assert record_problems(f"'{label}': {{type: A, value: 192.0.2.1}}\n") == [
        at(R + 1, f'records.{label}: "{label}" is not a valid label: {why}')
    ]


def test_unknown_key_in_record() -> None:
    assert record_problems("www: {type: A, value: 192.0.2.1, foo: 1}\n") == [
        at(R + 1, 'records.www.foo: unknown key "foo"')
    ]


def test_missing_type() -> None:
    assert record_problems("www: {value: 192.0.2.1}\n") == [
        at(R + 1, "records.www.type: missing required key")
    ]


def test_unknown_type() -> None:
    assert record_problems("www: {type: DNAME, value: x}\n") == [
        at(
            R + 1,
            'records.www.type: unknown type "DNAME"; expected one of A, AAAA, CNAME, MX, '
            "TXT, NS, SRV, CAA, PTR, NAPTR, SSHFP, TLSA, SMIMEA, HTTPS, SVCB, DS, LOC, URI, "
            "CERT, OPENPGPKEY, HINFO, RP, SPF, ALIAS, or TYPEnnn with RFC 3597 generic data "
            "for any other type (DNAME is TYPE39)",
        )
    ]


def test_soa_type() -> None:
    assert record_problems("'@': {type: SOA, value: x}\n") == [
        at(R + 1, 'records.@.type: the SOA record is generated from the "soa" block')
    ]


def test_value_and_values() -> None:
    assert record_problems("www: {type: A, value: 192.0.2.1, values: [192.0.2.2]}\n") == [
        at(R + 1, 'records.www: "value" and "values" cannot both be given')
    ]


def test_no_value() -> None:
    assert record_problems("www: {type: A}\n") == [
        at(R + 1, 'records.www: needs "value" or "values"')
    ]


def test_empty_values() -> None:
    assert record_problems("www: {type: A, values: []}\n") == [
        at(R + 1, "records.www.values: must not be empty")
    ]


def test_bad_addresses() -> None:
    snippet = """\
    www:
      - type: A
        values: [192.0.2.1, 192.0.2.256, "2001:db8::1"]
      - {type: AAAA, value: 192.0.2.1}
    """
    assert record_problems(snippet) == [
        at(R + 3, 'records.www[0].values[1]: "192.0.2.256" is not an IPv4 address'),
        at(R + 3, 'records.www[0].values[2]: "2001:db8::1" is not an IPv4 address'),
        at(R + 4, 'records.www[1].value: "192.0.2.1" is not an IPv6 address'),
    ]


def test_address_wrong_type() -> None:
    assert record_problems("www: {type: A, value: 12}\n") == [
        at(R + 1, "records.www.value: expected an IPv4 address, got 12")
    ]


def test_duplicate_value() -> None:
    assert record_problems("www: {type: A, values: [192.0.2.1, 192.0.2.01, 192.0.2.1]}\n") == [
        at(R + 1, 'records.www.values[1]: "192.0.2.01" is not an IPv4 address'),
        at(R + 1, "records.www.values[2]: duplicate of values[0]"),
    ]


def test_name_must_be_absolute() -> None:
    assert record_problems("api: {type: CNAME, value: www.example.com}\n") == [
        at(
            R + 1,
            'records.api.value: expected an absolute name ending with ".", got "www.example.com"',
        )
    ]


def test_cname_with_two_values() -> None:
    assert record_problems("api: {type: CNAME, values: [a.example.net., b.example.net.]}\n") == [
        at(R + 1, "records.api.values: a CNAME record has exactly one value")
    ]


def test_cname_beside_other_data() -> None:
    snippet = """\
    api:
      - {type: CNAME, value: www.example.net.}
      - {type: TXT, value: hello}
      - {type: A, value: 192.0.2.1}
    """
    assert record_problems(snippet) == [
        at(R + 2, "records.api[0]: a CNAME cannot share its name with other records (A, TXT)")
    ]


def test_cname_at_apex() -> None:
    assert record_problems("'': {type: CNAME, value: www.example.net.}\n") == [
        at(R + 1, "records.@: a CNAME cannot be at the zone apex")
    ]


def test_second_set_of_a_type_at_one_name() -> None:
    snippet = """\
    '': {type: A, value: 192.0.2.1}
    '@': {type: A, value: 192.0.2.2}
    """
    assert record_problems(snippet) == [
        at(R + 2, "records.@: a second A record set for example.com. (the first is on line 18)")
    ]


def test_mx_fields() -> None:
    snippet = """\
    '@':
      type: MX
      values:
        - {preference: 10, exchange: mail.example.com., priority: 1}
        - {preference: 70000}
        - 10 mail.example.com.
    """
    assert record_problems(snippet) == [
        at(R + 4, 'records.@.values[0].priority: unknown key "priority"'),
        at(R + 5, "records.@.values[1].exchange: missing required key"),
        at(R + 5, "records.@.values[1].preference: 70000 is not in 0..65535"),
        at(
            R + 6,
            "records.@.values[2]: expected a mapping with preference, exchange, "
            'got "10 mail.example.com."',
        ),
    ]


def test_srv_and_caa_fields() -> None:
    snippet = """\
    _sip._tcp: {type: SRV, value: {priority: 1, weight: 1, port: -1, target: sip}}
    '@': {type: CAA, value: {flags: 256, tag: "is sue", value: letsencrypt.org}}
    """
    assert record_problems(snippet) == [
        at(R + 1, "records._sip._tcp.value.port: -1 is not in 0..65535"),
        at(
            R + 1,
            'records._sip._tcp.value.target: expected an absolute name ending with ".", got "sip"',
        ),
        at(R + 2, "records.@.value.flags: 256 is not in 0..255"),
        at(
            R + 2, 'records.@.value.tag: "is sue" is not a CAA tag (letters and digits, like issue)'
        ),
    ]


def test_apex_ns_in_records() -> None:
    assert record_problems("'@': {type: NS, values: [ns3.example.net.]}\n") == [
        at(R + 1, 'records.@: the apex NS records come from "nameservers"')
    ]


def test_data_at_or_below_a_delegation_is_a_warning() -> None:
    snippet = """\
    shop:
      - {type: NS, values: [ns1.shop.example.com., ns2.shop.example.com.]}
      - {type: TXT, value: hi}
    ns1.shop: {type: A, value: 192.0.2.200}
    www.shop: {type: CNAME, value: www.example.net.}
    """
    assert record_warnings(snippet) == [
        at(
            R + 2,
            "records.shop[0]: ns2.shop.example.com. is inside the delegation but has no A "
            "or AAAA glue record",
        ),
        at(
            R + 3,
            "records.shop[1]: TXT data beside the delegation shop.example.com. is not served: "
            "queries get the referral",
        ),
        at(
            R + 5,
            "records.www.shop: CNAME data below the delegation shop.example.com. is not "
            "served: queries get the referral",
        ),
    ]


def test_alias_beside_address_records() -> None:
    snippet = """\
    '@':
      - {type: ALIAS, value: www.example.com.}
      - {type: A, value: 192.0.2.1}
    www: {type: A, value: 192.0.2.2}
    """
    assert record_problems(snippet) == [
        at(R + 2, "records.@[0]: an ALIAS cannot share its name with A records")
    ]


def test_alias_target() -> None:
    snippet = """\
    '@': {type: ALIAS, value: www.example.net.}
    a: {type: ALIAS, value: b.example.com.}
    """
    # a target outside the zone is resolved by the server; an in-zone one needs an address
    assert record_problems(snippet) == [
        at(R + 2, "records.a.value: the ALIAS target b.example.com. has no A or AAAA record"),
    ]


def test_routing_only_on_routable_types() -> None:
    snippet = """\
    '@': {type: MX, value: {preference: 1, exchange: mx.example.net.}, routing: {}}
    """
    assert record_problems(snippet) == [
        at(R + 1, "records.@.routing: routing only applies to A, AAAA, CNAME, TXT records")
    ]


def test_record_not_a_mapping() -> None:
    assert record_problems("www: 192.0.2.1\n") == [
        at(R + 1, 'records.www: expected a record or a list of records, got "192.0.2.1"')
    ]


def test_all_problems_are_reported_in_line_order() -> None:
    snippet = """\
    a: {type: A, value: nope}
    b: {type: AAAA, value: nope, ttl: -1}
    c: {type: TXT}
    """
    assert record_problems(snippet) == [
        at(R + 1, 'records.a.value: "nope" is not an IPv4 address'),
        at(R + 2, "records.b.ttl: -1 is not in 0..2147483647"),
        at(R + 2, 'records.b.value: "nope" is not an IPv6 address'),
        at(R + 3, 'records.c: needs "value" or "values"'),
    ]


def test_txt_values_are_built_from_bytes() -> None:
    long = "x" * 300
    text = 'v=DKIM1; k=rsa; p="quoted"'
    zone = load(records(f"'@': {{type: TXT, values: ['{text}', {long}, '']}}\n"))
    (rrset,) = zone.rrsets
    strings = sorted(rdata.strings for rdata in rrset.rdatas)  # type: ignore[attr-defined]
    assert strings == sorted([(text.encode(),), (b"x" * 255, b"x" * 45), (b"",)])


def test_values_are_dnspython_rdata() -> None:
    snippet = """\
    '@':
      - {type: MX, value: {preference: 10, exchange: Mail.Example.com.}}
      - {type: CAA, value: {flags: 0, tag: issue, value: "ca.example.net; policy=ev"}}
    _sip._tcp: {type: SRV, value: {priority: 1, weight: 2, port: 5060, target: .}}
    v6: {type: AAAA, value: "2001:DB8:0::1"}
    ptr: {type: PTR, value: host.example.net.}
    """
    zone = load(records(snippet))
    texts = {(r.name, r.rtype): [d.to_text() for d in r.rdatas] for r in zone.rrsets}
    assert texts == {
        ("_sip._tcp.example.com.", "SRV"): ["1 2 5060 ."],
        ("example.com.", "CAA"): ['0 issue "ca.example.net; policy=ev"'],
        ("example.com.", "MX"): ["10 mail.example.com."],
        ("ptr.example.com.", "PTR"): ["host.example.net."],
        ("v6.example.com.", "AAAA"): ["2001:db8::1"],
    }
    assert all(isinstance(d, dns.rdata.Rdata) for r in zone.rrsets for d in r.rdatas)


def test_record_ttl_defaults_to_zone_ttl() -> None:
    zone = load(records("a: {type: A, value: 192.0.2.1}\nb: {type: A, ttl: 0, value: 192.0.2.1}\n"))
    assert [(r.name, r.ttl) for r in zone.rrsets] == [
        ("a.example.com.", 300),
        ("b.example.com.", 0),
    ]


def test_names_are_lower_case_and_sorted() -> None:
    snippet = """\
    WWW: {type: AAAA, value: "2001:db8::1"}
    '*.Static': {type: A, value: 192.0.2.9}
    www: {type: A, value: 192.0.2.1}
    """
    zone = load(records(snippet))
    assert [(r.name, r.rtype) for r in zone.rrsets] == [
        ("*.static.example.com.", "A"),
        ("www.example.com.", "A"),
        ("www.example.com.", "AAAA"),
    ]


def test_a_record_set_too_big_for_one_dns_message() -> None:
    values = ", ".join(f'"{"x" * 240}{i:04d}"' for i in range(300))
    assert record_problems(f"huge: {{type: TXT, values: [{values}]}}\n") == [
        at(R + 1, "records.huge: the record set takes 77,100 bytes on the wire; an answer must "
              "fit one DNS message (at most 65,000 bytes here)")
    ]


def test_a_wildcard_delegation() -> None:
    assert record_problems("'*': {type: NS, value: ns1.example.net.}\n") == [
        at(R + 1, "records.*: a wildcard cannot be a delegation (RFC 4592 §4.2)")
    ]
