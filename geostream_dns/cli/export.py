"""`geostream-dns export [--zone Z] DIR`: write the database's zones back out as YAML."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.cli.database import (
    add_database_option,
    guarded,
    open_database,
    zone_origin,
)
from geostream_dns.config.plan import canonical
from geostream_dns.errors import GeoStreamError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export", help="write the database's zones as YAML zone files",
        description="Write each zone in the database to DIR/<zone>.yaml in the zone file "
                    "format; `apply DIR` of the result is an empty plan.")
    parser.add_argument("dir", type=pathlib.Path, metavar="DIR")
    parser.add_argument("--zone", action="append", metavar="ZONE",
                        help="export only this zone (repeatable)")
    add_database_option(parser)
    parser.set_defaults(func=run)


@guarded("export")
def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters import zone_db
    from geostream_dns.adapters.migrations import check_schema
    from geostream_dns.config.document import document_yaml, split_document
    from geostream_dns.config.folder import file_name

    wanted = [zone_origin(z) for z in args.zone] if args.zone else None
    with open_database(args) as db, db.read_snapshot() as conn:
        check_schema(conn, db.url)
        head = zone_db.head_generation(conn)
        stored = zone_db.stored_zones(conn, wanted)
    missing = sorted(set(wanted or ()) - set(stored))
    if missing:
        raise GeoStreamError(f"not in the database: {', '.join(missing)}")
    args.dir.mkdir(parents=True, exist_ok=True)
    for origin, zone in sorted(stored.items()):
        doc = canonical(origin, zone.document, zone.serial)
        header = (f"# Exported by geostream-dns from generation {head}; zone serial "
                  f"{zone.serial} (managed: it increases on every applied change).\n")
        try:
            path = args.dir / file_name(origin)
        except ValueError as exc:
            raise GeoStreamError(f"cannot export zone {exc}") from None
        _write(path, header + document_yaml(doc))
        records = len(split_document(doc)[2])
        print(f"wrote {path} ({records} record set{'s' if records != 1 else ''})")
    print(f"Exported {len(stored)} zone(s) at generation {head}.")
    sys.stdout.flush()
    return 0


def _write(path: pathlib.Path, text: str) -> None:
    """Atomically: a reader (or a zones-folder server) never sees half a file."""
    atomic_write_text(path, text, durable=False, mode=0o644)
