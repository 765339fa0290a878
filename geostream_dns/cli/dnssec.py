"""`geostream-dns dnssec ds ZONE` and `geostream-dns dnssec rollover ZONE --zsk|--ksk`."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time
from typing import Any

from geostream_dns.cli.database import guarded
from geostream_dns.config.settings import DEFAULT_STATE_DIR
from geostream_dns.errors import GeoStreamError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dnssec", help="DNSSEC: the DS records for the parent; key rollovers",
        description="The DS records to give a signed zone's parent, and key rollovers. "
                    "Keys live in PostgreSQL (DATABASE_URL) in production mode, in the "
                    "state dir in embedded mode.")
    sub = parser.add_subparsers(dest="dnssec_command", metavar="ACTION", required=True)
    ds = sub.add_parser("ds", help="print the DS records to give the parent",
                        description="Print the DS records (SHA-256) of the zone's key-signing "
                                    "keys, as zone file lines.")
    ds.add_argument("zone", metavar="ZONE")
    ds.add_argument("--ttl", type=int, default=3600, metavar="SECONDS",
                    help="the TTL written on each line (default 3600)")
    ds.add_argument("--unbound", action="store_true",
                    help="print Unbound trust-anchor lines instead")
    ds.add_argument("--json", action="store_true", help="the keys and DS records as JSON")
    roll = sub.add_parser("rollover", help="start a key rollover",
                          description="Start a ZSK pre-publish rollover (--zsk; a zone "
                                      "with a combined key rolls it this way) or a KSK "
                                      "double-DS rollover (--ksk). Running servers take "
                                      "each step when the TTLs that protect it have passed.")
    roll.add_argument("zone", metavar="ZONE")
    kind = roll.add_mutually_exclusive_group(required=True)
    kind.add_argument("--zsk", action="store_true", help="roll the zone-signing key")
    kind.add_argument("--ksk", action="store_true", help="roll the key-signing key")
    roll.add_argument("--ds-ttl", type=int, default=86400, metavar="SECONDS",
                      help="KSK (and CSK) rollover: how long the parent's DS is cached "
                           "(default 86400)")
    for p in (ds, roll):
        p.add_argument("--state-dir", metavar="DIR",
                       help="embedded mode: the server's state dir (GEOSTREAM_STATE_DIR, "
                            f"default {DEFAULT_STATE_DIR})")
        p.add_argument("--database-url", metavar="URL",
                       help="production mode: PostgreSQL URL (DATABASE_URL)")
    parser.set_defaults(func=run)


def _store(args: argparse.Namespace) -> Any:
    from geostream_dns.adapters.dnssec_keys import make_key_store

    state_dir = pathlib.Path(args.state_dir or os.environ.get("GEOSTREAM_STATE_DIR")
                             or DEFAULT_STATE_DIR)
    return make_key_store(args.database_url or os.environ.get("DATABASE_URL"), state_dir)


@guarded("dnssec")
def run(args: argparse.Namespace) -> int:
    import dns.name

    from geostream_dns.adapters.dnssec_keys import rollover_view, start_rollover, zone_keys
    from geostream_dns.core.dnssec import ds_records

    zone = dns.name.from_text(args.zone).to_text().lower()
    store = _store(args)
    records = store.records(zone)
    if not records:
        raise GeoStreamError(f"{zone} has no DNSSEC keys: a server makes them when it first "
                             "loads the zone with dnssec:")
    if args.dnssec_command == "rollover":
        kind = "zsk" if args.zsk else "ksk"
        records = store.update(zone, lambda current: start_rollover(
            current, kind, int(time.time()), args.ds_ttl, store.secret))
        print(f"{zone}: {kind} rollover started")
        for view in rollover_view(records, store.secret):
            print(f"  {view['role']} {view['tag']} {view['state']}")
        return 0
    keys = zone_keys(records, store.secret, private=False)
    origin = dns.name.from_text(zone)
    ds = [rd.to_text() for rd in ds_records(origin, keys)]
    if args.json:
        print(json.dumps({"zone": zone, "ds": ds, "keys": rollover_view(records, store.secret)}))
    elif args.unbound:
        for text in ds:
            print(f'trust-anchor: "{zone} DS {text}"')
    else:
        for text in ds:
            print(f"{zone}\t{args.ttl}\tIN\tDS\t{text}")
    return 0
