"""The last-known-good snapshot on local disk (``<state-dir>/snapshot.json``).

A server in production mode writes the zone documents it serves, with their
serials and the generation, after every load from PostgreSQL, and reads them
back at start when PostgreSQL cannot be reached, so a restart during a
database outage still serves. Writes are atomic (a temporary file in the same
folder, fsync, ``os.replace``): a reader sees the old file or the new one,
never half of one, even with several workers sharing the folder. Saving runs
on one background thread, a second after the load (so it does not slow the
rebuild that follows), and coalesces: only the latest state is written.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from geostream_dns.adapters.files import atomic_write_text

FORMAT = "geostream-dns snapshot"
VERSION = 1
FILE_NAME = "snapshot.json"
SAVE_DELAY = 1.0  # seconds between a load and saving it (see _save)


@dataclass(frozen=True, slots=True)
class SavedZone:
    origin: str
    serial: int
    generation: int
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SavedSnapshot:
    generation: int
    saved_at: float  # wall-clock time the database was last known to be at `generation`
    database: str
    zones: list[SavedZone]


class StateFile:
    def __init__(self, state_dir: pathlib.Path, delay: float = SAVE_DELAY) -> None:
        self.path = state_dir / FILE_NAME
        self.delay = delay
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # The newest save asked for and its future; at most one is ever waiting.
        self._pending: tuple[SavedSnapshot, Future[bool]] | None = None
        self._scheduled = False

    def read(self) -> SavedSnapshot:
        """The saved snapshot; raises OSError or ValueError when missing or unreadable."""
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a GeoStream snapshot file")
        if data.get("version") != VERSION:
            raise ValueError(f"{self.path} has unsupported version {data.get('version')!r}")
        try:
            zones = [SavedZone(z["zone"], int(z["serial"]), int(z["generation"]), z["document"])
                     for z in data["zones"]]
            return SavedSnapshot(int(data["generation"]), float(data["saved_at"]),
                                 str(data.get("database", "")), zones)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{self.path} is damaged: {exc!r}") from exc

    def write(self, snapshot: SavedSnapshot) -> None:
        """Write atomically now (in the calling thread)."""
        head = {"format": FORMAT, "version": VERSION, "generation": snapshot.generation,
                "saved_at": snapshot.saved_at, "database": snapshot.database}
        # dumps, not dump: only the one-shot encoder is the C one (10x faster).
        # One call per zone, not one for the whole file: a single call holds the
        # GIL for all of it (a third of a second for 10,000 zones), and this runs
        # beside the event loop that answers queries.
        zones = [_dumps({"zone": z.origin, "serial": z.serial, "generation": z.generation,
                         "document": z.document}) for z in snapshot.zones]
        atomic_write_text(self.path, _dumps(head)[:-1] + ',"zones":[' + ",".join(zones) + "]}")

    def save_later(self, snapshot: SavedSnapshot) -> Future[bool]:
        """Write on the background thread, `delay` seconds from now; a save asked for
        meanwhile replaces this one (its future says False). However fast loads
        come, the file is at most `delay` plus one write behind, and only the
        newest snapshot is held.

        The future says whether this save was written; it raises what writing raised.
        """
        future: Future[bool] = Future()
        with self._lock:
            if self._pending is not None:
                self._pending[1].set_result(False)
            self._pending = (snapshot, future)
            if not self._scheduled:
                self._scheduled = True
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="state-file")
                self._executor.submit(self._save_pending)
        return future

    def _save_pending(self) -> None:
        # Wait a moment first: the snapshot is being rebuilt and swapped right now, and
        # serializing a big configuration would compete with that for the GIL. Saves
        # asked for meanwhile replace the pending one.
        time.sleep(self.delay)
        with self._lock:
            pending, self._pending = self._pending, None
            self._scheduled = False
        if pending is None:
            return
        snapshot, future = pending
        try:
            self.write(snapshot)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
            future.set_exception(exc)
            return
        future.set_result(True)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for pending saves (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        if self._executor is None:
            return
        done = self._executor.submit(lambda: None)
        done.result(timeout=max(0.0, deadline - time.monotonic()))


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
