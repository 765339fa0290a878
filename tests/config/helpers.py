"""Shared zone snippets for the config tests.

``BASE`` is a valid zone header of exactly 16 lines; ``records()`` puts a
records block after it, so line N of the snippet is file line ``R + N``.
"""

from __future__ import annotations

import textwrap

from geostream_dns.config.loader import load_zone_text
from geostream_dns.core.model import Zone
from geostream_dns.errors import ConfigError

SOURCE = "zones/example.com.yaml"

BASE = """\
zone: example.com.
ttl: 300
soa:
  primary: ns1.example.net.
  email: hostmaster@example.com
  refresh: 7200
  retry: 900
  expire: 1209600
  negative_ttl: 300
nameservers: [ns1.example.net., ns2.example.net.]
regions:
  us: {lat: 38.9, lon: -77.4}
  eu: {lat: 50.1, lon: 8.7}
  na: {lat: 40.7, lon: -74.0}
healthchecks:
  web: {protocol: http, port: 80}
"""
assert BASE.count("\n") == 16

R = 17  # the line of `records:`; snippet line N is file line R + N


def records(snippet: str) -> str:
    return BASE + "records:\n" + textwrap.indent(textwrap.dedent(snippet), "  ")


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
