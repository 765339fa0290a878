"""Where the configuration comes from: the store a server polls for zones.

Two stores implement `Store`: `ZonesFolder` (embedded mode: zone files in a
folder) and `PostgresStore` (production mode). The App calls `poll()` from a
worker thread every `reload_interval` seconds, then `zones()`. What differs
between them is declared, not probed: `capabilities` says whether the store
numbers its changes (a generation every server agrees on) and whether it is
shared by several servers (drains live in it, and a write must be picked up
by the others); `status()` says whether it holds a configuration and how
current it is. Writes (`write_zone`) and drains go through the store in both
modes.

A problem whose path is ``UNREACHABLE`` says the store cannot reach its
source (it keeps serving what it holds and logs the outage itself); any
other is a zone that failed validation.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from geostream_dns.config.settings import Settings
from geostream_dns.core.model import Zone
from geostream_dns.errors import Problem

if TYPE_CHECKING:
    from geostream_dns.config.plan import Plan

UNREACHABLE = "(database)"  # Problem.path of "the store cannot reach its source"


@dataclass(frozen=True, slots=True)
class Capabilities:
    numbered: bool  # the store numbers its changes: every server serves the same generation
    shared: bool  # several servers read it: drains are kept in it for all of them


@dataclass(frozen=True, slots=True)
class ZoneSource:
    """A zone as a store holds it: its content digest (what a compiled zone is keyed
    by, in the snapshot and in the fleet's answer cache) and, when the store has
    validated it already, the validated zone."""

    origin: str
    digest: str
    zone: Zone | None = None


@dataclass(frozen=True, slots=True)
class StoreStatus:
    loaded: bool  # a configuration is held (it may be a saved copy)
    generation: int | None  # the store's generation (None: it does not number changes)
    source: str  # "folder" | "database" | "file" | "none"
    reachable: bool | None = None  # None: nothing remote to reach
    staleness_s: float | None = None  # seconds since the source last confirmed what is held


class DrainStore(Protocol):
    def changed(self) -> bool:
        """True when the drains may have changed since the last `load` or `save`."""
        ...

    def load(self) -> frozenset[str]: ...

    def save(self, regions: frozenset[str], author: str = "") -> None: ...


class Store(Protocol):
    kind: str  # "folder" | "postgres"
    capabilities: Capabilities

    def poll(self) -> tuple[bool, list[Problem]]:
        """Take in what changed: (zones changed?, problems found now). Never raises."""
        ...

    def zones(self) -> tuple[list[Zone], list[Problem]]:
        """The zones to serve, all validated, and the standing problems."""
        ...

    def sources(self) -> tuple[list[ZoneSource], list[Problem]]:
        """The zones to serve by digest (validated or not yet), and the standing
        problems: a build loads only what it cannot find compiled already."""
        ...

    def load(self, origins: list[str]) -> tuple[dict[str, ZoneSource], list[Problem]]:
        """Validate the named zones: their sources with the validated zone, and the
        problems of the invalid ones. Raises StoreUnavailable."""
        ...

    def keep(self) -> None:
        """After a build: keep what a restart needs (production: the documents, in
        the state dir). Runs in a worker thread."""
        ...

    def status(self) -> StoreStatus: ...

    def unloaded(self) -> frozenset[str]:
        """Zones that should be served but have never loaded: answered SERVFAIL."""
        ...

    def write_zone(self, origin: str, document: Any, author: str,
                   force: bool = False) -> tuple[Plan, int | None]:
        """Write one zone (None removes it): (the plan written, the new generation when
        the store numbers its changes). Raises StoreUnavailable, and UnsafePlan over the
        safety thresholds unless `force`."""
        ...

    def drain_store(self, state_dir: pathlib.Path) -> DrainStore: ...

    def close(self) -> None: ...


def make_store(settings: Settings) -> Store:
    """Production mode (``DATABASE_URL`` set): PostgreSQL; embedded mode: the zones folder."""
    if settings.database_url:
        from geostream_dns.adapters.postgres_store import PostgresStore

        return PostgresStore(settings.database_url, settings.state_dir)
    from geostream_dns.adapters.zones_folder import ZonesFolder

    return ZonesFolder(settings.zones, settings.state_dir)
