"""Hostile YAML refused with a located error: alias bombs, self-referring aliases,
deep nesting and oversize files; deep plain data (JSON) alike."""

from __future__ import annotations

import pathlib

import pytest

from geostream_dns.config import yamlpos
from geostream_dns.config.loader import load_zone_data, load_zone_file, load_zone_text
from geostream_dns.errors import ConfigError
from tests.support.zones import zone_text

BOMB_LINES = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] + [
    f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
BILLION_LAUGHS = "zone: example.com.\nttl: 300\n" + "\n".join(BOMB_LINES) + "\n"


def problems(text: str, source: str = "zones/example.com.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_zone_text(text, source)
    return [str(p) for p in caught.value.problems]


def test_billion_laughs_is_refused_at_the_line_of_the_bomb() -> None:
    [message] = problems(BILLION_LAUGHS)
    # line 7: `e`, the first alias level that alone expands past the allowance
    assert message.startswith("zones/example.com.yaml:7: (file): refused: aliases expand "
                              "the document to 490,329,068 nodes"), message


def test_alias_that_refers_to_itself() -> None:
    assert problems("zone: example.com.\nx: &a [1, [2, *a]]\n") == [
        "zones/example.com.yaml:2: (file): refused: an alias refers to the node that "
        "contains it"]


def test_ordinary_aliases_and_merge_keys_are_fine() -> None:
    text = zone_text("""\
        www: &web {type: A, values: [192.0.2.10, 192.0.2.11]}
        api: *web
        app:
          <<: *web
          ttl: 60
        """)
    zone = load_zone_text(text, "example.com.yaml")
    assert {r.name for r in zone.rrsets} >= {"www.example.com.", "api.example.com.",
                                              "app.example.com."}


def test_deep_nesting_is_refused_at_the_line_where_it_goes_too_deep() -> None:
    deep = "".join(" " * i + f"k{i}:\n" for i in range(80)) + " " * 80 + "v: 1\n"
    [message] = problems("zone: example.com.\nttl: 300\nrecords:\n" + "".join(
        "  " + line + "\n" for line in deep.splitlines()))
    # the mapping at depth 65 holds k63 (top level is depth 1, `records` depth 2)
    assert message == ("zones/example.com.yaml:67: (file): refused: nested more than 64 "
                       "levels deep"), message
    flow = "zone: example.com.\nrecords:\n  www: " + "[" * 900 + "]" * 900 + "\n"
    [message] = problems(flow)
    assert message.endswith("refused: nested more than 64 levels deep")


def test_oversize_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "example.com.yaml"
    path.write_text(zone_text("www: {type: A, value: 192.0.2.1}\n") + "#" * 2000 + "\n")
    monkeypatch.setattr("geostream_dns.config.loader.MAX_BYTES", 1000)
    with pytest.raises(ConfigError) as caught:
        load_zone_file(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1: (file): the file is larger than 0 MiB"]
    monkeypatch.setattr(yamlpos, "MAX_BYTES", 1000)
    assert problems("zone: example.com.\n" + "#" * 2000) == [
        "zones/example.com.yaml:1: (file): refused: the file is larger than 0 MiB"]


def test_deep_plain_data_is_refused() -> None:
    data: object = "x"
    for _ in range(10_000):
        data = [data]
    with pytest.raises(ConfigError) as caught:
        load_zone_data({"zone": "example.com.", "records": {"www": data}}, "api/example.com")
    assert [str(p) for p in caught.value.problems] == [
        "api/example.com:0: (file): nested more than 64 levels deep"]
