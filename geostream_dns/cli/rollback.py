"""`geostream-dns rollback GENERATION`: re-apply the zones as they were at a generation,
as a new generation (history is never rewritten)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from geostream_dns.cli.database import (
    add_author_option,
    add_database_option,
    guarded,
    open_database,
)
from geostream_dns.config.plan import canonical, current_documents
from geostream_dns.errors import GeoStreamError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rollback", help="re-apply the zones as they were at a generation, as a new one",
        description="Make the database hold exactly the zones it held right after "
                    "GENERATION was applied (zones created since are removed), recorded "
                    "as a new generation.")
    parser.add_argument("generation", type=int, metavar="GENERATION")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan without applying it")
    add_author_option(parser)
    add_database_option(parser)
    parser.set_defaults(func=run)


@guarded("rollback")
def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters import zone_db
    from geostream_dns.adapters.migrations import check_schema
    from geostream_dns.cli.database import author
    from geostream_dns.config.plan import make_plan

    with open_database(args) as db, db.transaction() as conn:
        check_schema(conn, db.url)
        head = zone_db.lock_head(conn)
        if not zone_db.generation_exists(conn, args.generation):
            raise GeoStreamError(f"there is no generation {args.generation} "
                                 f"(the database is at generation {head})")
        then = {origin: canonical(origin, doc)
                for origin, doc in zone_db.documents_at(conn, args.generation).items()}
        current = current_documents(zone_db.stored_zones(conn), then)
        plan = make_plan(current, then, head, delete_missing=True)
        for line in plan.lines():
            print(line)
        print(plan.summary())
        if plan.empty:
            print(f"The database already holds the zones of generation {args.generation}.")
            return 0
        if args.dry_run:
            return 0
        generation = zone_db.write_plan(
            conn, plan, author(args), kind="rollback",
            summary=f"rollback to {args.generation}: {plan.history_summary()}")
    print(f"Rolled back to generation {args.generation} as generation {generation}.")
    sys.stdout.flush()
    return 0
