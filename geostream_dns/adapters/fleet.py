"""One server's membership of the fleet, through Redis: heartbeats, leases, verdicts.

How this works. Every server of a fleet (production mode with `REDIS_URL`)
runs one `Fleet`. Twice a second, in one pipelined round trip, it:

* writes its own heartbeat (`server:<id>`, JSON: site, role, version,
  generation served, health epoch, ready) with a 5 s expiry, so the fleet
  counts it as live while it beats;
* competes for its site's probe lease (`lease:<site>`, 2 s expiry, taken when
  free and renewed by its holder on every beat, in one compare-and-set script;
  a holder that lost track of it after a Redis blip renews it too): the holder is
  the one server of the site that probes, so endpoints see one probe stream
  per site; when it dies the lease lapses and another server of the site
  takes it within 2.5 s;
* if it holds the lease, writes the site's heartbeat (`site:<site>`, 5 s
  expiry) with the version of the site's verdicts;
* reads every site's heartbeat: a site is live while its key exists, and a
  site whose verdict version moved is read again (`verdicts:<site>`, a hash
  target -> up/down).

The holder publishes its prober's verdicts (after its own rise/fall) as soon
as one changes: the changed fields of `verdicts:<site>`, the site's version
and the fleet's health epoch in one transaction, then a message on the
`health` channel. Every server listens on that channel and reads the site's
verdicts at once, so a change reaches every server's answers well within a
second; the beat is the backstop for a lost message.

All keys and the channel start with `--redis-prefix`. Redis errors never
leave this module: a failed call marks the link down (`RedisLink.lost`), the
health manager makes every server probe for itself, and the loops retry with
backoff until Redis answers again, when the server rejoins by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from geostream_dns.adapters.redis_link import REDIS_ERRORS, RedisLink
from geostream_dns.core.health import HealthKey

log = structlog.get_logger("geostream.fleet")

BEAT = 0.5  # seconds between heartbeats (and lease renewals)
LIVE_MS = 5000  # a heartbeat counts this long
LEASE_MS = 2000  # a probe lease lapses this long after its last renewal
SERVERS_EVERY = 4  # beats between readings of the fleet's servers (for metrics)

# Take the lease if it is free, renew it if it is ours (also when this server
# forgot it held it: after a short Redis blip it keeps its lease instead of
# leaving its site without a prober until the lease lapses); 0 if another holds it.
_TAKE_OR_RENEW = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
if holder then
  return 0
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """A server as it reports itself."""

    id: str
    site: str
    role: str  # "dns" (answers queries) or "prober" (serve --probe-only)
    version: str
    generation: int
    health_epoch: int
    ready: bool
    last_seen: float  # wall time of its last heartbeat

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def encode_target(key: HealthKey) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def decode_target(field: bytes | str) -> HealthKey | None:
    try:
        zone, check, target = json.loads(field)
    except (ValueError, TypeError):
        return None
    if not all(isinstance(part, str) for part in (zone, check, target)):
        return None
    return (zone, check, target)


class Fleet:
    def __init__(self, link: RedisLink, server_id: str, site: str, role: str, version: str,
                 *, can_probe: bool, status: Callable[[], tuple[int, bool]],
                 on_change: Callable[[], None], on_leader: Callable[[bool], None]) -> None:
        """`status()` gives (generation served, ready); `on_change()` is called when
        the sites' verdicts or the live sites change, `on_leader(bool)` when this
        server takes or loses its site's probe lease (both on the event loop)."""
        self.link = link
        self.server_id = server_id
        self.site = site
        self.role = role
        self.version = version
        self.can_probe = can_probe
        self.status = status
        self.on_change = on_change
        self.on_leader = on_leader
        self.leader = False
        self.live_sites: frozenset[str] = frozenset()
        self.verdicts: dict[str, dict[HealthKey, bool]] = {}  # site -> target -> up
        self.site_versions: dict[str, int] = {}
        self.epoch = 0  # the highest fleet health epoch applied here
        self.servers: list[ServerRecord] = []
        self.published: dict[HealthKey, bool] = {}  # what this server wrote for its site
        self._publishing = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._beats = 0

    # -- keys --------------------------------------------------------------

    def _k(self, *parts: str) -> str:
        return self.link.key(*parts)

    @property
    def channel(self) -> str:
        return self._k("health")

    # -- life cycle --------------------------------------------------------

    async def join(self, timeout: float = 5.0) -> bool:
        """First contact, before the server answers: heartbeat, lease, every live
        site's verdicts. False (logged loudly) when Redis does not answer in time.
        A Redis that is down refuses at once; the bound is for a slow one (a busy
        machine), where waiting beats answering from "everything up"."""
        try:
            async with asyncio.timeout(timeout):
                await self._beat()
        except REDIS_ERRORS as exc:
            self.link.lost(exc)
            return False
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._beating()), loop.create_task(self._listening())]

    async def stop(self) -> None:
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                await task
        if self.link.up:
            client = self.link.client()
            with contextlib.suppress(*REDIS_ERRORS):
                async with asyncio.timeout(1.0):
                    if self.leader:
                        await client.eval(_RELEASE, 1, self._k("lease", self.site),
                                          self.server_id)
                    await client.delete(self._k("server", self.server_id))

    # -- the beat ------------------------------------------------------------

    async def _beating(self) -> None:
        while not self._stopped:
            try:
                await self._beat()
                delay = BEAT
            except REDIS_ERRORS as exc:
                delay = self.link.lost(exc)
                self._lose_lease()
                self.on_change()  # health from this server's own prober, at once
            except Exception:  # noqa: BLE001 - the fleet loop must never die
                log.exception("fleet.beat_failed")
                delay = BEAT
            await asyncio.sleep(delay)

    async def _beat(self) -> None:
        client = self.link.client()
        generation, ready = self.status()
        record = ServerRecord(self.server_id, self.site, self.role, self.version, generation,
                              self.epoch, ready, time.time())
        lease = self._k("lease", self.site)
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(self._k("server", self.server_id), json.dumps(record.to_json()),
                     px=LIVE_MS)
            pipe.sadd(self._k("servers"), self.server_id)
            if self.can_probe:
                pipe.eval(_TAKE_OR_RENEW, 1, lease, self.server_id, LEASE_MS)
            pipe.smembers(self._k("sites"))
            results = await pipe.execute()
        self.link.answered()
        if self.can_probe:
            self._lease_result(bool(results[2]))
        sites = sorted(_text(s) for s in results[-1])
        await self._read_sites(sites)
        if self._beats % SERVERS_EVERY == 0:
            self.servers = await list_servers(self.link)
        self._beats += 1

    def _lease_result(self, held: bool) -> None:
        if held != self.leader:
            self.leader = held
            if held:  # what the site's verdicts in Redis hold is unknown: publish all
                self.published = {}
            log.info("fleet.lease_taken" if held else "fleet.lease_lost", site=self.site,
                     server=self.server_id)
            self.on_leader(held)

    def _lose_lease(self) -> None:
        """Redis is away: nobody can hold a lease we can see; probe for ourselves."""
        if self.leader:
            self.leader = False
            self.on_leader(False)

    async def _read_sites(self, sites: list[str]) -> None:
        client = self.link.client()
        if self.leader and self.site not in sites:
            sites.append(self.site)
        async with client.pipeline(transaction=False) as pipe:
            if self.leader:  # our site's heartbeat, with the version of its verdicts
                pipe.set(self._k("site", self.site), json.dumps(
                    {"leader": self.server_id, "version": self.site_versions.get(self.site, 0)}),
                    px=LIVE_MS)
                pipe.sadd(self._k("sites"), self.site)
            for site in sites:
                pipe.get(self._k("site", site))
            pipe.get(self._k("health", "epoch"))
            results = await pipe.execute()
        beats = results[2 if self.leader else 0:-1]
        fleet_epoch = int(results[-1] or 0)
        live: set[str] = set()
        moved: list[str] = []
        for site, raw in zip(sites, beats, strict=True):
            if raw is None:
                continue
            live.add(site)
            if site == self.site and self.leader:
                continue  # our own verdicts: this server writes them (`publish`)
            try:
                version = int(json.loads(raw).get("version", 0))
            except (ValueError, TypeError, AttributeError):
                version = -1
            if version != self.site_versions.get(site) or site not in self.verdicts:
                moved.append(site)
                self.site_versions[site] = version
        for site in moved:
            await self._read_verdicts(site)
        changed = bool(moved) or frozenset(live) != self.live_sites
        if frozenset(live) != self.live_sites:
            log.info("fleet.sites_live", sites=sorted(live), was=sorted(self.live_sites))
            self.live_sites = frozenset(live)
        self.epoch = max(self.epoch, fleet_epoch)
        if changed:
            self.on_change()

    async def _read_verdicts(self, site: str) -> None:
        raw = await self.link.client().hgetall(self._k("verdicts", site))
        if site == self.site and self.leader:
            # The lease was ours by the time Redis answered: what we publish is
            # newer than what was read (a read racing our first publish would
            # otherwise leave our own site's verdicts empty for good).
            return
        verdicts: dict[HealthKey, bool] = {}
        for field, value in raw.items():
            key = decode_target(field)
            if key is not None:
                verdicts[key] = _text(value) == "up"
        self.verdicts[site] = verdicts

    # -- the change channel --------------------------------------------------

    async def _listening(self) -> None:
        while not self._stopped:
            pubsub = None
            try:
                pubsub = self.link.client().pubsub()
                await pubsub.subscribe(self.channel)
                while not self._stopped:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None:
                        await self._heard(_text(message.get("data", b"")))
            except REDIS_ERRORS as exc:
                delay = self.link.lost(exc)
                self._lose_lease()
                self.on_change()
                await asyncio.sleep(delay)
            except Exception:  # noqa: BLE001 - the listener must never die
                log.exception("fleet.listen_failed")
                await asyncio.sleep(BEAT)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(*REDIS_ERRORS):
                        await pubsub.aclose()

    async def _heard(self, message: str) -> None:
        site, _, rest = message.partition(" ")
        version_text, _, epoch_text = rest.partition(" ")
        if not site or not version_text.isdigit():
            return
        version = int(version_text)
        if epoch_text.isdigit():
            self.epoch = max(self.epoch, int(epoch_text))
        if site == self.site and self.leader:
            return  # our own change: applied when we published it
        if version == self.site_versions.get(site):
            return
        self.site_versions[site] = version
        await self._read_verdicts(site)
        self.live_sites = self.live_sites | {site}
        self.on_change()

    # -- publishing (the site's lease holder) ----------------------------------

    async def publish(self, states: Mapping[HealthKey, bool]) -> None:
        """Write this site's verdicts (only what changed) and announce them."""
        if not self.leader or not self.link.up:
            return
        async with self._publishing:
            changed = {k: up for k, up in states.items() if self.published.get(k) != up}
            gone = [k for k in self.published if k not in states]
            if not changed and not gone:
                return
            key = self._k("verdicts", self.site)
            client = self.link.client()
            try:
                async with client.pipeline(transaction=True) as pipe:
                    if changed:
                        pipe.hset(key, mapping={encode_target(k): "up" if up else "down"
                                                for k, up in changed.items()})
                    if gone:
                        pipe.hdel(key, *(encode_target(k) for k in gone))
                    pipe.incr(self._k("site-version", self.site))
                    pipe.incr(self._k("health", "epoch"))
                    results = await pipe.execute()
                version, epoch = int(results[-2]), int(results[-1])
                await client.publish(self.channel, f"{self.site} {version} {epoch}")
            except REDIS_ERRORS as exc:
                self.link.lost(exc)
                self._lose_lease()
                return
            self.published = dict(states)
            self.site_versions[self.site] = version
            self.verdicts[self.site] = dict(states)
            self.live_sites = self.live_sites | {self.site}
            self.epoch = max(self.epoch, epoch)
            log.info("fleet.verdicts_published", site=self.site, changed=len(changed),
                     removed=len(gone), version=version, epoch=epoch)
        self.on_change()

    def site_verdicts(self) -> Mapping[HealthKey, bool]:
        """What this server's site last published (seeds a prober that takes over)."""
        return self.verdicts.get(self.site, {})

    # -- the fleet, for people -------------------------------------------------

    async def list_servers(self) -> list[ServerRecord]:
        """Every live server as it reports itself (and forget the dead ones)."""
        return await list_servers(self.link)


