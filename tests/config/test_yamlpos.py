from geostream_dns.config.yamlpos import PosDict, PosList, load

TEXT = """\
a: 1
b:
  - x
  - {y: 2}
c:
  d: 3
  d: 4
base: &base {k: 1}
merged:
  <<: *base
  z: 2
"""


def test_lines_of_keys_and_items() -> None:
    doc = load(TEXT)
    assert isinstance(doc, PosDict)
    assert doc.line == 1
    assert doc.lines["a"] == 1
    assert doc.lines["b"] == 2
    assert isinstance(doc["b"], PosList)
    assert doc["b"].lines == [3, 4]
    assert doc["b"][1].lines["y"] == 4
    assert doc["c"].line == 6


def test_duplicate_key_keeps_first_and_is_recorded() -> None:
    doc = load(TEXT)
    assert doc["c"] == {"d": 3}
    assert doc["c"].duplicates == [("d", 7)]


def test_merge_keys_still_work() -> None:
    doc = load(TEXT)
    assert doc["merged"] == {"k": 1, "z": 2}


def test_line_of_missing_key_is_the_mapping_line() -> None:
    doc = load(TEXT)
    assert doc["c"].line_of("nope") == 6
