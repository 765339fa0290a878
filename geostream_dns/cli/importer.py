"""`geostream-dns import {bind,octodns,route53} FILE`: another tool's zone as GeoStream YAML.

The converted zone is validated by the zone loader before anything is written;
every record that could not be carried over as it was is named in a warning
(``FILE:LINE: message`` on standard error), and ``--strict`` turns warnings
into errors. The output goes to standard output, or to ``DIR/<zone>.yaml``
with ``--out DIR`` (an existing file is only replaced with ``--force``).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from geostream_dns.errors import Problem


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "import", help="convert a BIND zone file, an octoDNS YAML zone or Route 53 "
                       "list-resource-record-sets JSON to a GeoStream zone file",
        description="Convert another tool's zone to a GeoStream zone file. What cannot be "
                    "carried over is skipped with a warning naming the source line.")
    p.add_argument("format", choices=("bind", "octodns", "route53"))
    p.add_argument("file", type=pathlib.Path, help="the file to convert")
    p.add_argument("--zone", metavar="NAME",
                   help="the zone's name (bind: when the file has no $ORIGIN or absolute "
                        "SOA; octodns: default the file's name; route53: default the SOA's "
                        "name)")
    p.add_argument("--nameservers", action="append", default=[], metavar="NAME[,NAME...]",
                   help="the apex NS set, for sources that lack one or to replace theirs "
                        "(repeatable)")
    p.add_argument("--health-checks", type=pathlib.Path, metavar="FILE",
                   help="route53: `aws route53 list-health-checks` JSON, for the health checks "
                        "the record sets refer to")
    p.add_argument("--default-ttl", type=int, metavar="SECONDS",
                   help="octodns: the TTL of records that give none (octoDNS's default_ttl, "
                        "3600 unless set)")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("--out", type=pathlib.Path, metavar="DIR",
                   help="write DIR/<zone>.yaml instead of standard output")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters.files import atomic_write_text
    from geostream_dns.config.document import document_yaml, zone_document
    from geostream_dns.config.folder import file_name, unsafe_zone_name
    from geostream_dns.config.importers import (
        ConvertError,
        import_bind,
        import_octodns,
        import_route53,
    )
    from geostream_dns.config.loader import load_zone_data
    from geostream_dns.errors import ConfigError

    source = str(args.file)
    nameservers = [n.strip() for arg in args.nameservers for n in arg.split(",") if n.strip()]
    try:
        if args.format == "bind":
            imported = import_bind(args.file, args.zone, nameservers)
        elif args.format == "octodns":
            imported = import_octodns(args.file, args.zone, nameservers, ttl=args.default_ttl)
        else:
            imported = import_route53(args.file, args.zone, nameservers,
                                      health_checks=args.health_checks)
    except ConvertError as exc:
        return _fail(f"{source}: {exc}")
    origin = str(imported.document["zone"])
    warnings = [str(w) for w in imported.warnings]
    unsafe = unsafe_zone_name(origin)
    if unsafe is not None:
        return _fail(f"{source}: zone {origin!r}: {unsafe}")
    try:
        zone = load_zone_data(imported.document, file_name(origin))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {_located(problem, imported.lines, source)}", file=sys.stderr)
        return _fail(f"{source}: the converted zone is not valid ({len(exc.problems)} "
                     "problems above); nothing written")
    located = sorted(zone.warnings, key=lambda w: _source_line(w, imported.lines))
    warnings += [_located(w, imported.lines, source) for w in located]
    level = "error" if args.strict else "warning"
    for warning in warnings:
        print(f"{level}: {warning}", file=sys.stderr)
    if args.strict and warnings:
        return _fail(f"{source}: {len(warnings)} warnings and --strict; nothing written")
    text = (f"# Imported by geostream-dns from {args.file.name} ({args.format}), "
            f"{len(warnings)} warnings.\n" + document_yaml(zone_document(zone)))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target = args.out / file_name(origin)
    if target.exists() and not args.force:
        return _fail(f"{target} exists; give --force to replace it")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text, durable=False, mode=0o644)
    except OSError as exc:
        return _fail(f"{target}: {exc}")
    print(f"wrote {target} ({len(zone.rrsets)} record sets, {len(warnings)} warnings)",
          file=sys.stderr)
    return 0


def _fail(message: str) -> int:
    print(f"geostream-dns import: {message}", file=sys.stderr)
    return 1


def _source_line(problem: Problem, lines: dict[str, int]) -> int:
    """The source line the record (or setting) a problem of the converted zone is about
    came from."""
    path = problem.path
    if path.startswith("nameservers"):
        return lines.get("(nameservers)", 1)
    if path.startswith("soa"):
        return lines.get("(soa)", 1)
    rest = path.removeprefix("records.")
    for label in sorted(lines, key=len, reverse=True):  # "www[1]" before "www"
        if rest == label or rest.startswith((f"{label}[", f"{label}.")):
            return lines[label]
    return 1


def _located(problem: Problem, lines: dict[str, int], source: str) -> str:
    return f"{source}:{_source_line(problem, lines)}: {problem.path}: {problem.message}"
