"""Drained regions, kept across restarts.

Embedded mode keeps them in `--state-dir/drained.json`, written atomically
(temporary file, fsync, rename), so a crash never leaves a half-written file.
Production mode keeps them in PostgreSQL (see adapters/postgres_store.py).
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import structlog

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

    def save(self, regions: frozenset[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".drained.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"drained": sorted(regions)}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._remember()
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
