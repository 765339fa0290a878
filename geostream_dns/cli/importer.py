"""`geostream-dns import {bind,octodns,route53} FILE`: another tool's zone as GeoStream YAML."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "import", help="convert a BIND zone file, an octoDNS YAML zone or Route 53 "
                       "list-resource-record-sets JSON to a GeoStream zone file")
    p.add_argument("format", choices=("bind", "octodns", "route53"))
    p.add_argument("file", type=pathlib.Path, help="the file to convert ('-' for stdin)")
    p.add_argument("--zone", metavar="NAME",
                   help="the zone's name (required for octodns; bind and route53 read it "
                        "from $ORIGIN / the SOA when absent)")
    p.add_argument("--out", type=pathlib.Path, metavar="PATH",
                   help="write here (a folder gets <zone>.yaml) instead of standard output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters.files import atomic_write_text
    from geostream_dns.config.convert import ConvertError, from_bind, from_octodns, from_route53
    from geostream_dns.config.document import document_yaml, zone_document
    from geostream_dns.config.folder import file_name
    from geostream_dns.config.loader import load_zone_data
    from geostream_dns.errors import ConfigError

    try:
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"geostream-dns import: {args.file}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.format == "bind":
            doc, warnings = from_bind(text, args.zone)
        elif args.format == "route53":
            doc, warnings = from_route53(text, args.zone)
        else:
            if not args.zone:
                print("geostream-dns import: octodns files do not name their zone: give "
                      "--zone NAME", file=sys.stderr)
                return 2
            doc, warnings = from_octodns(text, args.zone)
    except ConvertError as exc:
        print(f"geostream-dns import: {args.file}: {exc}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    origin = str(doc["zone"])
    try:
        zone = load_zone_data(doc, f"import/{file_name(origin)}")
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"geostream-dns import: the converted zone is not valid ({len(exc.problems)} "
              "problems above); nothing written", file=sys.stderr)
        return 1
    text = document_yaml(zone_document(zone))
    if args.out is None:
        sys.stdout.write(text)
        return 0
    target = args.out / file_name(origin) if args.out.is_dir() else args.out
    atomic_write_text(target, text, durable=False, mode=0o644)
    print(f"wrote {target} ({len(zone.rrsets)} record sets, {len(warnings)} warnings)",
          file=sys.stderr)
    return 0
