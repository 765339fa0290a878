"""`geostream-dns migrate`: bring the database schema up to date (idempotent)."""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

from geostream_dns.cli.database import add_database_option, database_url, guarded


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "migrate", help="bring the database schema up to date",
        description="Apply the pending migrations/NNNN_*.sql files, each in its own "
                    "transaction. Safe to run again, and from several places at once.")
    add_database_option(parser)
    parser.add_argument("--dir", type=pathlib.Path, metavar="DIR",
                        help="migrations folder (GEOSTREAM_MIGRATIONS; default: the "
                             "project's migrations/)")
    parser.set_defaults(func=run)


@guarded("migrate")
def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters.migrations import migrate

    result = migrate(database_url(args), args.dir)
    for warning in result.warnings:
        print(f"warning: {warning}")
    for migration in result.applied:
        print(f"applied {migration.name}")
    if result.applied:
        print(f"schema is at version {result.version}")
    else:
        print(f"schema is up to date (version {result.version})")
    return 0
