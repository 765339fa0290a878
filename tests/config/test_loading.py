"""Loading files and folders, the sample zones, line numbers and `check`."""

from __future__ import annotations

import argparse
import os
import pathlib

import pytest

from geostream_dns.cli import check
from geostream_dns.config.loader import load_zone_file, load_zone_text, load_zones_dir
from geostream_dns.errors import ConfigError
from tests.config.helpers import BASE, records

ROOT = pathlib.Path(__file__).resolve().parents[2]
ZONES = ROOT / "zones"
# The fallback that closes the us-east-1 <-> eu-central-1 loop in the sample.
SAMPLE_LOOP = "          fallback: us-east-1\n"


def sample_without_loop() -> str:
    text = (ZONES / "example.com.yaml").read_text()
    at = text.index("        eu-central-1:\n")
    cut = text.index(SAMPLE_LOOP, at)
    return text[:cut] + text[cut + len(SAMPLE_LOOP) :]


def test_sample_example_org_is_valid() -> None:
    zone = load_zone_file(ZONES / "example.org.yaml")
    assert zone.origin == "example.org."
    assert zone.nameservers == ("ns1.example.com.", "ns2.example.com.")
    assert len(zone.rrsets) == 5


def test_sample_zones_are_valid() -> None:
    zones, problems = load_zones_dir([ZONES])
    assert [str(p) for p in problems] == []
    assert [z.origin for z in zones] == ["example.com.", "example.org."]


def test_sample_example_com_without_the_loop() -> None:
    zone = load_zone_text(sample_without_loop(), "zones/example.com.yaml", serial=7)
    assert (zone.origin, zone.ttl, zone.serial, zone.source) == (
        "example.com.",
        300,
        7,
        "zones/example.com.yaml",
    )
    assert len(zone.rrsets) == 21
    assert zone.soa.rname == "hostmaster.example.com."
    by_key = {(r.name, r.rtype): r for r in zone.rrsets}
    assert by_key[("example.com.", "ALIAS")].alias == "www.example.com."
    assert by_key[("example.com.", "ALIAS")].rdatas == ()
    www = by_key[("www.example.com.", "A")]
    assert (www.ttl, www.line) == (60, 56)  # line of the `www:` label
    assert www.routing is not None
    assert [rule.line for rule in www.routing.rules] == [79, 81, 83]
    assert [rule.kind for rule in www.routing.rules] == ["geos", "subnets", "nearest"]
    assert by_key[("ns2.example.com.", "AAAA")].line == 41  # line of the list item
    assert by_key[("static.example.com.", "A")].ttl == 3600


def test_problem_lines_point_at_the_field(tmp_path: pathlib.Path) -> None:
    text = records(
        """\
        www:
          - type: A
            value: 192.0.2.1
          - type: AAAA
            ttl: 60
            value: 192.0.2.1
        """
    )
    with pytest.raises(ConfigError) as info:
        load_zone_text(text, "zones/example.com.yaml")
    (problem,) = info.value.problems
    assert (problem.line, problem.path) == (23, "records.www[1].value")
    assert text.splitlines()[problem.line - 1].strip() == "value: 192.0.2.1"


def test_load_zone_file_uses_mtime_and_path_as_given(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "example.com.yaml"
    path.write_text(BASE)
    os.utime(path, (1_700_000_000.5, 1_700_000_000.5))
    zone = load_zone_file(path)
    assert (zone.serial, zone.source) == (1_700_000_000, str(path))


def test_unreadable_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "example.com.yaml"
    path.write_bytes(b"zone: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_zone_file(path)
    assert str(info.value).startswith(f"{path}:1: (file): cannot read the file: ")


def test_load_zones_dir(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "example.com.yaml").write_text(BASE)
    org = BASE.replace("example.com.\n", "example.org\n", 1)
    (tmp_path / "a" / "example.org.yml").write_text(org)
    (tmp_path / "a" / "notes.txt").write_text("not a zone")
    (tmp_path / "a" / "bad.example.yaml").write_text(BASE + "foo: 1\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "example.com..yaml").write_text(BASE.replace("zone: example.com.\n", ""))
    zones, problems = load_zones_dir(
        [tmp_path / "a", tmp_path / "b", tmp_path / "a" / "example.com.yaml", tmp_path / "nope"]
    )
    assert [z.origin for z in zones] == ["example.com.", "example.org."]
    a, b = tmp_path / "a", tmp_path / "b"
    assert [str(p) for p in problems] == [
        f"{tmp_path / 'nope'}:1: (file): no such file or directory",
        f'{a / "bad.example.yaml"}:1: zone: "example.com." does not match the file name '
        '"bad.example.yaml"',
        f'{a / "bad.example.yaml"}:17: foo: unknown key "foo"',
        f"{b / 'example.com..yaml'}:1: zone: example.com. is already defined in "
        f"{a / 'example.com.yaml'}",
    ]


def run_check(paths: list[pathlib.Path]) -> int:
    parser = argparse.ArgumentParser()
    check.register(parser.add_subparsers())
    args = parser.parse_args(["check", *map(str, paths)])
    code: int = args.func(args)
    return code


def test_check_ok(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "example.com.yaml").write_text(sample_without_loop())
    assert run_check([tmp_path, ZONES / "example.org.yaml"]) == 0
    assert capsys.readouterr().out == "2 zones, 26 record sets: OK\n"


def test_check_prints_every_problem_sorted(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "b.example.yaml").write_text("zone: b.example\n")
    (tmp_path / "a.example.yaml").write_text(
        BASE.replace("example.com.\n", "a.example\n", 1) + "x: 1\n"
    )
    assert run_check([tmp_path]) == 1
    a, b = tmp_path / "a.example.yaml", tmp_path / "b.example.yaml"
    assert capsys.readouterr().out.splitlines() == [
        f'{a}:17: x: unknown key "x"',
        f"{b}:1: ttl: missing required key",
        f"{b}:1: soa: missing required key",
        f"{b}:1: nameservers: missing required key",
    ]


def test_check_prints_warnings_and_passes(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zone = tmp_path / "example.com.yaml"
    zone.write_text(BASE.replace("ns2.example.net.]", "ns2.example.com.]") + "records:\n"
                    "  shop: {type: NS, value: ns1.example.net.}\n"
                    "  www.shop: {type: A, value: 192.0.2.1}\n"
                    "  txt.shop: {type: TXT, value: hello}\n")
    assert run_check([tmp_path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{zone}:10: warning: nameservers[1]: ns2.example.com. is inside the zone but has no "
        "A or AAAA record",
        f"{zone}:20: warning: records.txt.shop: TXT data below the delegation shop.example.com. "
        "is not served: queries get the referral",
        "1 zone, 3 record sets: OK (2 warnings)",
    ]


def test_default_timeout_never_outlasts_the_interval() -> None:
    text = (ZONES / "example.org.yaml").read_text().replace(
        "records:",
        "healthchecks:\n  fast: {protocol: tcp, port: 443, interval: 1s}\n"
        "  slow: {protocol: tcp, port: 443, interval: 30s}\nrecords:")
    zone = load_zone_text(text, "zones/example.org.yaml")
    assert zone.healthchecks["fast"].timeout == 1.0
    assert zone.healthchecks["slow"].timeout == 2.0
