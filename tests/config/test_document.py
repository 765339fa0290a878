"""Canonical zone documents (config/document.py) and plans (config/plan.py): pure."""

from __future__ import annotations

import json
import pathlib

import pytest

from geostream_dns.config.document import (
    document_yaml,
    join_document,
    split_document,
    zone_document,
)
from geostream_dns.config.folder import file_name
from geostream_dns.config.loader import load_zone_data, load_zone_file, load_zone_text
from geostream_dns.config.plan import Plan, make_plan
from tests.config.helpers import BASE

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "zones"


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_sample_documents_are_a_fixed_point(path: pathlib.Path) -> None:
    doc = zone_document(load_zone_file(path))
    assert zone_document(load_zone_data(doc, "postgres:x")) == doc
    assert zone_document(load_zone_text(document_yaml(doc), path.name)) == doc
    assert json.loads(json.dumps(doc)) == doc  # plain data: storable as JSON
    origin, settings, record_sets = split_document(doc)
    rebuilt = join_document(origin, settings, [(name, e) for (name, _), e in record_sets.items()])
    assert zone_document(load_zone_data(rebuilt, "x")) == doc


def test_equivalent_spellings_give_one_document() -> None:
    a = load_zone_text(BASE + """\
records:
  '': {type: txt, value: hello}
  WWW: {type: A, values: [192.0.2.1]}
""", "example.com.yaml")
    b = load_zone_text(BASE.replace("web: {protocol: http, port: 80}",
                                    "web: {protocol: http, port: 80, interval: 10}") + """\
records:
  '@': [{type: TXT, ttl: 300, values: [hello]}]
  www: [{type: A, ttl: 300, value: 192.0.2.1}]
""", "example.com.yaml")
    assert zone_document(a) == zone_document(b)
    doc = zone_document(a)
    assert doc["records"] == {"@": {"type": "TXT", "ttl": 300, "value": "hello"},
                              "www": {"type": "A", "ttl": 300, "value": "192.0.2.1"}}
    assert doc["healthchecks"]["web"] == {
        "protocol": "http", "port": 80, "path": "/", "expect": {"status": [200]},
        "interval": "10s", "rise": 2, "fall": 3}
    assert file_name("example.com.") == "example.com.yaml"


def test_a_short_interval_with_the_default_timeout_round_trips() -> None:
    # `interval: 1s` alone is valid (the 2 s default timeout is not compared); writing
    # the default out would make the document invalid, so it stays implicit.
    zone = load_zone_text(BASE.replace("web: {protocol: http, port: 80}",
                                       "web: {protocol: tcp, port: 80, interval: 1s}"),
                          "example.com.yaml")
    doc = zone_document(zone)
    assert "timeout" not in doc["healthchecks"]["web"]
    assert zone_document(load_zone_data(doc, "x")) == doc


def _doc(records: str, ttl: int = 300) -> dict[str, object]:
    text = BASE.replace("ttl: 300", f"ttl: {ttl}", 1) + "records:\n" + records
    return zone_document(load_zone_text(text, "example.com.yaml"))


def test_plan_lines_counts_and_saved_form() -> None:
    old = _doc("  www: {type: A, value: 192.0.2.1}\n  gone: {type: TXT, value: bye}\n")
    new = _doc("  www: {type: A, value: 192.0.2.2}\n"
               "  api: {type: CNAME, ttl: 300, value: www.example.com.}\n", ttl=600)
    other = dict(old, zone="example.org.")
    plan = make_plan({"example.com.": old, "example.org.": other}, {"example.com.": new}, 7)
    assert plan.lines() == [
        "~ zone example.com.  ttl: 300 -> 600",
        "+   api.example.com. CNAME  ttl: 300, value: www.example.com.",
        "-   gone.example.com. TXT  ttl: 300, value: bye",
        "~   www.example.com. A  ttl: 300 -> 600; value: 192.0.2.1 -> 192.0.2.2",
        "  zone example.org. is in the database but not in the files: left alone "
        "(apply --delete-missing removes it)",
    ]
    assert plan.summary() == ("0 zones to add, 1 to change, 0 to remove; 1 record set to add, "
                              "1 to change, 1 to remove.")
    assert list(plan.targets) == ["example.com."]
    again = Plan.from_json(json.loads(plan.dumps()))
    assert (again.base_generation, again.targets, again.changes) == (7, plan.targets,
                                                                     plan.changes)
    deleting = make_plan({"example.org.": other}, {}, 7, delete_missing=True)
    assert deleting.targets == {"example.org.": None}
    assert deleting.counts()["zones_remove"] == 1 and deleting.counts()["records_remove"] == 2
    assert make_plan({"example.com.": old}, {"example.com.": old}, 7).empty


@pytest.mark.parametrize("data, message", [
    ({"zones": {}}, "not a saved GeoStream plan"),
    ({"format": "geostream-dns plan", "version": 9}, "version 9 is not supported"),
    ({"format": "geostream-dns plan", "version": 1, "targets": {}}, "damaged"),
])
def test_not_a_plan(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Plan.from_json(data)
