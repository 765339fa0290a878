"""`geostream-dns check PATH...`: validate zone files, print every problem."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from geostream_dns.config.loader import load_zones_dir


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="validate zone files",
        description=(
            "Validate zone files (directories: every *.yaml and *.yml in them). "
            "Prints one `file:line: field: message` line per problem; exits 1 on any."
        ),
    )
    parser.add_argument("paths", nargs="+", type=pathlib.Path, metavar="PATH")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    zones, problems = load_zones_dir(args.paths)
    for problem in sorted(problems, key=lambda p: (p.file, p.line)):
        print(problem)
    if problems:
        return 1
    records = sum(len(zone.rrsets) for zone in zones)
    print(f"{_plural(len(zones), 'zone')}, {_plural(records, 'record set')}: OK")
    sys.stdout.flush()
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
