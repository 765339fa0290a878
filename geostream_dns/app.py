"""The composition root: wires the store, the world, transports and HTTP; owns reload.

How this works: `App.start()` loads the zones (off the event loop), builds the
first snapshot, binds every `--listen` address on UDP and TCP, starts the HTTP
endpoint and a watcher task. The watcher polls the store every
`reload_interval` seconds; when zones changed it rebuilds the snapshot in a
worker thread and publishes a new world around it with one assignment
(`WorldRef.use_snapshot`); health changes publish new worlds the same way
(`WorldRef.use_health`). Queries are never blocked or dropped by either.
`App.run()` serves until SIGTERM or SIGINT, then closes listeners and waits
for nothing else.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from typing import Any

import structlog

from geostream_dns.adapters.answer_cache import AnswerCache
from geostream_dns.adapters.builder import SnapshotBuilder
from geostream_dns.adapters.fleet import Fleet
from geostream_dns.adapters.geoip import open_reader, raw_lookup
from geostream_dns.adapters.health_manager import DownSetFile, HealthManager
from geostream_dns.adapters.probes import prober_for
from geostream_dns.adapters.redis_link import RedisLink, parse_redis_url
from geostream_dns.adapters.stats import QueryStats, StatsFiles
from geostream_dns.adapters.stores import UNREACHABLE, make_store
from geostream_dns.adapters.tcp import TcpServer, start_tcp
from geostream_dns.adapters.udp import start_udp
from geostream_dns.config.settings import Settings
from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.snapshot import Snapshot
from geostream_dns.core.world import World, WorldRef
from geostream_dns.errors import Problem
from geostream_dns.version import VERSION

log = structlog.get_logger("geostream.app")


class App:
    def __init__(self, settings: Settings, worker: int = 0) -> None:
        self.settings = settings
        self.worker = worker
        self.stats = QueryStats()
        self.store = make_store(settings)
        self.geoip = open_reader(settings.geoip)
        self.worlds = WorldRef(World.create(geo=GeoLocator(raw_lookup(self.geoip))))
        # With --workers, worker 0 probes and shares its down-set through a file
        # the others follow, so every target is probed once and all workers
        # answer alike; drains reach them through the drain store.
        shared = None
        self.stats_files: StatsFiles | None = None
        if settings.workers > 1:
            leader = os.getpid() if worker == 0 else os.getppid()
            shared = DownSetFile(settings.state_dir / "run" / f"health-{leader}.json")
            self.stats_files = StatsFiles(settings.state_dir / "run", leader)
        self.health = HealthManager(self.worlds.use_health,
                                    self.store.drain_store(settings.state_dir),
                                    probe=settings.probe and worker == 0, shared=shared,
                                    probe_fn=prober_for(settings.site or "-"))
        # In a fleet (REDIS_URL), worker 0 is this server's member of it: it
        # heartbeats, competes for its site's probe lease and combines the sites'
        # verdicts; other workers follow its down-set like any other.
        self.link: RedisLink | None = None
        self.fleet: Fleet | None = None
        if settings.redis_url and worker == 0:
            self.link = RedisLink(parse_redis_url(settings.redis_url), settings.redis_prefix)
            self.fleet = Fleet(self.link, settings.server_id, settings.site,
                               "prober" if settings.probe_only else "dns", VERSION,
                               can_probe=settings.probe,
                               status=lambda: (self.generation, self.ready),
                               on_change=self.health.fleet_changed,
                               on_leader=self.health.leader_changed)
            self.health.attach_fleet(self.fleet)
        self.builder = SnapshotBuilder(
            self.store, AnswerCache(self.link) if self.link is not None else None)
        self.generation = 0
        self.reload_errors = 0
        self.ready = False
        self.problems: list[Problem] = []
        self._closers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()

    @property
    def world(self) -> World:
        """The world queries are answered in right now."""
        return self.worlds.world

    # -- configuration ---------------------------------------------------

    def _reload_sync(self) -> Snapshot | None:
        """Poll the store; build a new snapshot when zones changed (worker thread)."""
        changed, new_problems = self.store.poll()
        self._log_problems(new_problems)
        if new_problems:
            self.reload_errors += 1
        sources, self.problems = self.store.sources()
        status = self.store.status()
        if not status.loaded:
            return None  # production mode, database away, no saved snapshot: not ready
        stored = status.generation
        if not changed and self.ready and (stored is None or stored == self.generation):
            return None
        started = time.perf_counter()
        generation = stored if stored is not None else self.generation + 1
        # A build makes hundreds of thousands of long-lived objects: the cyclic
        # collector, run over and over as they pile up, would cost a third of it.
        # Afterwards they are frozen: to the collector a new snapshot is a few
        # million young objects, and its passes over them (half a second for
        # 10,000 zones, holding the GIL) would delay a starting server's first
        # answer and stall the event loop (queries, the fleet's heartbeats and
        # lease renewals). They live as long as the snapshot. The next build
        # unfreezes them first, so a replaced snapshot's objects are freed (by
        # reference counting, or later by a full collection), never kept.
        gc.disable()
        gc.unfreeze()
        try:
            snapshot, report = self.builder.build(sources, generation,
                                                  previous=self.world.snapshot)
        finally:
            gc.freeze()
            gc.enable()
        if report.problems:
            self._log_problems(report.problems)
            self.reload_errors += 1
            self.problems = [*self.problems, *report.problems]
        log.info("snapshot.built", generation=snapshot.generation, zones=len(sources),
                 record_sets=snapshot.record_sets, answers=len(snapshot.answers),
                 reused=report.reused, from_cache=report.from_cache, built=report.built,
                 built_elsewhere=report.waited_for, invalid=report.invalid,
                 duration_s=round(time.perf_counter() - started, 4))
        return snapshot

    @staticmethod
    def _log_problems(problems: list[Problem]) -> None:
        for problem in problems:
            if problem.path == UNREACHABLE:
                continue  # a store that cannot reach its database logs that itself
            log.error("zone.invalid", problem=str(problem), file=problem.file,
                      line=problem.line, field=problem.path, message=problem.message)

    def publish(self, snapshot: Snapshot) -> None:
        if self.ready and snapshot.generation < self.generation:
            log.warning("snapshot.stale_skipped", generation=snapshot.generation,
                        serving=self.generation)
            return
        self.worlds.use_snapshot(snapshot)
        self.health.sync(snapshot)
        self.generation = snapshot.generation
        self.ready = True
        log.info("snapshot.published", generation=snapshot.generation,
                 zones=sorted(z.to_text() for z in snapshot.zones))

    async def reload(self, keep: bool = True) -> None:
        """Poll the store and publish what changed. One reload at a time: the
        watcher and API writes both call this, and a store must never be polled
        from two threads at once (an older build could otherwise publish last).
        `keep=False` leaves saving what a restart needs to a later `keep()`."""
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            try:
                snapshot = await loop.run_in_executor(None, self._reload_sync)
            except Exception:  # noqa: BLE001 - keep serving the previous snapshot
                self.reload_errors += 1
                log.exception("snapshot.build_failed")
                return
            if snapshot is not None:
                self.publish(snapshot)
                if keep:
                    await self._keep(loop)

    async def keep(self) -> None:
        """Save what a restart needs (the store reads what it does not hold yet)."""
        async with self._reload_lock:
            await self._keep(asyncio.get_running_loop())

    async def _keep(self, loop: asyncio.AbstractEventLoop) -> None:
        try:  # what a restart needs, once the new snapshot serves
            await loop.run_in_executor(None, self.store.keep)
        except Exception:  # noqa: BLE001 - a failed save must not stop reloads
            log.exception("store.keep_failed")

    async def refresh_drains(self) -> None:
        try:
            await self.health.refresh_drains()
        except Exception:  # noqa: BLE001 - keep the drains we have
            log.exception("drain.refresh_failed")

    def counters(self) -> dict[str, int]:
        """This process's counters kept outside the query stats."""
        geo = self.world.geo
        out = {"geoip_hit": geo.hits, "geoip_miss": geo.misses}
        cache = self.builder.cache
        if cache is not None:
            out.update({f"redis_{k}": v for k, v in cache.counts.items()})
        return out

    def total_stats(self) -> QueryStats:
        """The whole server's query stats: this process's, plus the other workers'."""
        self.stats.extra = self.counters()
        if self.stats_files is None:
            self.stats.fold()
            return self.stats
        return self.stats.merged(self.stats_files.read_others())

    def _share_stats(self) -> None:
        assert self.stats_files is not None
        self.stats.extra = self.counters()
        try:
            self.stats_files.write(self.worker, self.stats)
        except OSError:
            log.exception("stats.share_failed")

    async def _watch(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            await self.reload()
            await self.refresh_drains()
            self.health.follow_shared()
            self.health.follow_fleet()
            self.stats.fold()
            ticks += 1
            if self.stats_files is not None and self.worker != 0 and ticks % 4 == 0:
                self._share_stats()

    # -- life cycle ------------------------------------------------------

    async def start(self) -> None:
        self.health.start()
        if self.fleet is not None:
            # The fleet's verdicts before the first answer: a new server never
            # starts from "everything up" where the fleet knows better.
            if await self.fleet.join():
                log.info("fleet.joined", server=self.settings.server_id,
                         site=self.settings.site, sites=sorted(self.fleet.live_sites),
                         leader=self.fleet.leader)
            self.health.follow_fleet()
        # Answer as soon as the first snapshot is published; saving it for a
        # restart (reading every zone's document) comes after the listeners.
        await self.reload(keep=False)
        for host, port in self.settings.listen:
            reuse = self.settings.workers > 1
            udp = await start_udp(self.worlds, self.stats, host, port, reuse)
            self._closers.append(udp)
            tcp = await start_tcp(
                TcpServer(self.worlds, self.stats, self.settings.tcp_idle_timeout),
                host, port, reuse)
            self._closers.append(tcp)
            log.info("listener.started", host=host, port=port, transports=["udp", "tcp"])
        if self.settings.http is not None:
            from geostream_dns.api.http import start_http

            server = await start_http(self, *self.settings.http)
            self._closers.append(server)
            log.info("http.started", host=self.settings.http[0], port=self.settings.http[1])
        self._tasks.append(asyncio.create_task(self.keep()))
        self._tasks.append(asyncio.create_task(self._watch()))
        if self.fleet is not None:
            self.fleet.start()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        log.info("server.started", generation=self.generation, worker=self.worker)
        await self._stop.wait()
        log.info("server.stopping")
        if self.fleet is not None:
            await self.fleet.stop()
        self.health.stop()
        for task in self._tasks:
            task.cancel()
        for closer in self._closers:
            closer.close()
        log.info("server.stopped")
