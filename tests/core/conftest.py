"""Fixtures for the core tests: lookups in the deterministic GeoIP City database.

The database (tests/support/geoip.py, written once per session) is read
through the production adapter (`adapters.geoip.open_reader` + `raw_lookup`),
so the tests see exactly the prefix lengths a real MaxMind reader reports.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from geostream_dns.adapters.geoip import open_reader, raw_lookup
from geostream_dns.core.geo import GeoLocator, RawLookup


@pytest.fixture(scope="session")
def city_raw(city_mmdb: pathlib.Path) -> RawLookup:
    """The raw (un-memoized) lookup of the test City database."""
    return raw_lookup(open_reader(city_mmdb))


@pytest.fixture
def make_geo(city_raw: RawLookup) -> Callable[..., GeoLocator]:
    """A fresh memoizing locator over the test database (own memo per call)."""

    def make(limit: int = 1_000) -> GeoLocator:
        return GeoLocator(city_raw, limit=limit)

    return make
