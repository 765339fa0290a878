"""Reading AWS exports: ``list-resource-record-sets`` and ``list-health-checks`` JSON.

JSON has no line numbers, so the line each element of an array starts on is
found by decoding the array element by element: warnings name the line of
the record set (or health check) they are about.
"""

from __future__ import annotations

import json
import pathlib
import re

import dns.exception
import dns.name

from geostream_dns.config.document import Document
from geostream_dns.config.importers.draft import ConvertError

_OCTAL = re.compile(rb"\\([0-7]{3})")


def read(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"cannot read: {exc}") from None


def name_of(text: str) -> dns.name.Name:
    """A Route 53 name (absolute, trailing dot optional, octal escapes) as a Name."""
    raw = text.strip().encode()
    if raw in (b"", b"."):
        return dns.name.root
    raw = raw[:-1] if raw.endswith(b".") and not raw.endswith(b"\\.") else raw
    labels = [_OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), label).lower()
              for label in raw.split(b".")]
    try:
        return dns.name.Name([*labels, b""])
    except dns.exception.DNSException as exc:
        raise ConvertError(f'"{text}" is not a name: {exc}') from None


def record_sets(text: str) -> list[tuple[int, Document]]:
    """(line, record set) for each element of ``ResourceRecordSets``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConvertError(f"not JSON: {exc}") from None
    sets = data.get("ResourceRecordSets") if isinstance(data, dict) else data
    if not isinstance(sets, list) or not all(isinstance(s, dict) for s in sets):
        raise ConvertError("not list-resource-record-sets JSON: no ResourceRecordSets list")
    lines = _element_lines(text, "ResourceRecordSets", len(sets))
    return list(zip(lines, sets, strict=True))


def _element_lines(text: str, key: str, count: int) -> list[int]:
    """The line each element of the array under ``key`` starts on."""
    decoder = json.JSONDecoder()
    start = text.find("[", text.find(f'"{key}"') + 1)
    if start < 0:
        return [1] * count
    lines: list[int] = []
    i = start + 1
    while len(lines) < count:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        lines.append(text.count("\n", 0, i) + 1)
        try:
            _, i = decoder.raw_decode(text, i)
        except ValueError:
            return lines + [lines[-1]] * (count - len(lines))
    return lines


class Checks(dict[str, "str | None"]):
    """Route 53 health check id -> the name of the zone's health check (None: a kind
    GeoStream cannot run; the values it guarded are treated as healthy); ``ips`` holds
    the address a check probes when it names one."""

    def __init__(self) -> None:
        super().__init__()
        self.ips: dict[str, str] = {}
        self.specs: dict[str, Document] = {}  # by zone name, added to the zone when used
        self.unusable: dict[str, tuple[int, str]] = {}  # id -> (line, why)


def health_checks(path: pathlib.Path) -> Checks:
    """The checks of a ``list-health-checks`` export, as the zone's health checks (they
    join a zone when one of its record sets uses them)."""
    text = read(path)
    try:
        checks = json.loads(text)["HealthChecks"]
        lines = _element_lines(text, "HealthChecks", len(checks))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConvertError(f"{path}: not list-health-checks JSON: {exc!r}") from None
    names = Checks()
    for line, check in zip(lines, checks, strict=True):
        ident = str(check.get("Id", ""))
        config = check.get("HealthCheckConfig") or {}
        kind = str(config.get("Type", ""))
        protocol = {"HTTP": "http", "HTTPS": "https", "HTTP_STR_MATCH": "http",
                    "HTTPS_STR_MATCH": "https", "TCP": "tcp"}.get(kind)
        if protocol is None:
            names[ident] = None
            names.unusable[ident] = (line, f"a {kind} check: only HTTP, HTTPS and TCP checks "
                                           "are carried over")
            continue
        name = "r53-" + re.sub(r"[^a-z0-9-]+", "-", ident.lower()).strip("-")[:40]
        spec: Document = {"protocol": protocol,
                          "port": int(config.get("Port") or (443 if protocol == "https" else 80))}
        if protocol != "tcp":
            spec["path"] = config.get("ResourcePath") or "/"
            if config.get("FullyQualifiedDomainName"):
                spec["host"] = str(config["FullyQualifiedDomainName"]).rstrip(".")
            if config.get("SearchString"):
                spec["expect"] = {"body_contains": config["SearchString"]}
        spec["interval"] = f"{int(config.get('RequestInterval') or 30)}s"
        threshold = int(config.get("FailureThreshold") or 3)
        spec.update(rise=threshold, fall=threshold)
        if config.get("IPAddress"):
            names.ips[name] = str(config["IPAddress"])
        names.specs[name] = spec
        names[ident] = name
    return names
