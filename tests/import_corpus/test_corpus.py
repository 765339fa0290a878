"""Real-world zones imported, served and asked: the corpus figures hold.

Every Route 53 and octoDNS file imports, at least 95% of BIND files do, no
source record is lost without a warning naming it, and at least 99% of the
static records are answered by the real server exactly as in the source
(data and TTL), asked over TCP with dnspython.
"""

from __future__ import annotations

import pathlib

import pytest

from tests.import_corpus.corpus import Result, by_file, figures, import_all, manifest
from tests.import_corpus.serve import answer_check


@pytest.fixture(scope="module")
def results() -> list[Result]:
    return import_all()


def test_every_file_of_the_corpus_is_listed() -> None:
    listed = {e["file"] for entries in manifest().values() for e in entries}
    here = pathlib.Path(__file__).parent
    on_disk = {str(p.relative_to(here)) for kind in ("bind", "octodns", "route53")
               for p in (here / kind).iterdir() if p.is_file()}
    assert on_disk - listed == {"route53/shop.example.org.health-checks.json"}
    assert listed <= on_disk


def test_files_import(results: list[Result]) -> None:
    for fmt in ("octodns", "route53"):
        refused = [f"{r.file.name}: {r.error}" for r in results if r.fmt == fmt and not r.ok]
        assert refused == []
    bind = [r for r in results if r.fmt == "bind"]
    assert sum(r.ok for r in bind) / len(bind) >= 0.95, [r.error for r in bind if not r.ok]


def test_no_record_is_lost_silently(results: list[Result]) -> None:
    lost = {r.file.name: sorted(r.lost()) for r in results if r.ok and r.lost()}
    assert lost == {}
    # the accounting counts something: most records are carried over
    total = sum(len(r.source_keys) for r in results if r.ok)
    warned = sum(len(r.source_keys & r.warned_keys) for r in results if r.ok)
    assert total > 400 and warned < total * 0.1


def test_warnings_name_the_source_line(results: list[Result]) -> None:
    files = by_file(results)
    bind = files["bind/example.net.db"].imported
    assert bind is not None
    texts = [str(w) for w in bind.warnings]
    here = pathlib.Path(__file__).parent
    assert f"{here}/bind/example.net.db:26: A6 record skipped: obsolete type" in texts
    assert f"{here}/bind/example.net.db:39: legacy.example.net. NULL record skipped: " \
           "obsolete type" in texts
    octo = files["octodns/example.com.yaml"].imported
    assert octo is not None
    assert f"{here}/octodns/example.com.yaml:64: internal.example.com. A skipped: " \
           "octodns.ignored is set" in [str(w) for w in octo.warnings]


def test_imported_zones_answer_as_the_sources(results: list[Result], tmp_path: pathlib.Path,
                                               city_mmdb: pathlib.Path) -> None:
    answers = answer_check(results, tmp_path, city_mmdb)
    print("\n".join(figures(results, answers)))
    assert answers.asked > 300
    assert answers.exact / answers.asked >= 0.99, answers.wrong
