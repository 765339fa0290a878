"""Shared zone snippets for the config tests.

``BASE`` is the standard zone header of tests/support/zones.py: 16 lines, the
line numbers the zone tests name. ``records()`` puts a records block after
it, so line N of the snippet is file line ``R + N``.
"""

from __future__ import annotations

from geostream_dns.config.loader import load_zone_text
from geostream_dns.core.model import Zone
from geostream_dns.errors import ConfigError
from tests.support.zones import records_line, zone_header, zone_text

SOURCE = "zones/example.com.yaml"

BASE = zone_header()
assert BASE.count("\n") == 16

R = records_line()  # the line of `records:`; snippet line N is file line R + N


def records(snippet: str) -> str:
    return zone_text(snippet)


def problems(text: str, source: str = SOURCE) -> list[str]:
    """Every problem line for ``text``; fails the test if the text is valid."""
    try:
        load_zone_text(text, source)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    raise AssertionError("expected problems, the zone is valid")


def warnings(text: str, source: str = SOURCE) -> list[str]:
    """Every warning line for ``text``; fails the test if the text is invalid."""
    return [str(w) for w in load_zone_text(text, source).warnings]


def record_warnings(snippet: str) -> list[str]:
    return warnings(records(snippet))


def record_problems(snippet: str) -> list[str]:
    return problems(records(snippet))


def load(text: str, source: str = SOURCE) -> Zone:
    return load_zone_text(text, source)


def at(line: int, rest: str) -> str:
    return f"{SOURCE}:{line}: {rest}"