async def list_servers(link: RedisLink) -> list[ServerRecord]:
    """Every live server of the fleet on `link`, sorted by site and id."""
    client = link.client()
    ids = sorted(_text(i) for i in await client.smembers(link.key("servers")))
    if not ids:
        return []
    raws = await client.mget([link.key("server", i) for i in ids])
    out: list[ServerRecord] = []
    dead: list[str] = []
    for server_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            dead.append(server_id)
            continue
        try:
            data = json.loads(raw)
            out.append(ServerRecord(
                str(data["id"]), str(data["site"]), str(data["role"]), str(data["version"]),
                int(data["generation"]), int(data["health_epoch"]), bool(data["ready"]),
                float(data["last_seen"])))
        except (ValueError, TypeError, KeyError):
            continue  # not one of ours
    if dead:
        await client.srem(link.key("servers"), *dead)
    return sorted(out, key=lambda r: (r.site, r.id))


@dataclass(frozen=True, slots=True)
class ChangeStatus:
    generation: int
    status: str  # "INSYNC" | "PENDING"
    servers: list[ServerRecord]
    lagging: list[ServerRecord]

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "status": self.status,
                "servers": [s.to_json() for s in self.servers],
                "lagging": [s.to_json() for s in self.lagging]}


def change_status(generation: int, servers: list[ServerRecord]) -> ChangeStatus:
    """INSYNC once every live answering server serves `generation` or later
    (probe-only servers do not count)."""
    answering = [s for s in servers if s.role == "dns"]
    lagging = [s for s in answering if s.generation < generation]
    return ChangeStatus(generation, "PENDING" if lagging or not answering else "INSYNC",
                        servers, lagging)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
