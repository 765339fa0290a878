"""The composition root: wires the store, the world, transports and HTTP; owns reload.

How this works: `App.start()` loads the zones (off the event loop), builds the
first snapshot, binds every `--listen` address on UDP and TCP, starts the HTTP
endpoint and a watcher task. The watcher polls the store every
`reload_interval` seconds; when zones changed it rebuilds the snapshot in a
worker thread and publishes a new world around it with one assignment
(`WorldRef.use_snapshot`); health changes publish new worlds the same way
(`WorldRef.use_health`). Queries are never blocked or dropped by either.
ALIAS targets outside the hosted zones are resolved in the background
(`adapters.alias_resolver`); when their records change, only the answers
they make are rendered again (`core.build.with_externals`) and published in a
new world the same way.
`App.run()` serves until SIGTERM or SIGINT, then closes listeners and waits
for nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import importlib
import os
import signal
import socket
import time
from collections.abc import Collection
from typing import Any

import dns.name
import dns.rdatatype
import structlog

from geostream_dns.adapters.alias_resolver import AliasResolver, Results
from geostream_dns.adapters.answer_cache import AnswerCache
from geostream_dns.adapters.builder import SnapshotBuilder
from geostream_dns.adapters.cookie_secret import CookieSecret
from geostream_dns.adapters.dnssec_keys import advance_all, make_key_store
from geostream_dns.adapters.fleet import Fleet
from geostream_dns.adapters.geoip import open_reader, raw_lookup
from geostream_dns.adapters.health_manager import DownSetFile, HealthManager
from geostream_dns.adapters.latency import CHECKPOINT_EVERY, LatencyService, LatencyTable
from geostream_dns.adapters.latency_input import Row
from geostream_dns.adapters.latency_share import LatencyShare
from geostream_dns.adapters.latency_worker import LatencyWorker
from geostream_dns.adapters.probes import prober_for
from geostream_dns.adapters.query_log import QueryLog
from geostream_dns.adapters.redis_link import RedisLink, parse_redis_url
from geostream_dns.adapters.rrl import ResponseLimiter
from geostream_dns.adapters.sockets import bind_socket
from geostream_dns.adapters.stats import QueryStats, StatsFiles
from geostream_dns.adapters.stores import UNREACHABLE, make_store
from geostream_dns.adapters.tcp import TcpServer, start_tcp
from geostream_dns.adapters.udp import batched, start_udp
from geostream_dns.config.settings import Settings
from geostream_dns.core.build import with_externals
from geostream_dns.core.cookies import SECRET_LEN, Cookies
from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.health import HealthKey
from geostream_dns.core.latency import PROBE_KEY
from geostream_dns.core.snapshot import Snapshot, label_key
from geostream_dns.core.world import World, WorldRef
from geostream_dns.errors import Problem
from geostream_dns.version import VERSION

log = structlog.get_logger("geostream.app")

# Modules imported on demand (by the HTTP routes, metrics, reloads), loaded
# before `serve --user` drops privileges: see App._drop_privileges.
PRELOAD = ("geostream_dns.api.http", "geostream_dns.api.explain", "geostream_dns.api.fleet",
           "geostream_dns.api.health", "geostream_dns.api.openapi", "geostream_dns.api.zones",
           "geostream_dns.adapters.prober", "geostream_dns.adapters.metrics",
           "geostream_dns.config.plan", "geostream_dns.config.document",
           "geostream_dns.version", "importlib.metadata", "ctypes", "encodings.idna")
WORKER_CHECKPOINT_EVERY = 5.0  # seconds: how often --workers see worker 0's latency table
PROBE_RTT_EVERY = 40  # watcher ticks between readings of the prober's round trips
DNSSEC_CHECK = 1.0  # seconds between looks at the DNSSEC keys and signature windows


def with_unloaded(snapshot: Snapshot, unloaded: frozenset[str]) -> Snapshot:
    """`snapshot` answering SERVFAIL for the zones that never loaded."""
    failed = frozenset(label_key(dns.name.from_text(origin).labels) for origin in unloaded)
    if failed == snapshot.zone_set.failed:
        return snapshot
    return dataclasses.replace(snapshot,
                               zone_set=dataclasses.replace(snapshot.zone_set, failed=failed))


class App:
    def __init__(self, settings: Settings, worker: int = 0) -> None:
        self.settings = settings
        self.worker = worker
        self.parent = os.getppid()  # a worker's: the server it belongs to
        # worker 0's other workers (serve --workers), as serve keeps them
        self.children: Collection[int] = []
        self.stats = QueryStats()
        self.query_log = (QueryLog(settings.query_log, settings.query_log_sample)
                          if settings.query_log is not None else None)
        self.store = make_store(settings)
        self.geoip = open_reader(settings.geoip)
        # The cookie secret here is a stand-in until `start` loads the fleet's.
        self.worlds = WorldRef(World.create(geo=GeoLocator(raw_lookup(self.geoip)),
                                            cookies=Cookies(os.urandom(SECRET_LEN)),
                                            server_id=settings.server_id.encode()))
        self.limiter = ResponseLimiter(settings.rrl) if settings.rrl.rate > 0 else None
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
        self.alias = AliasResolver(settings.alias_resolver, self._aliases_changed,
                                   floor=settings.alias_refresh_min,
                                   ceiling=settings.alias_refresh_max)
        self.cookie_secret = CookieSecret(self.worlds.world.cookies, settings.state_dir,
                                          rotation=settings.cookie_rotation, link=self.link,
                                          keeper=worker == 0)
        self.keys = make_key_store(settings.database_url, settings.state_dir)
        # Latency measurements are folded into a table that publishes views into
        # the world. Worker 0 takes them in (HTTP, the prober, the fleet's
        # stream) and keeps the table, with its checkpoint, in a process of its
        # own, so ingest never holds the interpreter lock answering needs; other
        # workers follow its checkpoint file.
        self.latency: LatencyService | LatencyWorker
        if worker == 0:
            self.latency = LatencyWorker(
                self.worlds.use_latency, settings.geoip, settings.user,
                settings.latency_half_life, settings.latency_max_keys,
                checkpoint=settings.state_dir / "latency.json.gz",
                save_every=(WORKER_CHECKPOINT_EVERY if settings.workers > 1
                            else CHECKPOINT_EVERY))
        else:
            self.latency = LatencyService(
                LatencyTable(settings.latency_half_life, settings.latency_max_keys),
                self.worlds.use_latency)
        self.latency_share: LatencyShare | None = None
        if self.link is not None and not settings.probe_only:
            self.latency_share = LatencyShare(self.link, self.latency, settings.server_id)
        self._probe_regions: dict[HealthKey, tuple[str, ...]] = {}
        self._probe_seen: dict[HealthKey, float] = {}
        self._latency_file_stamp: tuple[int, int] | None = None
        self.builder = SnapshotBuilder(
            self.store, AnswerCache(self.link) if self.link is not None else None,
            keys=self.keys)
        self._keys_checked = 0.0
        self.dnssec_steps = 0  # rollover steps this server took
        self.generation = 0
        self.reload_errors = 0
        self.ready = False
        self.published = False  # a snapshot has been published (maybe with no zone)
        self.unloaded: frozenset[str] = frozenset()  # zones answered SERVFAIL
        self.problems: list[Problem] = []
        self._closers: list[Any] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self.on_tick: Any = None  # called on every watch tick (serve: restart dead workers)
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
        unloaded = self.store.unloaded()
        current = self.world.snapshot
        stored = status.generation
        if (not changed and self.published and (stored is None or stored == self.generation)
                and not self._keys_due()):
            if unloaded != self.unloaded:  # only which zones answer SERVFAIL changed
                self.unloaded = unloaded
                return with_unloaded(current, unloaded)
            return None
        self.unloaded = unloaded
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
        snapshot = with_unloaded(snapshot, unloaded)
        log.info("snapshot.built", generation=snapshot.generation, zones=len(sources),
                 record_sets=snapshot.record_sets, answers=len(snapshot.answers),
                 reused=report.reused, from_cache=report.from_cache, built=report.built,
                 built_elsewhere=report.waited_for, invalid=report.invalid,
                 duration_s=round(time.perf_counter() - started, 4))
        return snapshot

    def _keys_due(self) -> bool:
        """Signed zones: take the rollover steps that are due (worker 0), and say
        whether keys or the signature window changed since the last build (checked
        at most once a second)."""
        now = time.time()
        if now - self._keys_checked < DNSSEC_CHECK or not self.builder.signed_with:
            return False
        self._keys_checked = now
        try:
            if self.worker == 0:
                for step in advance_all(self.keys, now, self._ttls):
                    self.dnssec_steps += 1
                    log.info("dnssec.rollover_step", step=step)
            due = self.builder.resign_due()
        except Exception:  # noqa: BLE001 - keep serving what is signed
            log.exception("dnssec.check_failed")
            return False
        if due:
            log.info("dnssec.resign", zones=len(self.builder.signed_with))
        return due

    def _ttls(self, origin: str) -> tuple[int, int]:
        """A served zone's DNSKEY TTL and largest TTL (how long its keys and its
        signatures may be cached), for the timing of rollover steps."""
        tree = self.world.snapshot.zones.get(dns.name.from_text(origin))
        if tree is None:
            return 86400, 86400
        dnskey = tree.nodes[tree.origin].get(dns.rdatatype.DNSKEY)
        largest = max((data.ttl for node in tree.nodes.values() for data in node.values()),
                      default=tree.soa.ttl)
        return (dnskey.ttl if dnskey is not None else tree.soa.ttl), largest

    @staticmethod
    def _log_problems(problems: list[Problem]) -> None:
        for problem in problems:
            if problem.path == UNREACHABLE:
                continue  # a store that cannot reach its database logs that itself
            log.error("zone.invalid", problem=str(problem), file=problem.file,
                      line=problem.line, field=problem.path, message=problem.message)

    def publish(self, snapshot: Snapshot) -> None:
        if self.published and snapshot.generation < self.generation:
            log.warning("snapshot.stale_skipped", generation=snapshot.generation,
                        serving=self.generation)
            return
        snapshot = with_externals(snapshot, self.alias.results)
        self.worlds.use_snapshot(snapshot)
        self.alias.want(snapshot.alias_targets)
        self.health.sync(snapshot)
        self._probe_regions = probe_regions(snapshot)
        self.generation = snapshot.generation
        self.published = True
        # Ready means answering for some zone: with none (an empty folder at
        # start, every file broken) /ready stays 503 and says why.
        self.ready = bool(snapshot.zones)
        log.info("snapshot.published", generation=snapshot.generation,
                 zones=sorted(z.to_text() for z in snapshot.zones))

    async def _aliases_changed(self, results: Results) -> None:
        """External ALIAS targets resolved to new records: render their answers again
        (in a worker thread: thousands of them take a while) and publish."""
        current = self.world.snapshot
        loop = asyncio.get_running_loop()
        snapshot = await loop.run_in_executor(None, with_externals, current, results)
        if self.world.snapshot is not current:
            return  # a reload published meanwhile, with these results (`publish`)
        if snapshot is not current:
            self.worlds.use_snapshot(snapshot)
            log.info("alias.published", generation=snapshot.generation,
                     targets=len(snapshot.alias_targets))

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
        if self.limiter is not None:
            out.update(rrl_drop=self.limiter.drops, rrl_slip=self.limiter.slips,
                       rrl_accounts=self.limiter.accounts)
        if self.query_log is not None:
            out["query_log_written"] = self.query_log.written
            out["query_log_dropped"] = self.query_log.dropped + self.query_log.lost
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
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except Exception:  # noqa: BLE001 - never stop watching
                    log.exception("tick.failed")
            ticks += 1
            if ticks % PROBE_RTT_EVERY == 0:
                self._probe_round_trips()
            if self.worker != 0 and ticks % 4 == 0:
                await self._follow_latency_file()
            if self.stats_files is not None and self.worker != 0 and ticks % 4 == 0:
                self._share_stats()

    # -- latency ---------------------------------------------------------

    def _load_latency(self) -> None:
        """Measurements from before a restart: the fleet's checkpoint and stream,
        else the state dir's checkpoint (blocking; before the table takes samples in)."""
        if self.worker != 0:
            self._read_latency_file()
            return
        if self.latency_share is not None and self.latency_share.load():
            return
        self.latency.load()
        if self.latency_share is not None and not self.link_answered():
            self.latency_share.last_id = "$"  # the file holds what the stream held

    def link_answered(self) -> bool:
        return self.link is not None and self.link.up

    def _read_latency_file(self) -> bool:
        path = self.settings.state_dir / "latency.json.gz"
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._latency_file_stamp:
            return False
        self._latency_file_stamp = stamp
        follower = self.latency
        assert isinstance(follower, LatencyService)
        follower.checkpoint = path
        follower.table = LatencyTable(self.settings.latency_half_life,
                                      self.settings.latency_max_keys)
        follower.load()
        follower.checkpoint = None
        return True

    async def _follow_latency_file(self) -> None:
        """A worker other than 0: take worker 0's latency table when it is saved."""
        try:
            if await asyncio.to_thread(self._read_latency_file):
                await asyncio.to_thread(self.latency.publish_now)
        except Exception:  # noqa: BLE001 - keep the latency view we have
            log.exception("latency.follow_failed")

    def _probe_round_trips(self) -> None:
        """The prober's latest round trips, as a weak latency signal per region."""
        prober = self.health.prober
        if prober is None or not prober.active:
            return
        rows: list[Row] = []
        for key, state in prober.states.items():
            last, at = state.last, state.last_at
            regions = self._probe_regions.get(key)
            if (last is None or at is None or not last.ok or last.latency <= 0 or not regions
                    or self._probe_seen.get(key) == at):
                continue
            self._probe_seen[key] = at
            rows.extend(((PROBE_KEY,), region, last.latency * 1000.0, 1) for region in regions)
        if rows:
            self.latency.submit(rows, source="probe")

    # -- life cycle ------------------------------------------------------

    def _bind(self) -> tuple[list[tuple[str, int, socket.socket, socket.socket]],
                             socket.socket | None]:
        """Every DNS socket (UDP and TCP per --listen address) and, with --user, the
        HTTP one: bound first, so that nothing else runs before privileges drop."""
        reuse = self.settings.workers > 1
        dns = [(host, port, bind_socket(host, port, socket.SOCK_DGRAM, reuse),
                bind_socket(host, port, socket.SOCK_STREAM, reuse))
               for host, port in self.settings.listen]
        http = None
        if self.settings.http is not None and self.settings.user is not None:
            http = bind_socket(*self.settings.http, socket.SOCK_STREAM)
        return dns, http

    def _drop_privileges(self, user: str) -> None:
        from geostream_dns.adapters.privileges import (
            die_with_parent,
            drop_privileges,
            lookup_user,
        )

        # What the server imports on demand, imported while it can still read
        # any installation (a virtualenv in root's home, say).
        for module in PRELOAD:
            try:
                importlib.import_module(module)
            except ImportError:
                log.warning("privileges.preload_failed", module=module)
        settings = self.settings
        drop_privileges(lookup_user(user), folders=[settings.state_dir],
                        files=[settings.query_log] if settings.query_log else [])
        if self.worker != 0:
            die_with_parent(self.parent)

    async def start(self) -> None:
        dns_sockets, http_socket = self._bind()
        if isinstance(self.latency, LatencyWorker):
            # the latency table's process: started while root may still start a
            # new interpreter (see adapters/latency_worker.py); it drops by itself
            self.latency.spawn()
        if self.settings.user is not None:
            self._drop_privileges(self.settings.user)
        self.health.start()
        await asyncio.to_thread(self._load_latency)
        self.latency.start(asyncio.get_running_loop())
        if self.latency_share is not None:
            self.latency_share.start()
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
        if self.settings.listen:
            await self.cookie_secret.start()
        # TCP listens before UDP answers: the sockets were bound before the zones
        # loaded, and queries already waiting on UDP are answered at once, so a
        # client that saw a UDP answer must find TCP listening too.
        for host, port, _, tcp_socket in dns_sockets:
            tcp = await start_tcp(
                TcpServer(self.worlds, self.stats, self.settings.tcp_idle_timeout,
                          self.settings.tcp_max_connections,
                          self.settings.tcp_max_per_client, query_log=self.query_log),
                host, port, sock=tcp_socket)
            self._closers.append(tcp)
        for host, port, udp_socket, _ in dns_sockets:
            udp = await start_udp(self.worlds, self.stats, host, port, sock=udp_socket,
                                  query_log=self.query_log, limiter=self.limiter)
            self._closers.append(udp)
            log.info("listener.started", host=host, port=port, transports=["udp", "tcp"],
                     udp="batched" if batched() else "per-datagram")
        if self.settings.http is not None:
            from geostream_dns.api.http import start_http

            server = await start_http(self, *self.settings.http, sock=http_socket)
            self._closers.append(server)
            log.info("http.started", host=self.settings.http[0], port=self.settings.http[1])
        if self.query_log is not None:
            self.query_log.start()
            log.info("query_log.started", path=str(self.settings.query_log),
                     sample=self.settings.query_log_sample)
        self._tasks.append(asyncio.create_task(self.keep()))
        self._tasks.append(asyncio.create_task(self._watch()))
        self.alias.start()
        if self.fleet is not None:
            self.fleet.start()

    def stop(self) -> None:
        self._stop.set()

    def hangup(self) -> None:
        """SIGHUP: reopen the query log (after a rotation), in every worker."""
        if self.query_log is not None:
            self.query_log.reopen()
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGHUP)
            except OSError:
                pass  # gone, or not ours to signal
        log.info("server.hangup", worker=self.worker)

    async def run(self) -> None:
        # Signals first: a SIGTERM while the server is still starting (loading
        # zones, importing its HTTP routes) stops it cleanly once it has started.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.hangup)
        await self.start()
        log.info("server.started", generation=self.generation, worker=self.worker)
        await self._stop.wait()
        log.info("server.stopping")
        if self.fleet is not None:
            await self.fleet.stop()
        self.health.stop()
        self.alias.stop()
        self.cookie_secret.stop()
        if self.latency_share is not None:
            await asyncio.to_thread(self.latency_share.stop)
        await asyncio.to_thread(self.latency.stop)
        for task in self._tasks:
            task.cancel()
        for closer in self._closers:
            closer.close()
        if self.query_log is not None:
            self.query_log.close()  # what is buffered is written
        log.info("server.stopped")


def probe_regions(snapshot: Snapshot) -> dict[HealthKey, tuple[str, ...]]:
    """Each probed target and the regions of the pools it is a value of."""
    out: dict[HealthKey, set[str]] = {}
    for tree in snapshot.zones.values():
        for node in tree.nodes.values():
            for data in node.values():
                if data.router is None:
                    continue
                for pool in data.router.pools.values():
                    if pool.region is None:
                        continue
                    for value in pool.values:
                        if value.health_key is not None:
                            out.setdefault(value.health_key, set()).add(pool.region)
    return {key: tuple(sorted(regions)) for key, regions in out.items()}
