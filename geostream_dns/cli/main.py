"""`geostream-dns` entry point: one module per command, each with `register()`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Command modules in the order `--help` lists them. Each module defines
# `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
COMMANDS = ("serve", "check", "plan", "apply", "history", "rollback", "export", "migrate",
            "importer", "explain", "drain", "servers", "dnssec", "latency")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geostream-dns",
        description="Self-hosted, programmable, authoritative geo-DNS server.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"geostream_dns.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
