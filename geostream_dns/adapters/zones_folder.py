"""The embedded-mode store: a folder of zone YAML files, polled for changes.

How this works: `poll()` stats every `*.yaml`/`*.yml` file (cheap: no reads)
and reloads only files whose (mtime, size) changed. Each file keeps its last
good zone: a file that fails validation is reported and its previous version
keeps serving, so one typo never takes a zone down. The last good text of
each file is also kept in `--state-dir/last-good/` (with `index.json`: file
-> zone), so a restart while a file is broken serves what was served before,
still reported as a problem. A file broken since it first appeared, with no
good version anywhere, is *unloaded*: its zone (from `zone:`, else the file
name) is answered SERVFAIL rather than REFUSED. A file that disappears takes
its zone with it, unless the whole folder suddenly holds no zone file at all
(a failed checkout, an unmounted volume): then every zone keeps serving and
each is reported. Serials follow the file's mtime (seconds) and always
increase on a change, across restarts too: the last serial of each zone is
kept in `--state-dir/serials.json`.
"""

from __future__ import annotations

import json
import pathlib
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import structlog

from geostream_dns.adapters.drain import DrainFile
from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.adapters.stores import Capabilities, StoreStatus, ZoneSource
from geostream_dns.config.folder import ZONE_SUFFIXES, file_name, unsafe_zone_name, zone_files
from geostream_dns.config.loader import guess_origin, load_zone_file, load_zone_text
from geostream_dns.core.model import Zone
from geostream_dns.errors import ConfigError, Problem, WriteRefused

log = structlog.get_logger("geostream.zones_folder")

if TYPE_CHECKING:
    from geostream_dns.config.plan import Plan


@dataclass
class _FileState:
    stamp: tuple[int, int, int, int]
    zone: Zone | None
    problems: list[Problem] = field(default_factory=list)
    unloaded: str | None = None  # no good version anywhere: the zone it should hold


