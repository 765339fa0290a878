"""`geostream-dns plan PATH... [--out FILE]`: what `apply` would change in the database."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from geostream_dns.cli.database import (
    add_database_option,
    guarded,
    open_database,
    wanted_documents,
)
from geostream_dns.config.plan import current_documents

EXIT_NO_CHANGES = 0
EXIT_CHANGES = 2


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan", help="diff zone files against the database",
        description="Validate zone files (as `check` does) and print the zones and record "
                    "sets `apply` would add (+), change (~) and remove (-). Exit 0 when "
                    "there is nothing to change, 2 when there is, 1 on errors.")
    parser.add_argument("paths", nargs="+", type=pathlib.Path, metavar="PATH")
    parser.add_argument("--out", type=pathlib.Path, metavar="FILE",
                        help="save the plan; `apply FILE` applies exactly it, unless the "
                             "database changed since")
    parser.add_argument("--delete-missing", action="store_true",
                        help="plan to remove zones that are in the database but in none "
                             "of the files")
    add_database_option(parser)
    parser.set_defaults(func=run)


@guarded("plan")
def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters import zone_db
    from geostream_dns.adapters.migrations import check_schema
    from geostream_dns.config.plan import make_plan

    wanted = wanted_documents(args.paths)
    with open_database(args) as db, db.read_snapshot() as conn:
        check_schema(conn, db.url)
        head = zone_db.head_generation(conn)
        current = current_documents(zone_db.stored_zones(conn), wanted)
    plan = make_plan(current, wanted, head, args.delete_missing)
    print(f"Comparing {len(wanted)} zone file(s) with generation {head} of the database.")
    for line in plan.lines():
        print(line)
    print(("Plan: " if not plan.empty else "") + plan.summary())
    if args.out is not None:
        args.out.write_text(plan.dumps(), encoding="utf-8")
        print(f"Saved the plan to {args.out}; apply exactly it with: "
              f"geostream-dns apply {args.out}")
    sys.stdout.flush()
    return EXIT_NO_CHANGES if plan.empty else EXIT_CHANGES
