"""Typed field readers that collect located problems instead of raising.

Every reader takes the value, the line it was written on and its dotted path,
and returns the converted value or ``None`` after recording a problem in the
:class:`Checker`. Validation goes on after a problem, so one run reports
everything wrong with a file.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name

from geostream_dns.config.yamlpos import PosDict, PosList
from geostream_dns.errors import Problem

TTL_MAX = 2147483647  # RFC 2181 section 8
DOC = "(file)"  # path for problems about the file as a whole

# One DNS label as zone files write it: letters, digits, '_', '-', '/' (RFC 2317
# classless reverse names) and the other printable characters real zones hold
# (a Route 53 '#'), with the characters that are special in zone files escaped
# (`\DDD` decimal or `\X`); "*" is handled by the callers.
_LABEL = re.compile(r"^(?:[!#%&'+,\-/0-9:<=>?A-Z\[\]^_`a-z{|}~]|\\[0-9]{3}|\\[^0-9])+$")


@dataclass
class Checker:
    """Collects the problems of one file, and its warnings: what is served as it is
    but deserves a look (a zone is refused for a problem, never for a warning)."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def add(self, line: int, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, line, path, message))

    def warn(self, line: int, path: str, message: str) -> None:
        self.warnings.append(Problem(self.source, line, path, message))


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def describe(value: Any) -> str:
    """A value as the problem message shows it: ``"abc"``, ``1.5``, ``true``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    return type(value).__name__


def check_keys(
    ck: Checker,
    mapping: PosDict,
    path: str,
    allowed: Iterable[str],
    required: Iterable[str] = (),
    line: int | None = None,
) -> None:
    """Report duplicate, unknown and missing keys of ``mapping``.

    A missing key is reported on ``line`` (the line of the key or item that
    holds the mapping) when given, else on the mapping's first line.
    """
    allowed = set(allowed)
    for key, line in mapping.duplicates:
        first = mapping.lines.get(key, mapping.line)
        ck.add(line, join(path, key), f"duplicate key (first given on line {first})")
    for key in mapping:
        if key not in allowed:
            ck.add(mapping.lines[key], join(path, key), f"unknown key {describe(key)}")
    for key in required:
        if key not in mapping:
            ck.add(line or mapping.line, join(path, key), "missing required key")


def as_map(ck: Checker, value: Any, line: int, path: str) -> PosDict | None:
    if isinstance(value, PosDict):
        return value
    ck.add(line, path, f"expected a mapping, got {describe(value)}")
    return None


def as_list(
    ck: Checker, value: Any, line: int, path: str, *, empty: bool = False
) -> PosList | None:
    if not isinstance(value, PosList):
        ck.add(line, path, f"expected a list, got {describe(value)}")
        return None
    if not value and not empty:
        ck.add(line, path, "must not be empty")
        return None
    return value


def as_str(ck: Checker, value: Any, line: int, path: str, *, empty: bool = False) -> str | None:
    if not isinstance(value, str):
        ck.add(line, path, f"expected a string, got {describe(value)}")
        return None
    if not value and not empty:
        ck.add(line, path, "must not be empty")
        return None
    return value


def as_int(ck: Checker, value: Any, line: int, path: str, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        ck.add(line, path, f"expected an integer, got {describe(value)}")
        return None
    if not lo <= value <= hi:
        ck.add(line, path, f"{value} is not in {lo}..{hi}")
        return None
    return value


def as_ttl(ck: Checker, value: Any, line: int, path: str) -> int | None:
    return as_int(ck, value, line, path, 0, TTL_MAX)


def as_number(
    ck: Checker, value: Any, line: int, path: str, lo: float | None = None, hi: float | None = None
) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        ck.add(line, path, f"expected a number, got {describe(value)}")
        return None
    if not math.isfinite(value):
        ck.add(line, path, f"expected a finite number, got {value}")
        return None
    if lo is not None and hi is not None and not lo <= value <= hi:
        ck.add(line, path, f"{value} is not in {lo:g}..{hi:g}")
        return None
    return float(value)


def as_bool(ck: Checker, value: Any, line: int, path: str) -> bool | None:
    if not isinstance(value, bool):
        ck.add(line, path, f"expected true or false, got {describe(value)}")
        return None
    return value


def choice(ck: Checker, value: Any, line: int, path: str, options: Iterable[str]) -> str | None:
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        ck.add(line, path, f"expected one of {', '.join(options)}, got {describe(value)}")
        return None
    return value


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def as_duration(ck: Checker, value: Any, line: int, path: str) -> float | None:
    """Seconds from ``5s``, ``500ms``, ``1m`` or a plain number of seconds; must be > 0."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds is None:
        ck.add(line, path, f'expected a duration like "5s" or "500ms", got {describe(value)}')
        return None
    if seconds <= 0:
        ck.add(line, path, f"{describe(value)} is not a positive duration")
        return None
    return seconds


def label_problem(labels: list[str]) -> str | None:
    """Why these relative labels are not a valid owner name, or None if they are."""
    for i, label in enumerate(labels):
        if label == "*":
            if i != 0:
                return '"*" is only allowed as the leftmost label'
            continue
        if not label:
            return "empty label"
        if "*" in label:
            return '"*" must be a whole label (as in *.example)'
        if not _LABEL.match(label):
            return f'"{label}" has characters a DNS label cannot have'
        if len(label.encode()) > 63:
            return f'label "{label}" is longer than 63 bytes'
    return None


def absolute_name(
    ck: Checker, value: Any, line: int, path: str, *, root: bool = False
) -> dns.name.Name | None:
    """An absolute name written with a trailing dot; ``"."`` only when ``root``."""
    text = as_str(ck, value, line, path)
    if text is None:
        return None
    if text == ".":
        if root:
            return dns.name.root
        ck.add(line, path, 'the root name "." is not allowed here')
        return None
    if not text.endswith("."):
        ck.add(line, path, f'expected an absolute name ending with ".", got "{text}"')
        return None
    why = label_problem(text[:-1].split("."))
    if why is None and "*" in text:
        why = '"*" is not allowed in a target name'
    if why is None:
        try:
            return dns.name.from_text(text.lower())
        except dns.name.NameTooLong:
            why = "longer than 255 bytes"
        except dns.exception.DNSException as exc:
            why = str(exc).rstrip(".").lower()
    ck.add(line, path, f'"{text}" is not a valid name: {why}')
    return None
