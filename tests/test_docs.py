"""The docs and the tests stand alone: they never send the reader to a document
outside this repository.

Every file under docs/ and tests/, and README.md, is searched for references
to such documents: the product contract and the house style by their file or
short names, a path into the folder they were shared in, and numbered
tracker issues. Each passage should say in its own words what the product
does and why. The patterns are written so that this file does not match them
itself; the second test plants each kind of reference in a file of its own
and checks that the same search finds exactly those lines, and no ordinary
words (spec, style, a CAA `issue` tag, shared state).
"""

from __future__ import annotations

import pathlib
import re

from tests.support.harness import ROOT

# (what it is, pattern); character classes keep this file from matching itself.
REFERENCES = [
    ("the contract's file", re.compile(r"\bSPE[C]\.md\b")),
    ("the style guide's file", re.compile(r"\bSTYL[E]\.md\b")),
    ("the contract by name", re.compile(r"\bSPE[C]\b")),  # with a section sign, or 's
    # a path into the shared folder, absolute or to a file in it (a word pair with a
    # slash, as in shared or exclusive locks, is no path)
    ("the shared folder", re.compile(r"/share[d]/|\bshare[d]/[\w.-]+\.\w+")),
    ("a numbered issue", re.compile(r"\bissue[s]?\s+#?\d+", re.IGNORECASE)),
]


def outside_references(path: pathlib.Path) -> list[str]:
    """`path:line: what: text` for each line of a text file with a reference (none in
    a file that is not UTF-8 text)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in REFERENCES:
            if pattern.search(line):
                found.append(f"{path}:{number}: {what}: {line.strip()}")
                break  # one report a line
    return found


def project_texts() -> list[pathlib.Path]:
    """README.md and every file under docs/ and tests/ (caches left out)."""
    files = [ROOT / "README.md"]
    for folder in (ROOT / "docs", ROOT / "tests"):
        files += sorted(p for p in folder.rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    return files


def test_docs_and_tests_cite_nothing_outside_the_repository() -> None:
    files = project_texts()
    assert ROOT / "docs" / "architecture.md" in files and pathlib.Path(__file__) in files
    found = [line for path in files for line in outside_references(path)]
    assert found == [], "\n".join(found)


def test_the_search_finds_each_kind_of_reference_and_nothing_else(
        tmp_path: pathlib.Path) -> None:
    spec, style = "SP" + "EC", "ST" + "YLE"
    planted = [f"see {spec}.md for the rules",
               f"as {style}.md puts it",
               f"the answer {spec} §4.4 asks for",
               f"the {spec}'s own example",
               f"read /work/{'shared'}/notes first",
               f"the brief in {'shared'}/brief.md",
               f"not built yet (a later {'issue'} 12)",
               f"fixed by {'Issue'} #7"]
    ordinary = ["the spec of RFC 1035 and its specification",
                "house style: short lines",
                '@ IN CAA 0 issue "letsencrypt.org"',
                "- {type: CAA, value: {flags: 0, tag: issue, value: ca.example.net}}",
                "issues with the prober, 3 of them",
                "state shared by every server; shared/exclusive locks"]
    path = tmp_path / "planted.md"
    path.write_text("\n".join(planted + ordinary) + "\n")
    found = outside_references(path)
    assert [int(line.split(":")[1]) for line in found] == list(range(1, len(planted) + 1))