class ZonesFolder:
    """A `Store` (see ``adapters.stores``) over zone files."""

    kind = "folder"
    capabilities = Capabilities(numbered=False, shared=False)

    def __init__(self, paths: tuple[pathlib.Path, ...],
                 state_dir: pathlib.Path | None = None) -> None:
        self.paths = paths
        self.files: dict[pathlib.Path, _FileState] = {}
        # poll() runs in the reload thread, write_zone() in an API thread
        self._lock = threading.Lock()
        # origin -> (serial, (mtime_ns, size) of the file it was given for); kept
        # in the state dir so a restart never hands out a smaller serial
        self.serial_file = state_dir / "serials.json" if state_dir is not None else None
        self.serials: dict[str, tuple[int, tuple[int, int]]] = self._load_serials()
        # the last good text of each file, for a restart while it is broken
        self.last_good = state_dir / "last-good" if state_dir is not None else None
        self.last_good_index: dict[str, str] = self._load_last_good_index()  # file -> zone
        self._index_dirty = False
        self.emptied: list[Problem] = []  # the folder has no zone file any more

    def _scan(self) -> dict[pathlib.Path, tuple[int, int, int, int]]:
        found: dict[pathlib.Path, tuple[int, int, int, int]] = {}
        for path in zone_files(self.paths)[0]:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found[path] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)
        return found

    def poll(self) -> tuple[bool, list[Problem]]:
        """Reload what changed. Returns (zones changed?, problems of the changed files)."""
        with self._lock:
            return self._poll()

    def _poll(self) -> tuple[bool, list[Problem]]:
        found = self._scan()
        changed = False
        problems: list[Problem] = []
        if not found and any(state.zone is not None for state in self.files.values()):
            # Every zone file gone at once: far likelier a failed checkout or an
            # unmounted volume than an operator removing every zone. Keep serving.
            emptied = [Problem(str(path), 0, "(folder)", "the zones folder has no zone files "
                                                         "any more: still serving the last "
                                                         f"good version of {state.zone.origin}")
                       for path, state in sorted(self.files.items()) if state.zone is not None]
            new = emptied != self.emptied
            self.emptied = emptied
            return False, emptied if new else []
        self.emptied = []
        for path in list(self.files):
            if path not in found:
                del self.files[path]
                self._forget_last_good(path)
                changed = True
        for path, stamp in sorted(found.items()):
            state = self.files.get(path)
            if state is not None and state.stamp == stamp:
                continue
            try:
                zone = load_zone_file(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                previous = state.zone if state is not None else self._restore(path)
                unloaded = None if previous is not None else guess_origin(path)
                self.files[path] = _FileState(stamp, previous, exc.problems, unloaded)
                changed = changed or state is None or state.unloaded != unloaded
                continue
            except OSError as exc:
                problems.append(Problem(str(path), 0, "file", str(exc)))
                continue
            zone = self._with_serial(zone, stamp)
            self.files[path] = _FileState(stamp, zone)
            self._keep_last_good(path, zone)
            changed = True
        self._save_last_good_index()
        return changed, problems

    # -- the last good version of each file, in the state dir --

    def _load_last_good_index(self) -> dict[str, str]:
        if self.last_good is None:
            return {}
        try:
            data = json.loads((self.last_good / "index.json").read_text())
            return {str(k): str(v) for k, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError):
            return {}  # unreadable: no last good versions, files serve as they are

    def _save_last_good_index(self) -> None:
        if not self._index_dirty or self.last_good is None:
            return
        try:
            atomic_write_text(self.last_good / "index.json",
                              json.dumps(self.last_good_index, sort_keys=True, indent=0))
            self._index_dirty = False
        except OSError:
            log.exception("zone.keep_failed", file=str(self.last_good / "index.json"))

    def _keep_last_good(self, path: pathlib.Path, zone: Zone) -> None:
        if self.last_good is None or unsafe_zone_name(zone.origin) is not None:
            return
        try:
            text = path.read_text(encoding="utf-8")
            atomic_write_text(self.last_good / file_name(zone.origin), text, durable=False)
            if self.last_good_index.get(str(path)) != zone.origin:
                self.last_good_index[str(path)] = zone.origin
                self._index_dirty = True  # saved once at the end of the poll
        except OSError:
            log.exception("zone.keep_failed", file=str(path), zone=zone.origin)

    def _forget_last_good(self, path: pathlib.Path) -> None:
        origin = self.last_good_index.pop(str(path), None)
        if origin is None or self.last_good is None:
            return
        try:
            if origin not in self.last_good_index.values():
                (self.last_good / file_name(origin)).unlink(missing_ok=True)
            self._index_dirty = True
        except (OSError, ValueError):
            log.exception("zone.forget_failed", file=str(path), zone=origin)

    def _restore(self, path: pathlib.Path) -> Zone | None:
        """The last good version of a file broken since this process started."""
        origin = self.last_good_index.get(str(path))
        if origin is None or self.last_good is None:
            return None
        try:
            text = (self.last_good / file_name(origin)).read_text(encoding="utf-8")
            zone = load_zone_text(text, str(path))
        except (OSError, ValueError, ConfigError):
            return None
        serial = self.serials.get(zone.origin, (zone.serial, (0, 0)))[0]
        log.warning("zone.restored", file=str(path), zone=zone.origin, serial=serial)
        return replace(zone, serial=serial)

    def unloaded(self) -> frozenset[str]:
        """Zones that should be served but never loaded (their files broken, with no
        good version): answered SERVFAIL."""
        with self._lock:
            zones = {z.origin for z in self._zones()[0]}
            return frozenset(state.unloaded for state in self.files.values()
                             if state.unloaded is not None and state.unloaded not in zones)

    def _with_serial(self, zone: Zone, stamp: tuple[int, int, int, int]) -> Zone:
        content = (stamp[0], stamp[1])
        last, last_content = self.serials.get(zone.origin, (0, (0, 0)))
        if last and last_content == content:
            return replace(zone, serial=last)  # the same file as before a restart
        floor = zone.soa.serial or 0  # `soa.serial`: served first, never gone below
        serial = floor if not last and floor else max(stamp[0] // 1_000_000_000, last + 1,
                                                      floor) % 2**32
        self.serials[zone.origin] = (serial, content)
        self._save_serials()
        return replace(zone, serial=serial)

    def _load_serials(self) -> dict[str, tuple[int, tuple[int, int]]]:
        if self.serial_file is None:
            return {}
        try:
            data = json.loads(self.serial_file.read_text())
            return {origin: (int(v["serial"]), (int(v["mtime_ns"]), int(v["size"])))
                    for origin, v in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}  # unreadable: serials restart from the files' times

    def _save_serials(self) -> None:
        if self.serial_file is None:
            return
        data = {origin: {"serial": serial, "mtime_ns": content[0], "size": content[1]}
                for origin, (serial, content) in self.serials.items()}
        try:
            atomic_write_text(self.serial_file, json.dumps(data, sort_keys=True),
                              durable=False)
        except OSError:
            pass  # serials still increase while this process runs

    def zones(self) -> tuple[list[Zone], list[Problem]]:
        """The current zones (one per origin, first file wins) and standing problems."""
        with self._lock:
            return self._zones()

    def _zones(self) -> tuple[list[Zone], list[Problem]]:
        zones: dict[str, Zone] = {}
        problems: list[Problem] = list(self.emptied)
        for path, state in sorted(self.files.items()):
            problems.extend(state.problems)
            if state.zone is None:
                continue
            if state.zone.origin in zones:
                problems.append(Problem(str(path), 1, "zone",
                                        f"zone {state.zone.origin} is also defined in "
                                        f"{zones[state.zone.origin].source}"))
                continue
            zones[state.zone.origin] = state.zone
        return list(zones.values()), problems

    def status(self) -> StoreStatus:
        return StoreStatus(loaded=True, generation=None, source="folder")

    def sources(self) -> tuple[list[ZoneSource], list[Problem]]:
        """Every zone (validated when its file was read), by the file version it
        came from."""
        zones, problems = self.zones()
        return [ZoneSource(zone.origin, f"file:{zone.source}:{zone.serial}:{id(zone)}", zone)
                for zone in zones], problems

    def load(self, origins: list[str]) -> tuple[dict[str, ZoneSource], list[Problem]]:
        wanted = set(origins)
        sources, _problems = self.sources()
        return {s.origin: s for s in sources if s.origin in wanted}, []

    def keep(self) -> None:
        pass

    def write_zone(self, origin: str, document: Any, author: str,
                   force: bool = False) -> tuple[Plan, int | None]:
        """Write the zone's file atomically (or remove it): the file the zone came
        from, else ``<first zones folder>/<zone>.yaml``. The next poll loads it."""
        from geostream_dns.config.document import document_yaml, zone_document
        from geostream_dns.config.plan import check_thresholds, plan_targets

        with self._lock:
            served = {z.origin: z for z in self._zones()[0]}
        zone = served.get(origin)
        current = {origin: zone_document(zone)} if zone is not None else {}
        plan = plan_targets(current, {origin: document}, 0)
        if plan.empty:
            return plan, None
        if not force:
            check_thresholds(plan, current, len(served))
        source = pathlib.Path(zone.source) if zone is not None else None
        if document is None:
            if source is not None:
                source.unlink(missing_ok=True)
            return plan, None
        if source is None or not source.name.endswith(ZONE_SUFFIXES):
            folders = [p for p in self.paths if p.is_dir()]
            if not folders:
                raise WriteRefused("no zones folder to write into: the server was started "
                                   "with zone files, not a folder")
            try:
                source = folders[0] / file_name(origin)
            except ValueError as exc:
                raise WriteRefused(str(exc)) from None
            if source.resolve().parent != folders[0].resolve():
                raise WriteRefused(f"{origin}: would be written outside the zones folder")
        atomic_write_text(source, document_yaml(document), mode=0o644)
        return plan, None

    def drain_store(self, state_dir: pathlib.Path) -> DrainFile:
        return DrainFile(state_dir)

    def close(self) -> None:
        pass
