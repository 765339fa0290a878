"""Zone files -> validated :class:`~geostream_dns.core.model.Zone` objects.

Validation never stops at the first problem: every reader records what is
wrong with its part, with the line it was written on and its dotted path, and
carries on, so one run of ``geostream-dns check`` lists everything to fix.
A file with any problem yields no zone (:class:`ConfigError` with all of them).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import dns.exception
import dns.name
import yaml

from geostream_dns.config.fields import (
    DOC,
    Checker,
    absolute_name,
    as_bool,
    as_duration,
    as_int,
    as_list,
    as_map,
    as_number,
    as_str,
    as_ttl,
    check_keys,
    choice,
    describe,
    index,
    join,
    label_problem,
)
from geostream_dns.config.folder import ZONE_SUFFIXES, zone_files
from geostream_dns.config.records_spec import check_zone_shape, parse_records
from geostream_dns.config.yamlpos import MAX_BYTES, PosDict, YamlLimitError, load, positioned
from geostream_dns.core.model import DNSSEC_ALGORITHMS, Dnssec, HealthCheck, Region, Soa, Zone
from geostream_dns.errors import ConfigError, Problem

TOP_KEYS = ("zone", "ttl", "soa", "nameservers", "regions", "healthchecks", "records", "dnssec")
SOA_KEYS = ("primary", "email", "refresh", "retry", "expire", "negative_ttl")
SERIAL_MAX = 2**32 - 1
CHECK_KEYS = (
    "protocol",
    "port",
    "path",
    "host",
    "expect",
    "interval",
    "timeout",
    "rise",
    "fall",
    "verify_tls",
    "quorum",
)
OPTIONAL_BLOCKS = ("regions", "healthchecks", "records")
HTTP_ONLY = ("path", "host", "expect")
DEFAULT_PORTS = {"http": 80, "https": 443}


def load_zone_text(text: str, source: str, serial: int = 1) -> Zone:
    """Validate one zone file's text; ``source`` names the file in problems and its stem.

    Raises :class:`ConfigError` carrying every problem found, sorted by line.
    """
    ck = Checker(source)
    return _checked(ck, _zone(ck, text, source, serial))


def load_zone_data(data: Any, source: str, serial: int = 1) -> Zone:
    """Validate one zone given as plain data: the zone file shape as ``yaml.safe_load`` or
    ``json.loads`` gives it (the PostgreSQL store and saved plans). Problems carry line 0.

    Raises :class:`ConfigError` carrying every problem found.
    """
    ck = Checker(source)
    try:
        doc = positioned(data)
    except YamlLimitError as exc:
        raise ConfigError([Problem(source, 0, DOC, exc.problem)]) from None
    return _checked(ck, _zone_doc(ck, doc, source, serial))


def _checked(ck: Checker, zone: Zone | None) -> Zone:
    warnings = sorted(ck.warnings, key=lambda p: p.line)
    if ck.problems or zone is None:
        raise ConfigError(sorted(ck.problems, key=lambda p: p.line), warnings)
    return replace(zone, warnings=tuple(warnings))


def load_zone_file(path: pathlib.Path) -> Zone:
    """Validate one zone file; its serial is its modification time in seconds."""
    source = str(path)
    try:
        st = path.stat()
        if st.st_size > MAX_BYTES:
            raise ConfigError([Problem(source, 1, DOC, f"the file is larger than "
                                                       f"{MAX_BYTES // (1024 * 1024)} MiB")])
        text = path.read_text(encoding="utf-8")
        serial = int(st.st_mtime)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [Problem(source, 1, DOC, f"cannot read the file: {_reason(exc)}")]
        ) from exc
    return load_zone_text(text, source, serial)


@dataclass
class LoadReport:
    """What loading zone files found: the valid zones, the problems of the others, and
    the warnings of all of them (zones with warnings are valid and served)."""

    zones: list[Zone] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)


def load_zones_dir(paths: Iterable[pathlib.Path]) -> tuple[list[Zone], list[Problem]]:
    """Load zone files and directories of them (``*.yaml``, ``*.yml``, sorted).

    Returns the valid zones and the problems of all the others, including a
    zone defined by two files (the later file is the one reported and skipped).
    Warnings are on each zone (``Zone.warnings``); see :func:`load_zones_report`.
    """
    report = load_zones_report(paths)
    return report.zones, report.problems


def load_zones_report(paths: Iterable[pathlib.Path]) -> LoadReport:
    """:func:`load_zones_dir` with the warnings of every file, valid or not."""
    report = LoadReport()
    zones, problems, warnings = report.zones, report.problems, report.warnings
    files, missing = zone_files(paths)
    for path in missing:
        problems.append(Problem(str(path), 1, DOC, "no such file or directory"))
    seen_files: set[pathlib.Path] = set()
    origins: dict[str, str] = {}
    for file in files:
        resolved = file.resolve()
        if resolved in seen_files:
            continue
        seen_files.add(resolved)
        try:
            zone = load_zone_file(file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            warnings.extend(exc.warnings)
            continue
        warnings.extend(zone.warnings)
        if zone.origin in origins:
            problems.append(
                Problem(
                    zone.source,
                    _zone_line(file),
                    "zone",
                    f"{zone.origin} is already defined in {origins[zone.origin]}",
                )
            )
            continue
        origins[zone.origin] = zone.source
        zones.append(zone)
    return report


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _zone_line(file: pathlib.Path) -> int:
    """The line of the top-level ``zone:`` key, else 1 (used after a clean load)."""
    try:
        doc = load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return 1
    return doc.line_of("zone") if isinstance(doc, PosDict) else 1


def _zone(ck: Checker, text: str, source: str, serial: int) -> Zone | None:
    try:
        doc = load(text)
    except YamlLimitError as exc:
        ck.add(exc.problem_mark.line + 1, DOC, f"refused: {exc.problem}")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem, context = getattr(exc, "problem", None), getattr(exc, "context", None)
        reason = ", ".join(filter(None, (context, problem))) or str(exc)
        ck.add(line, DOC, f"invalid YAML: {reason}")
        return None
    return _zone_doc(ck, doc, source, serial)


def _zone_doc(ck: Checker, doc: Any, source: str, serial: int) -> Zone | None:
    if doc is None:
        ck.add(1, DOC, "the file is empty")
        return None
    if not isinstance(doc, PosDict):
        ck.add(1, DOC, f"expected a mapping of zone settings, got {describe(doc)}")
        return None
    check_keys(ck, doc, "", TOP_KEYS, ("ttl", "soa", "nameservers"))
    for key in OPTIONAL_BLOCKS:  # `records:` with nothing under it is an empty block
        if key in doc and doc[key] is None:
            del doc[key]
    origin = _origin(ck, doc, source)
    ttl = as_ttl(ck, doc["ttl"], doc.line_of("ttl"), "ttl") if "ttl" in doc else None
    soa = _soa(ck, doc["soa"], doc.line_of("soa")) if "soa" in doc else None
    nameservers = _nameservers(ck, doc) if "nameservers" in doc else []
    regions = _regions(ck, doc["regions"], doc.line_of("regions")) if "regions" in doc else {}
    checks: dict[str, HealthCheck] = {}
    if "healthchecks" in doc:
        checks = _healthchecks(ck, doc["healthchecks"], doc.line_of("healthchecks"))
    dnssec = _dnssec(ck, doc["dnssec"], doc.line_of("dnssec")) if "dnssec" in doc else None
    if origin is None:
        return None  # records are relative to the zone: nothing more to check
    drafts = []
    if "records" in doc:
        check_names = set(checks) | _written_keys(doc.get("healthchecks"))
        drafts = parse_records(
            ck, doc["records"], doc.line_of("records"), origin, ttl or 0, regions, check_names
        )
    check_zone_shape(ck, drafts, origin, nameservers)
    if ck.problems or ttl is None or soa is None:
        return None
    rrsets = sorted((d.rrset for d in drafts if d.rrset), key=lambda r: (r.name, r.rtype))
    return Zone(
        origin=origin.to_text(),
        ttl=ttl,
        soa=soa,
        nameservers=tuple(ns.to_text() for ns, _, _ in nameservers),
        regions=regions,
        healthchecks=checks,
        rrsets=tuple(rrsets),
        serial=max(serial, soa.serial or 0),
        source=source,
        dnssec=dnssec,
    )


_ALGORITHM_ALIASES = {"ecdsap256sha256": "ecdsap256sha256", "13": "ecdsap256sha256",
                      "ed25519": "ed25519", "15": "ed25519"}


def _dnssec(ck: Checker, value: Any, line: int) -> Dnssec | None:
    """`dnssec: {algorithm: ..., keys: ...}`; `dnssec: true` takes the defaults."""
    path = "dnssec"
    if value is True:
        return Dnssec()
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    before = len(ck.problems)
    check_keys(ck, m, path, ("algorithm", "keys"), (), line)
    algorithm = "ecdsap256sha256"
    if "algorithm" in m:
        written = m["algorithm"]
        # as DNSSEC tools write them: the mnemonic in any case, or the number
        named = _ALGORITHM_ALIASES.get(str(written).lower()) if not isinstance(
            written, bool) else None
        algorithm = named or choice(ck, written, m.line_of("algorithm"),
                                    join(path, "algorithm"), DNSSEC_ALGORITHMS) or algorithm
    keys = "ksk-zsk"
    if "keys" in m:
        keys = choice(ck, m["keys"], m.line_of("keys"), join(path, "keys"),
                      ("ksk-zsk", "csk")) or keys
    if len(ck.problems) != before:
        return None
    return Dnssec(algorithm, keys)  # type: ignore[arg-type]


def guess_origin(path: pathlib.Path) -> str | None:
    """The zone a (broken) zone file is meant to hold: its `zone:` if that can be
    read, else its file name; None when neither is a domain name."""
    text: Any = None
    try:
        if path.stat().st_size <= MAX_BYTES:
            doc = load(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("zone"), str):
                text = doc["zone"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    for candidate in (text, _file_zone_name(str(path))):
        if not candidate:
            continue
        try:
            return dns.name.from_text(candidate).to_text().lower()
        except dns.exception.DNSException:
            continue
    return None


def _written_keys(value: Any) -> set[str]:
    """Names of health checks as written, valid or not (avoids 'unknown' noise)."""
    return {k for k in value if isinstance(k, str)} if isinstance(value, dict) else set()


def _file_zone_name(source: str) -> str | None:
    name = pathlib.PurePath(source).name
    for suffix in ZONE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)].rstrip(".").lower()
    return None


def _origin(ck: Checker, doc: PosDict, source: str) -> dns.name.Name | None:
    from_file = _file_zone_name(source)
    file_name = pathlib.PurePath(source).name
    line, path = doc.line_of("zone"), "zone"
    if "zone" not in doc:
        if not from_file:
            ck.add(
                doc.line, path, f'missing required key (cannot tell the zone from "{file_name}")'
            )
            return None
        text = from_file
    else:
        written = as_str(ck, doc["zone"], line, path)
        if written is None:
            return None
        text = written.lower().removesuffix(".")
        if from_file is not None and text != from_file:
            ck.add(line, path, f'"{written}" does not match the file name "{file_name}"')
            return None
    why = label_problem(text.split(".")) if text else "the root zone cannot be served"
    if why is None and "*" in text:
        why = '"*" is not allowed in a zone name'
    if why is None:
        try:
            return dns.name.from_text(text)
        except dns.name.NameTooLong:
            why = "longer than 255 bytes"
    ck.add(line, path, f'"{text}" is not a valid zone name: {why}')
    return None


def _soa(ck: Checker, value: Any, line: int) -> Soa | None:
    path = "soa"
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    before = len(ck.problems)
    check_keys(ck, m, path, (*SOA_KEYS, "serial"), SOA_KEYS, line)
    primary = None
    if "primary" in m:
        primary = absolute_name(ck, m["primary"], m.line_of("primary"), join(path, "primary"))
    email = (
        _email(ck, m["email"], m.line_of("email"), join(path, "email")) if "email" in m else None
    )
    timers = {
        key: as_ttl(ck, m[key], m.line_of(key), join(path, key)) for key in SOA_KEYS[2:] if key in m
    }
    serial = None
    if "serial" in m:
        serial = as_int(ck, m["serial"], m.line_of("serial"), join(path, "serial"), 1, SERIAL_MAX)
    if len(ck.problems) != before or primary is None or email is None:
        return None
    return Soa(primary=primary.to_text(), email=email, serial=serial,
               **timers)  # type: ignore[arg-type]


def _email(ck: Checker, value: Any, line: int, path: str) -> str | None:
    text = as_str(ck, value, line, path)
    if text is None:
        return None
    local, at, domain = text.partition("@")
    domain = domain.removesuffix(".")
    if (
        not at
        or not local
        or any(c.isspace() or c in "@\\" for c in local)
        or not domain
        or label_problem(domain.split(".")) is not None
        or "*" in domain
    ):
        ck.add(line, path, f'"{text}" is not an address like hostmaster@example.com')
        return None
    return text.lower()


def _nameservers(ck: Checker, doc: PosDict) -> list[tuple[dns.name.Name, int, str]]:
    path = "nameservers"
    items = as_list(ck, doc["nameservers"], doc.line_of(path), path)
    out: list[tuple[dns.name.Name, int, str]] = []
    for i, item in enumerate(items or ()):
        ipath, iline = index(path, i), items.lines[i]  # type: ignore[union-attr]
        name = absolute_name(ck, item, iline, ipath)
        if name is None:
            continue
        if any(name == seen for seen, _, _ in out):
            ck.add(iline, ipath, f"{name} is listed twice")
            continue
        out.append((name, iline, ipath))
    return out


def _regions(ck: Checker, value: Any, line: int) -> dict[str, Region]:
    path = "regions"
    regions: dict[str, Region] = {}
    m = as_map(ck, value, line, path)
    if m is None:
        return regions
    check_keys(ck, m, path, m.keys())  # duplicates only
    for name, spec in m.items():
        rpath, rline = join(path, name), m.line_of(name)
        if not isinstance(name, str):
            ck.add(rline, rpath, f"expected a region name, got {describe(name)}")
            continue
        r = as_map(ck, spec, rline, rpath)
        if r is None:
            continue
        check_keys(ck, r, rpath, ("lat", "lon"), ("lat", "lon"), rline)
        lat = (
            as_number(ck, r["lat"], r.line_of("lat"), join(rpath, "lat"), -90, 90)
            if "lat" in r
            else None
        )
        lon = (
            as_number(ck, r["lon"], r.line_of("lon"), join(rpath, "lon"), -180, 180)
            if "lon" in r
            else None
        )
        if lat is not None and lon is not None:
            regions[name] = Region(name, lat, lon)
    return regions


def _healthchecks(ck: Checker, value: Any, line: int) -> dict[str, HealthCheck]:
    path = "healthchecks"
    checks: dict[str, HealthCheck] = {}
    m = as_map(ck, value, line, path)
    if m is None:
        return checks
    check_keys(ck, m, path, m.keys())  # duplicates only
    for name, spec in m.items():
        cpath, cline = join(path, name), m.line_of(name)
        if not isinstance(name, str):
            ck.add(cline, cpath, f"expected a health check name, got {describe(name)}")
            continue
        check = _healthcheck(ck, name, spec, cline, cpath)
        if check is not None:
            checks[name] = check
    return checks


def _healthcheck(ck: Checker, name: str, value: Any, line: int, path: str) -> HealthCheck | None:
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    before = len(ck.problems)
    check_keys(ck, m, path, CHECK_KEYS, ("protocol",), line)

    def at(key: str) -> tuple[Any, int, str]:
        return m[key], m.line_of(key), join(path, key)

    protocol = choice(ck, *at("protocol"), ("http", "https", "tcp")) if "protocol" in m else None
    fields: dict[str, Any] = {}
    if "port" in m:
        fields["port"] = as_int(ck, *at("port"), 1, 65535)
    elif protocol == "tcp":
        ck.add(line, join(path, "port"), "missing required key (a tcp check has no default port)")
    elif protocol is not None:
        fields["port"] = DEFAULT_PORTS[protocol]
    for key in HTTP_ONLY:
        if key in m and protocol == "tcp":
            ck.add(m.line_of(key), join(path, key), f"{key} only applies to http and https checks")
    if "path" in m:
        p = as_str(ck, *at("path"))
        if p is not None and not p.startswith("/"):
            ck.add(m.line_of("path"), join(path, "path"), f'"{p}" does not start with "/"')
        fields["path"] = p
    if "host" in m:
        host = as_str(ck, *at("host"))
        if host is not None and (label_problem(host.removesuffix(".").split(".")) or "*" in host):
            ck.add(m.line_of("host"), join(path, "host"), f'"{host}" is not a host name')
        fields["host"] = host
    if "expect" in m:
        fields.update(_expect(ck, *at("expect")))
    for key in ("interval", "timeout"):
        if key in m:
            fields[key] = as_duration(ck, *at(key))
    for key in ("rise", "fall"):
        if key in m:
            fields[key] = as_int(ck, *at(key), 1, 100)
    if "quorum" in m:
        fields["quorum"] = as_int(ck, *at("quorum"), 1, 100)
    if "verify_tls" in m:
        fields["verify_tls"] = as_bool(ck, *at("verify_tls"))
        if protocol in ("http", "tcp"):
            ck.add(
                m.line_of("verify_tls"),
                join(path, "verify_tls"),
                "verify_tls only applies to https checks",
            )
    interval, timeout = fields.get("interval") or 10.0, fields.get("timeout") or 2.0
    if "timeout" not in m and fields.get("interval"):
        # The default timeout (2 s) never outlasts the interval: `interval: 1s`
        # alone means a 1 s timeout.
        fields["timeout"] = min(2.0, interval)
    if "timeout" in m and fields.get("timeout") and timeout > interval:
        ck.add(
            m.line_of("timeout"),
            join(path, "timeout"),
            f"the timeout ({timeout:g}s) is longer than the interval ({interval:g}s)",
        )
    if len(ck.problems) != before or protocol is None:
        return None
    return HealthCheck(name=name, protocol=protocol, **fields)  # type: ignore[arg-type]


def _expect(ck: Checker, value: Any, line: int, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = as_map(ck, value, line, path)
    if m is None:
        return out
    check_keys(ck, m, path, ("status", "body_contains"))
    if "status" in m:
        spath = join(path, "status")
        items = as_list(ck, m["status"], m.line_of("status"), spath)
        codes = [
            as_int(ck, item, items.lines[i], index(spath, i), 100, 599)  # type: ignore[union-attr]
            for i, item in enumerate(items or ())
        ]
        out["expect_status"] = tuple(c for c in codes if c is not None)
    if "body_contains" in m:
        out["expect_body"] = as_str(
            ck, m["body_contains"], m.line_of("body_contains"), join(path, "body_contains")
        )
    return out
