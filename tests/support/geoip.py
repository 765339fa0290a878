"""The deterministic GeoIP City database every test locates clients with.

`write_mmdb` writes `CITY` (or any networks) with mmdb-writer; tests read it
through the production adapter, so they see exactly the prefix lengths a real
MaxMind reader reports. Servers started by tests get it with `--geoip`,
never the bundled GeoLite2 file, so answers do not change with its releases.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

from mmdb_writer import MmdbF64, MMDBWriter
from netaddr import IPSet

# network -> (continent, country, subdivision, lat, lon); None: not in the record
Place = tuple[str, str, str | None, float | None, float | None]

CITY: dict[str, Place] = {
    "192.0.2.0/24": ("NA", "US", "VA", 38.9, -77.4),  # Virginia
    "198.51.100.0/25": ("EU", "DE", "HE", 50.1, 8.7),  # Frankfurt (a /25: split below /24)
    "198.51.100.128/25": ("EU", "FR", "IDF", 48.86, 2.35),  # Paris
    "203.0.113.0/24": ("AS", "SG", None, 1.35, 103.8),  # Singapore
    "198.18.0.0/15": ("OC", "AU", "NSW", -33.87, 151.21),  # Sydney
    "2001:db8:1::/48": ("EU", "DE", "BY", 48.14, 11.58),  # Munich
    "2001:db8:2::/48": ("NA", "US", "NY", 40.71, -74.0),  # New York
    "2001:db8:3::/48": ("AS", "JP", "13", 35.68, 139.69),  # Tokyo
    "2001:db8:4::/49": ("EU", "DE", "HE", 50.1, 8.7),  # a /49 split below the /48 key
    "2001:db8:4:8000::/49": ("EU", "FR", "IDF", 48.86, 2.35),
}


def city_record(place: Place) -> dict[str, object]:
    continent, country, subdivision, lat, lon = place
    record: dict[str, object] = {
        "continent": {"code": continent},
        "country": {"iso_code": country},
    }
    if subdivision is not None:
        record["subdivisions"] = [{"iso_code": subdivision}]
    if lat is not None and lon is not None:
        record["location"] = {"latitude": MmdbF64(lat), "longitude": MmdbF64(lon)}
    return record


def write_mmdb(path: pathlib.Path, networks: Mapping[str, Place] = CITY) -> pathlib.Path:
    """A City-like database holding `networks` (IPv4 and IPv6 in one tree)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    for network, place in networks.items():
        writer.insert_network(IPSet([network]), city_record(place))
    writer.to_db_file(str(path))
    return path
