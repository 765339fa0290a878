"""The mmdb GeoIP reader: any GeoIP2/GeoLite2/DB-IP City or Country database.

Opened with the C extension in memory-mapped mode. Without `--geoip`, the
GeoLite2 City database bundled by the `maxminddb-geolite2` package is used
(built July 2018, published by MaxMind under CC BY-SA 4.0; see docs/geoip.md
for pointing at a current one).
"""

from __future__ import annotations

import os
import pathlib
import socket
from typing import Any

import maxminddb

from geostream_dns.core.geo import Location, RawLookup, make_location
from geostream_dns.errors import GeoStreamError


class GeoIPError(GeoStreamError):
    """The GeoIP database cannot be opened."""


def bundled_database() -> pathlib.Path:
    import _maxminddb_geolite2  # shipped by maxminddb-geolite2

    return pathlib.Path(os.path.dirname(_maxminddb_geolite2.__file__)) / "GeoLite2-City.mmdb"


def open_reader(path: pathlib.Path | None) -> Any:
    path = path or bundled_database()
    try:
        mode = maxminddb.MODE_MMAP_EXT
        return maxminddb.open_database(str(path), mode)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise GeoIPError(f"cannot open GeoIP database {path}: {exc}") from exc


def location_from_record(record: dict[str, Any] | None, prefix_len: int) -> Location:
    if not record:
        return make_location(None, None, None, None, None, prefix_len)
    continent = (record.get("continent") or {}).get("code")
    country = (record.get("country") or record.get("registered_country") or {}).get("iso_code")
    subdivisions = record.get("subdivisions") or ()
    subdivision = subdivisions[0].get("iso_code") if subdivisions else None
    location = record.get("location") or {}
    return make_location(continent, country, subdivision,
                         location.get("latitude"), location.get("longitude"), prefix_len)


INTERN_LIMIT = 500_000


def raw_lookup(reader: Any) -> RawLookup:
    """A function packed address -> Location for `core.geo.GeoLocator`.

    Locations are interned by (place, prefix length): a million memoized
    client networks share a few thousand Location objects, which keeps the
    memo's memory to its dictionary slots.
    """
    ipv4_only = reader.metadata().ip_version == 4
    get = reader.get_with_prefix_len
    interned: dict[tuple[Any, ...], Location] = {}

    def lookup(address: bytes) -> Location:
        if len(address) == 4:
            ip = socket.inet_ntop(socket.AF_INET, address)
        else:
            if ipv4_only:
                return make_location(None, None, None, None, None, 0)
            ip = socket.inet_ntop(socket.AF_INET6, address)
        record, prefix_len = get(ip)
        key = (_place(record), prefix_len)
        loc = interned.get(key)
        if loc is None:
            if len(interned) >= INTERN_LIMIT:
                interned.clear()
            loc = interned[key] = location_from_record(record, prefix_len)
        return loc

    return lookup


def _place(record: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """The parts of a record routing uses, as a hashable key."""
    if not record:
        return None
    location = record.get("location") or {}
    subdivisions: Any = record.get("subdivisions") or ({},)
    return ((record.get("continent") or {}).get("code"),
            (record.get("country") or record.get("registered_country") or {}).get("iso_code"),
            subdivisions[0].get("iso_code"), location.get("latitude"), location.get("longitude"))
