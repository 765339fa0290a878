"""One test per kind of zone-level problem, asserting the exact message."""

from __future__ import annotations

from tests.config.helpers import BASE, at, load, problems, warnings


def replace(old: str, new: str) -> str:
    """BASE with the one line that starts with (else contains) ``old`` changed."""
    lines = BASE.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.startswith(old)]
    (i,) = found or [i for i, line in enumerate(lines) if old in line]
    lines[i] = lines[i].replace(old, new, 1)
    return "".join(lines)


def test_invalid_yaml() -> None:
    assert problems("zone: example.com.\nttl: [300\n") == [
        at(
            3,
            "(file): invalid YAML: while parsing a flow sequence, did not find expected "
            "',' or ']'",
        )
    ]


def test_more_than_one_document() -> None:
    assert problems("zone: example.com.\n---\nttl: 300\n") == [
        at(
            2,
            "(file): invalid YAML: expected a single document in the stream, "
            "but found another document",
        )
    ]


def test_empty_file() -> None:
    assert problems("# nothing\n") == [at(1, "(file): the file is empty")]


def test_not_a_mapping() -> None:
    assert problems("- a\n- b\n") == [
        at(1, "(file): expected a mapping of zone settings, got a list")
    ]


def test_unknown_top_level_key() -> None:
    assert problems(BASE + "foo: 1\n") == [at(17, 'foo: unknown key "foo"')]


def test_missing_required_key() -> None:
    text = replace("nameservers: [ns1.example.net., ns2.example.net.]\n", "")
    assert problems(text) == [at(1, "nameservers: missing required key")]


def test_duplicate_key() -> None:
    assert problems(BASE + "ttl: 600\n") == [at(17, "ttl: duplicate key (first given on line 2)")]


def test_zone_must_match_file_name() -> None:
    assert problems(replace("zone: example.com.", "zone: example.net")) == [
        at(1, 'zone: "example.net" does not match the file name "example.com.yaml"')
    ]


def test_zone_from_file_name_when_missing() -> None:
    text = replace("zone: example.com.\n", "")
    assert load(text).origin == "example.com."
    assert load(text, "zones/Example.COM..yml").origin == "example.com."


def test_zone_name_case_and_trailing_dot() -> None:
    zone = load(replace("zone: example.com.", "zone: EXAMPLE.com"), "zones/example.com..yaml")
    assert zone.origin == "example.com."
    assert zone.source == "zones/example.com..yaml"


def test_zone_needed_when_source_is_not_a_zone_file() -> None:
    text = replace("zone: example.com.\n", "")
    assert problems(text, "<stdin>") == [
        '<stdin>:1: zone: missing required key (cannot tell the zone from "<stdin>")'
    ]


def test_wrong_type() -> None:
    assert problems(replace("ttl: 300", 'ttl: "abc"')) == [
        at(2, 'ttl: expected an integer, got "abc"')
    ]


def test_ttl_out_of_range() -> None:
    assert problems(replace("ttl: 300", "ttl: 2147483648")) == [
        at(2, "ttl: 2147483648 is not in 0..2147483647")
    ]


def test_soa_missing_and_bad_fields() -> None:
    text = replace("primary: ns1.example.net.", "primary: ns1.example.net")
    text = text.replace("  retry: 900\n", "")
    text = text.replace("hostmaster@example.com", "hostmaster")
    assert problems(text) == [
        at(3, "soa.retry: missing required key"),
        at(4, 'soa.primary: expected an absolute name ending with ".", got "ns1.example.net"'),
        at(5, 'soa.email: "hostmaster" is not an address like hostmaster@example.com'),
    ]


def test_nameservers_empty() -> None:
    assert problems(replace("[ns1.example.net., ns2.example.net.]", "[]")) == [
        at(10, "nameservers: must not be empty")
    ]


def test_nameserver_listed_twice() -> None:
    text = replace("ns2.example.net.]", "NS1.example.net.]")
    assert problems(text) == [at(10, "nameservers[1]: ns1.example.net. is listed twice")]


def test_in_zone_nameserver_without_address_is_a_warning() -> None:
    text = replace("ns2.example.net.]", "ns2.example.com.]")
    assert warnings(text) == [
        at(10, "nameservers[1]: ns2.example.com. is inside the zone but has no A or AAAA record")
    ]


def test_region_coordinates() -> None:
    text = replace("us: {lat: 38.9, lon: -77.4}", "us: {lat: 98.9, lon: west}")
    assert problems(text) == [
        at(12, "regions.us.lat: 98.9 is not in -90..90"),
        at(12, 'regions.us.lon: expected a number, got "west"'),
    ]


def check(spec: str) -> list[str]:
    return problems(replace("web: {protocol: http, port: 80}", f"web: {spec}"))


def test_healthcheck_protocol() -> None:
    assert check("{protocol: ftp, port: 21}") == [
        at(16, 'healthchecks.web.protocol: expected one of http, https, tcp, got "ftp"')
    ]


def test_healthcheck_tcp_port_required_and_http_only_keys() -> None:
    assert check("{protocol: tcp, path: /x, verify_tls: false}") == [
        at(16, "healthchecks.web.port: missing required key (a tcp check has no default port)"),
        at(16, "healthchecks.web.path: path only applies to http and https checks"),
        at(16, "healthchecks.web.verify_tls: verify_tls only applies to https checks"),
    ]


def test_healthcheck_durations() -> None:
    assert check("{protocol: https, interval: 5 seconds, timeout: 0}") == [
        at(
            16,
            'healthchecks.web.interval: expected a duration like "5s" or "500ms", got "5 seconds"',
        ),
        at(16, "healthchecks.web.timeout: 0 is not a positive duration"),
    ]


def test_healthcheck_timeout_longer_than_interval() -> None:
    assert check("{protocol: https, interval: 500ms, timeout: 2s}") == [
        at(16, "healthchecks.web.timeout: the timeout (2s) is longer than the interval (0.5s)")
    ]


def test_healthcheck_expect_and_path() -> None:
    assert check("{protocol: http, path: healthz, expect: {status: [200, 99], body: ok}}") == [
        at(16, 'healthchecks.web.path: "healthz" does not start with "/"'),
        at(16, 'healthchecks.web.expect.body: unknown key "body"'),
        at(16, "healthchecks.web.expect.status[1]: 99 is not in 100..599"),
    ]


def test_healthcheck_defaults() -> None:
    zone = load(replace("web: {protocol: http, port: 80}", "web: {protocol: https}"))
    check = zone.healthchecks["web"]
    assert (check.port, check.path, check.interval, check.timeout) == (443, "/", 10.0, 2.0)
    assert check.verify_tls is True


def test_healthcheck_durations_parse() -> None:
    spec = "web: {protocol: tcp, port: 22, interval: 1m, timeout: 1500ms, rise: 1, fall: 5}"
    zone = load(replace("web: {protocol: http, port: 80}", spec))
    check = zone.healthchecks["web"]
    assert (check.interval, check.timeout, check.rise, check.fall) == (60.0, 1.5, 1, 5)


def test_empty_optional_blocks() -> None:
    text = BASE.split("regions:")[0] + "regions:\nhealthchecks:\nrecords:\n"
    zone = load(text)
    assert (zone.regions, zone.healthchecks, zone.rrsets) == ({}, {}, ())
