"""Drained regions, kept across restarts.

Embedded mode keeps them in `--state-dir/drained.json`, written atomically
(temporary file, fsync, rename), so a crash never leaves a half-written file.
Production mode keeps them in PostgreSQL (`DatabaseDrains`), shared by every
server, with the file as the copy used while the database is away.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import structlog

from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.errors import StoreUnavailable

log = structlog.get_logger("geostream.drain")


class DrainFile:
    def __init__(self, state_dir: pathlib.Path) -> None:
        self.path = state_dir / "drained.json"
        self._stamp: tuple[int, int] | None = None

    def changed(self) -> bool:
        """True when the file changed since the last `load` or `save` (one stat)."""
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        return stamp != self._stamp

    def _remember(self) -> None:
        try:
            st = self.path.stat()
            self._stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            self._stamp = (0, 0)

    def load(self) -> frozenset[str]:
        self._remember()
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return frozenset()
        except (OSError, ValueError) as exc:
            log.error("drain.load_failed", path=str(self.path), error=str(exc))
            return frozenset()
        regions = data.get("drained", []) if isinstance(data, dict) else []
        return frozenset(r for r in regions if isinstance(r, str))

    def save(self, regions: frozenset[str], author: str = "") -> None:
        atomic_write_text(self.path, json.dumps({"drained": sorted(regions)}))
        self._remember()


class DatabaseDrains:
    """Production mode: drained regions live in PostgreSQL, shared by every
    server of the site. They are re-read every REFRESH seconds (drains made
    through another server's API arrive that way) and copied to the local
    drain file, which stands in while the database is unreachable, so a
    restart during an outage keeps its drains."""

    REFRESH = 1.0

    def __init__(self, store: Any, fallback: DrainFile) -> None:
        self.store = store
        self.fallback = fallback
        self._read_at = float("-inf")
        self._known: frozenset[str] | None = None

    def changed(self) -> bool:
        return time.monotonic() - self._read_at >= self.REFRESH

    def load(self) -> frozenset[str]:
        self._read_at = time.monotonic()
        try:
            regions = frozenset(r for r, _, _ in self.store.drained_regions())
        except StoreUnavailable:
            if self._known is None:
                self._known = self.fallback.load()
            return self._known
        if regions != self._known:
            self.fallback.save(regions)
        self._known = regions
        return regions

    def save(self, regions: frozenset[str], author: str = "") -> None:
        """Write the difference to the database (StoreUnavailable when it is away)."""
        current = self._known if self._known is not None else self.load()
        for region in sorted(regions - current):
            self.store.drain_region(region, author)
        for region in sorted(current - regions):
            self.store.undrain_region(region)
        self._known = regions
        self.fallback.save(regions)
