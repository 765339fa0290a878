"""`geostream-dns apply PATH...` or `apply FILE`: write zone files (or a saved plan) to
the database as one new generation, in one transaction."""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
from typing import Any

from geostream_dns.cli.database import (
    UsageError,
    add_author_option,
    add_database_option,
    author,
    guarded,
    open_database,
    wanted_documents,
)
from geostream_dns.cli.fleet_options import add_redis_options, redis_link, report_wait, wait_for
from geostream_dns.config.document import zone_document
from geostream_dns.config.folder import ZONE_SUFFIXES
from geostream_dns.config.plan import current_documents
from geostream_dns.errors import GeoStreamError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "apply", help="write zone files, or a saved plan, to the database",
        description="Validate zone files and write what changed to the database in one "
                    "transaction, as a new generation that every server picks up within a "
                    "second. Given one file that is not .yaml/.yml, apply that saved plan "
                    "(from `plan --out`), refused if the database has changed since.")
    parser.add_argument("paths", nargs="+", type=pathlib.Path, metavar="PATH")
    parser.add_argument("--delete-missing", action="store_true",
                        help="remove zones that are in the database but in none of the files")
    parser.add_argument("--force", action="store_true",
                        help="apply even a plan that changes or deletes more than 30%% of a "
                             "zone's record sets, or deletes more than 30%% of the zones")
    parser.add_argument("--wait", nargs="?", type=float, const=60.0, default=None,
                        metavar="SECONDS",
                        help="then wait (default 60 s) until every live server serves the "
                             "new generation; exit 3 if the wait runs out (reads REDIS_URL)")
    add_redis_options(parser)
    add_author_option(parser)
    add_database_option(parser)
    parser.set_defaults(func=run)


def is_saved_plan(paths: list[pathlib.Path]) -> bool:
    return len(paths) == 1 and paths[0].is_file() and paths[0].suffix not in ZONE_SUFFIXES


@guarded("apply")
def run(args: argparse.Namespace) -> int:
    link = redis_link(args, "apply --wait") if args.wait is not None else None
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait takes a number of seconds, 0 or more")
    if is_saved_plan(args.paths):
        if args.delete_missing:
            raise UsageError("a saved plan already says which zones it removes; "
                             "--delete-missing goes with `plan`")
        generation = apply_saved(args, args.paths[0])
    else:
        generation = apply_files(args)
    if link is None or generation is None:
        return 0
    status, waited = asyncio.run(wait_for(link, generation, args.wait))
    return report_wait(status, waited)


def apply_files(args: argparse.Namespace) -> int | None:
    """Apply zone files; the new generation (None when nothing changed)."""
    from geostream_dns.adapters import zone_db
    from geostream_dns.adapters.migrations import check_schema
    from geostream_dns.config.plan import make_plan

    wanted = wanted_documents(args.paths)
    with open_database(args) as db, db.transaction() as conn:
        check_schema(conn, db.url)
        head = zone_db.lock_head(conn)
        current = current_documents(zone_db.stored_zones(conn), wanted)
        plan = make_plan(current, wanted, head, args.delete_missing)
        _show(plan)
        if plan.empty:
            return None
        _guard(plan, current, len(current), args.force)
        generation = zone_db.write_plan(conn, plan, author(args))
    print(f"Applied generation {generation}.")
    sys.stdout.flush()
    return int(generation)


def apply_saved(args: argparse.Namespace, path: pathlib.Path) -> int | None:
    """Apply a saved plan; the new generation (None when nothing changed)."""
    from geostream_dns.adapters import zone_db
    from geostream_dns.adapters.migrations import check_schema
    from geostream_dns.config.loader import load_zone_data
    from geostream_dns.config.plan import Plan, plan_targets

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GeoStreamError(f"{path}: cannot read it: {exc}") from exc
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise GeoStreamError(
            f"{path} is not a saved GeoStream plan (write one with `plan --out FILE`; "
            f"zone files end in .yaml or .yml)") from exc
    try:
        saved = Plan.from_json(data)
    except ValueError as exc:
        raise GeoStreamError(f"{path}: {exc}") from exc
    targets: dict[str, Any] = {}
    for origin, doc in saved.targets.items():
        if doc is None:
            targets[origin] = None
            continue
        # A plan file is data from outside: validate it as strictly as zone files.
        zone = load_zone_data(doc, f"{path}:{origin}")
        if zone.origin != origin:
            raise GeoStreamError(f"{path}: the document for {origin} is zone {zone.origin}")
        targets[origin] = zone_document(zone)
    with open_database(args) as db, db.transaction() as conn:
        check_schema(conn, db.url)
        head = zone_db.lock_head(conn)
        if head != saved.base_generation:
            raise zone_db.StalePlan(
                f"{path} was computed against generation {saved.base_generation}, but the "
                f"database is now at generation {head}: it has changed since; "
                f"run plan again")
        current = current_documents(zone_db.stored_zones(conn, list(targets)), {
            origin: doc for origin, doc in targets.items() if doc is not None})
        plan = plan_targets(current, targets, head)
        _show(plan)
        if plan.empty:
            return None
        _guard(plan, current, zone_db.zone_count(conn), args.force)
        generation = zone_db.write_plan(conn, plan, author(args))
    print(f"Applied generation {generation} from {path}.")
    sys.stdout.flush()
    return int(generation)


def _guard(plan: Any, current: dict[str, Any], zones_held: int, force: bool) -> None:
    from geostream_dns.config.plan import UnsafePlan, check_thresholds

    try:
        check_thresholds(plan, current, zones_held)
    except UnsafePlan as exc:
        if not force:
            raise GeoStreamError(f"refused, nothing applied: {exc} (a truncated checkout? "
                                 "give --force if this is meant)") from None
        print(f"--force: applying although it {exc}")


def _show(plan: Any) -> None:
    for line in plan.lines():
        print(line)
    print(plan.summary())
    sys.stdout.flush()
