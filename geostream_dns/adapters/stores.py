"""Where the configuration comes from: the store a server polls for zones.

A store has `poll() -> (changed, problems)`, called from a worker thread every
`reload_interval` seconds, and `zones() -> (zones, standing problems)`. It may
also say which generation it holds (`generation`, None when the store does not
number its changes: the App then counts reloads itself).
"""

from __future__ import annotations

from typing import Protocol

from geostream_dns.adapters.zones_folder import ZonesFolder
from geostream_dns.config.model import Zone
from geostream_dns.config.settings import Settings
from geostream_dns.errors import Problem


class Store(Protocol):
    generation: int | None

    def poll(self) -> tuple[bool, list[Problem]]: ...

    def zones(self) -> tuple[list[Zone], list[Problem]]: ...


def make_store(settings: Settings) -> Store:
    """Embedded mode: the zones folder."""
    return ZonesFolder(settings.zones)
