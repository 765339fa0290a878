"""`geostream-dns history [GENERATION]`: the applied changes, newest first."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from geostream_dns.cli.database import add_database_option, guarded, open_database
from geostream_dns.errors import GeoStreamError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history", help="list applied changes (generation, time, author, summary)",
        description="List the generations applied to the database, newest first; given "
                    "a GENERATION, print every change it made.")
    parser.add_argument("generation", nargs="?", type=int, metavar="GENERATION")
    parser.add_argument("--limit", type=_count, default=50, metavar="N",
                        help="show the N newest generations (default 50; 0 for all)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_database_option(parser)
    parser.set_defaults(func=run)


@guarded("history")
def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters import zone_db
    from geostream_dns.adapters.migrations import check_schema

    with open_database(args) as db, db.transaction() as conn:
        check_schema(conn, db.url)
        if args.generation is not None:
            if not zone_db.generation_exists(conn, args.generation):
                raise GeoStreamError(f"there is no generation {args.generation}")
            changes = zone_db.generation_diff(conn, args.generation)
            entries = zone_db.history(conn, 1, up_to=args.generation)
        else:
            changes = []
            entries = zone_db.history(conn, args.limit or None)
    if args.json:
        for e in entries:
            print(json.dumps({"generation": e.generation, "time": e.applied_at.isoformat(),
                              "author": e.author, "kind": e.kind, "summary": e.summary,
                              **({"changes": [c.to_json() for c in changes]}
                                 if args.generation is not None else {})},
                             ensure_ascii=False))
        return 0
    if not entries:
        print("No changes applied yet.")
        return 0
    author_width = max(6, *(len(e.author) for e in entries))
    print(f"{'GENERATION':>10}  {'TIME (UTC)':19}  {'AUTHOR':{author_width}}  "
          f"{'KIND':8}  SUMMARY")
    for e in entries:
        when = e.applied_at.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{e.generation:>10}  {when:19}  {e.author:{author_width}}  {e.kind:8}  "
              f"{e.summary}")
    for change in changes:
        print(change.describe())
    sys.stdout.flush()
    return 0


def _count(text: str) -> int:
    """A count for --limit: 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (0 shows every generation)")
    return value
