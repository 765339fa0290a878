"""Where the configuration comes from: the store a server polls for zones.

A store has `poll() -> (changed, problems)`, called from a worker thread every
`reload_interval` seconds, and `zones() -> (zones, standing problems)`. It may
also say which generation it holds (`generation`, None when the store does not
number its changes: the App then counts reloads itself). A problem whose path is
``UNREACHABLE`` says the store cannot reach its source (it keeps serving what it
holds, and logs the outage itself); any other is a zone that failed validation.
"""

from __future__ import annotations

from typing import Protocol

from geostream_dns.adapters.zones_folder import ZonesFolder
from geostream_dns.config.model import Zone
from geostream_dns.config.settings import Settings
from geostream_dns.errors import Problem

UNREACHABLE = "(database)"  # Problem.path of "the store cannot reach its source"


class Store(Protocol):
    generation: int | None

    def poll(self) -> tuple[bool, list[Problem]]: ...

    def zones(self) -> tuple[list[Zone], list[Problem]]: ...


def make_store(settings: Settings) -> Store:
    """Production mode (``DATABASE_URL`` set): PostgreSQL; embedded mode: the zones folder."""
    if settings.database_url:
        from geostream_dns.adapters.postgres_store import PostgresStore

        return PostgresStore(settings.database_url, settings.state_dir)
    return ZonesFolder(settings.zones, settings.state_dir)
