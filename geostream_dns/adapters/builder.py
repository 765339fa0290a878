"""Build the next snapshot from the store, with the fleet's answer cache when there is one.

How this works (in the App's reload thread): the store names every zone by
its content digest (`Store.sources`). A zone's compiled form is keyed by that
digest and by the hosted zones below it (`core.build.unit_key`), and found,
in order:

1. in the snapshot being served (nothing to do: the common case on a reload);
2. in the answer cache (`AnswerCache.fetch`, decoded by `core.cachefmt`);
3. nowhere: it is built — the store validates it (`Store.load`), the core
   compiles and renders it (`compile_unit`), and it goes into the cache for
   the rest of the fleet.

With a cache, zones are built in chunks, each claimed first: a server skips
chunks another server has claimed and builds the next, then waits for the
others' entries, so an apply of many zones is compiled about once in the
fleet, spread over its servers; a zone whose claim lapses without an entry
(its builder died) is claimed and built by whoever is still waiting. Without
a cache (embedded mode, or Redis away) every missing zone is built here.

A zone that fails validation keeps its compiled form from the snapshot being
served, if it has one, and its problems are reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from geostream_dns.adapters.answer_cache import BUILD_CHUNK, CLAIM_MS, AnswerCache
from geostream_dns.adapters.dnssec_keys import KeyRecord, KeyStore, records_fingerprint, signing_of
from geostream_dns.adapters.stores import Store, ZoneSource
from geostream_dns.core import cachefmt
from geostream_dns.core.build import assemble, children_of, compile_unit, unit_key
from geostream_dns.core.dnssec import ZoneSigning
from geostream_dns.core.model import Zone
from geostream_dns.core.outcome import Outcomes
from geostream_dns.core.snapshot import CompiledZone, Snapshot
from geostream_dns.errors import GeoStreamError, Problem

log = structlog.get_logger("geostream.build")

POLL = 0.05  # seconds between looks for zones other servers are building


@dataclass
class BuildReport:
    """What a build took from where, for the log."""

    reused: int = 0
    from_cache: int = 0
    built: int = 0
    waited_for: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)


class SnapshotBuilder:
    def __init__(self, store: Store, cache: AnswerCache | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 keys: KeyStore | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cache = cache
        self.keys = keys
        self._wall = wall
        # signed zones: the keys' fingerprint (ids, states, window) of the last build
        self.signed_with: dict[str, str] = {}
        self._signing: dict[str, ZoneSigning] = {}
        self._records: dict[str, list[KeyRecord]] = {}
        self._broken: set[str] = set()  # signed zones whose keys cannot be read
        self._known: dict[tuple[str, str], ZoneSigning] = {}  # by (zone, keys fingerprint)
        self._clock = clock
        self._sleep = sleep
        self._corrupt: set[str] = set()  # entries found corrupt during this build

    def build(self, sources: list[ZoneSource], generation: int,
              previous: Snapshot) -> tuple[Snapshot, BuildReport]:
        report = BuildReport()
        self._corrupt = set()
        children = children_of(s.origin for s in sources)
        self._read_keys(report)
        keys = {s.origin: unit_key(s.digest, children[s.origin], self._signing.get(s.origin))
                for s in sources}
        units: dict[str, CompiledZone] = {}
        missing: list[ZoneSource] = []
        for source in sources:
            unit = previous.units.get(source.origin)
            if source.origin in self._broken:  # its keys cannot be read: keep what was served
                continue
            if unit is not None and unit.key == keys[source.origin]:
                units[source.origin] = unit
                report.reused += 1
            else:
                missing.append(source)
        cache = self.cache if self.cache is not None and self.cache.link.up else None
        if missing and cache is not None:
            missing = self._from_cache(cache, missing, keys, units, report)
        if missing:
            if cache is None:
                self._build(missing, keys, children, units, report)
            else:
                self._build_shared(cache, missing, keys, children, units, report)
        for source in sources:  # invalid zones keep what was served
            if source.origin not in units and source.origin in previous.units:
                units[source.origin] = previous.units[source.origin]
        ordered = [units[s.origin] for s in sources if s.origin in units]
        return assemble(ordered, generation, previous.zone_set.externals), report

    # -- the cache -------------------------------------------------------------

    def _from_cache(self, cache: AnswerCache, wanted: list[ZoneSource], keys: dict[str, str],
                    units: dict[str, CompiledZone], report: BuildReport) -> list[ZoneSource]:
        """Take what the cache holds; return the zones still missing."""
        found = cache.fetch([keys[s.origin] for s in wanted
                             if keys[s.origin] not in self._corrupt])
        outcomes = Outcomes()
        still: list[ZoneSource] = []
        for source in wanted:
            data = found.get(keys[source.origin])
            if data is None:
                cache.counts["miss"] += 1
                still.append(source)
                continue
            try:
                unit = cachefmt.decode(data, self._model_loader(source.origin), outcomes,
                                       self._signing.get(source.origin))
            except cachefmt.CacheFormatError as exc:
                cache.corrupt(keys[source.origin], str(exc))
                self._corrupt.add(keys[source.origin])
                still.append(source)
                continue
            if unit.key != keys[source.origin]:
                cache.corrupt(keys[source.origin], "the entry is for another zone")
                self._corrupt.add(keys[source.origin])
                still.append(source)
                continue
            cache.counts["hit"] += 1
            units[source.origin] = unit
            report.from_cache += 1
        return still

    def _model_loader(self, origin: str) -> Callable[[], Zone]:
        def load() -> Zone:
            loaded, problems = self.store.load([origin])
            source = loaded.get(origin)
            if source is None or source.zone is None:
                raise GeoStreamError(f"zone {origin} cannot be loaded: "
                                     + "; ".join(str(p) for p in problems))
            return source.zone
        return load

    def _build_shared(self, cache: AnswerCache, missing: list[ZoneSource],
                      keys: dict[str, str], children: dict[str, frozenset[str]],
                      units: dict[str, CompiledZone], report: BuildReport) -> None:
        """Build the zones this server claims, chunk by chunk; wait for the others."""
        waiting: list[ZoneSource] = []
        for i in range(0, len(missing), BUILD_CHUNK):
            taken = self._claim_and_build(cache, missing[i:i + BUILD_CHUNK], keys, children,
                                          units, report)
            if taken is None:  # Redis went away: build the rest here
                self._build(missing[i:] + waiting, keys, children, units, report)
                return
            waiting.extend(taken)
        deadline = self._clock() + CLAIM_MS / 1000 * 3
        while waiting:
            before = len(waiting)
            waiting = self._from_cache(cache, waiting, keys, units, report)
            report.waited_for += before - len(waiting)
            if not waiting or self._clock() > deadline:
                break
            # A claim that lapsed without an entry: its builder died; take it over.
            busy = cache.claimed([keys[s.origin] for s in waiting])
            lapsed = [s for s in waiting if keys[s.origin] not in busy]
            if lapsed and self._claim_and_build(cache, lapsed, keys, children, units,
                                                report) is None:
                break
            waiting = [s for s in waiting if s.origin not in units]
            if waiting:
                self._sleep(POLL)
        if waiting:  # still nothing after three claim lifetimes: build them here
            self._build(waiting, keys, children, units, report, cache)

    def _claim_and_build(self, cache: AnswerCache, chunk: list[ZoneSource],
                         keys: dict[str, str], children: dict[str, frozenset[str]],
                         units: dict[str, CompiledZone],
                         report: BuildReport) -> list[ZoneSource] | None:
        """Claim and build what nobody else is building; the zones others have
        claimed (None when Redis stopped answering)."""
        claimed = cache.claim([keys[s.origin] for s in chunk])
        if claimed is None:
            return None
        mine = [s for s in chunk if keys[s.origin] in claimed]
        if mine:  # a claim is free again once its zone is stored: look first
            before = len(mine)
            mine = self._from_cache(cache, mine, keys, units, report)
            report.waited_for += before - len(mine)
            cache.release([keys[s.origin] for s in chunk
                           if keys[s.origin] in claimed and s.origin in units])
        self._build(mine, keys, children, units, report, cache)
        return [s for s in chunk if keys[s.origin] not in claimed]

    # -- building ----------------------------------------------------------------

    def _build(self, sources: list[ZoneSource], keys: dict[str, str],
               children: dict[str, frozenset[str]], units: dict[str, CompiledZone],
               report: BuildReport, cache: AnswerCache | None = None) -> None:
        """Validate (where needed), compile and render these zones; share them."""
        if not sources:
            return
        zones: dict[str, tuple[Zone, str]] = {
            s.origin: (s.zone, s.digest) for s in sources if s.zone is not None}
        unvalidated = [s.origin for s in sources if s.zone is None]
        if unvalidated:
            try:
                loaded, problems = self.store.load(unvalidated)
            except GeoStreamError as exc:
                report.problems.append(Problem("store", 0, "(load)", str(exc)))
                loaded, problems = {}, []
            report.problems.extend(problems)
            for origin, source in loaded.items():
                if source.zone is not None:
                    zones[origin] = (source.zone, source.digest)
        outcomes = Outcomes()
        entries: list[tuple[str, bytes]] = []
        failed: list[str] = []
        for source in sources:
            got = zones.get(source.origin)
            if got is None:
                report.invalid += 1
                failed.append(keys[source.origin])
                continue
            zone, digest = got
            try:
                signing = self._signing_for(zone)
            except GeoStreamError as exc:  # keys cannot be made or stored
                report.problems.append(Problem(source.origin, 0, "dnssec", str(exc)))
                report.invalid += 1
                failed.append(keys[source.origin])
                continue
            # keyed as `build` keys it: with the zone's keys even when it is no longer
            # signed (its keys are kept for when it is signed again)
            key = unit_key(digest, children[source.origin],
                           signing or self._signing.get(source.origin))
            unit = compile_unit(zone, key, children[source.origin], outcomes, signing)
            units[source.origin] = unit
            report.built += 1
            if cache is not None:
                entries.append((key, cachefmt.encode(unit)))
                if key != keys[source.origin]:  # the zone changed since the index was read
                    failed.append(keys[source.origin])
        if cache is not None:
            if entries:
                cache.store(entries)
            cache.release(failed)

    # -- DNSSEC keys ---------------------------------------------------------------

    def _read_keys(self, report: BuildReport) -> None:
        """Every signed zone's keys and this moment's signature window. A zone whose
        keys cannot be read (encrypted, and no or the wrong secret) is reported and
        keeps what is being served: it is never served unsigned by mistake."""
        self._broken = set()
        if self.keys is None:
            return
        now = self._wall()
        self._records = self.keys.all_records()
        self._signing = {}
        self.signed_with = {}
        known, self._known = self._known, {}
        for origin, records in self._records.items():
            fingerprint = records_fingerprint(records, now)
            try:
                # the same keys and window as the last build: its signing (no decryption)
                signing = known.get((origin, fingerprint)) or signing_of(
                    records, self.keys.secret, now)
            except GeoStreamError as exc:
                self._broken.add(origin)
                report.problems.append(Problem(origin, 0, "dnssec", str(exc)))
                report.invalid += 1
                continue
            if signing is not None:
                self._signing[origin] = signing
                self.signed_with[origin] = fingerprint
                self._known[(origin, fingerprint)] = signing

    @property
    def key_records(self) -> dict[str, list[KeyRecord]]:
        """Every signed zone's keys as the last build read them."""
        return self._records

    @property
    def signings(self) -> dict[str, ZoneSigning]:
        """What each signed zone was last built with."""
        return self._signing

    def _signing_for(self, zone: Zone) -> ZoneSigning | None:
        """The zone's signing; its keys are made here when it is first signed."""
        if zone.dnssec is None or self.keys is None:
            return None
        found = self._signing.get(zone.origin)
        if found is None:
            now = self._wall()
            records = self.keys.ensure(zone.origin, zone.dnssec, now)
            found = signing_of(records, self.keys.secret, now)
            if found is not None:
                self._records[zone.origin] = records
                self._signing[zone.origin] = found
                self.signed_with[zone.origin] = records_fingerprint(records, now)
                log.info("dnssec.keys", zone=zone.origin,
                         keys=[f"{r.role}:{r.state}" for r in records])
        return found

    def resign_due(self) -> bool:
        """True when a signed zone's keys changed (a rollover step) or its
        signatures are due for renewal: the snapshot must be built again."""
        if self.keys is None or not self.signed_with:
            return False
        now = self._wall()
        current = {origin: records_fingerprint(records, now)
                   for origin, records in self.keys.all_records().items()}
        return any(current.get(origin) != text for origin, text in self.signed_with.items())
