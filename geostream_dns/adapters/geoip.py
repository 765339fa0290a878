"""The mmdb GeoIP reader: any GeoIP2/GeoLite2/DB-IP City or Country database.

Opened with the C extension in memory-mapped mode. Without `--geoip`, the
GeoLite2 City database bundled by the `maxminddb-geolite2` package is used
(built July 2018, published by MaxMind under CC BY-SA 4.0; see docs/geoip.md
for pointing at a current one).
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
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


def raw_lookup(reader: Any) -> RawLookup:
    """A function packed address -> Location for `core.geo.GeoLocator`."""
    ipv4_only = reader.metadata().ip_version == 4

    def lookup(address: bytes) -> Location:
        if len(address) == 4:
            ip: Any = ipaddress.IPv4Address(address)
        else:
            if ipv4_only:
                return make_location(None, None, None, None, None, 0)
            ip = ipaddress.IPv6Address(address)
        record, prefix_len = reader.get_with_prefix_len(ip)
        return location_from_record(record, prefix_len)

    return lookup
