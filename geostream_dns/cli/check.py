"""`geostream-dns check PATH...`: validate zone files, print every problem."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from geostream_dns.config.loader import load_zones_report


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="validate zone files",
        description=(
            "Validate zone files (directories: every *.yaml and *.yml in them). "
            "Prints one `file:line: field: message` line per problem; exits 1 on any. "
            "Warnings (`file:line: warning: field: message`: what is served as it is but "
            "deserves a look, like data below a delegation) do not change the exit status."
        ),
    )
    parser.add_argument("paths", nargs="+", type=pathlib.Path, metavar="PATH")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = load_zones_report(args.paths)
    lines = [(p.file, p.line, 1, str(p)) for p in report.problems]
    lines += [(w.file, w.line, 0, f"{w.file}:{w.line}: warning: {w.path}: {w.message}")
              for w in report.warnings]
    for *_, text in sorted(lines, key=lambda item: item[:3]):
        print(text)
    if report.problems:
        return 1
    if not report.zones:
        # As `plan` and `apply`: most likely a wrong path or a failed checkout.
        print("no zone files (*.yaml, *.yml) in " + ", ".join(str(p) for p in args.paths),
              file=sys.stderr)
        return 1
    records = sum(len(zone.rrsets) for zone in report.zones)
    warned = f" ({_plural(len(report.warnings), 'warning')})" if report.warnings else ""
    print(f"{_plural(len(report.zones), 'zone')}, {_plural(records, 'record set')}: OK{warned}")
    sys.stdout.flush()
    return 0


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
