"""Health state for one server: the down-set routing obeys, plus drained regions.

Routing reads one immutable `HealthView`; this manager builds a new one (next
generation) whenever the down-set changes or an operator drains or undrains a
region, and hands it to `on_view` (the App publishes a new world with it), so
the very next query sees the change: nothing waits for a TTL.

Where the down-set comes from:

* alone (embedded mode, or production without Redis): this server's prober;
* in a fleet (`attach_fleet`), while Redis answers: the live sites' verdicts
  combined by the quorum rule (`core.health.fleet_down`). This server's
  prober runs only while it holds its site's probe lease, and then publishes
  its verdicts for the site; a server that takes the lease starts from the
  site's last verdicts;
* in a fleet while Redis does not answer: every server probes for itself and
  obeys its own prober, until Redis answers again.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.adapters.prober import LoopLagMonitor, Prober
from geostream_dns.adapters.stores import DrainStore
from geostream_dns.core.health import HealthKey, HealthView, fleet_down
from geostream_dns.core.snapshot import Snapshot

if TYPE_CHECKING:
    from geostream_dns.adapters.fleet import Fleet
    from geostream_dns.adapters.probes import ProbeFn

log = structlog.get_logger("geostream.health")


class DownSetFile:
    """The prober's down-set shared with the other `--workers` processes: the
    worker that probes writes it on every change, the others read it when it
    changes (one stat per reload tick), so every worker answers alike and each
    target is probed once."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None

    def write(self, down: frozenset[HealthKey]) -> None:
        atomic_write_text(self.path, json.dumps(sorted(down)), durable=False)

    def read_if_changed(self) -> frozenset[HealthKey] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return None
        try:
            keys = json.loads(self.path.read_text())
            down = frozenset((str(z), str(c), str(t)) for z, c, t in keys)
        except (OSError, ValueError, TypeError):
            return None  # being replaced: read it on the next tick
        self._stamp = stamp
        return down


class HealthManager:
    def __init__(self, on_view: Callable[[HealthView], None], drain_store: DrainStore,
                 probe: bool = True, shared: DownSetFile | None = None,
                 probe_fn: ProbeFn | None = None) -> None:
        """`probe`: run the prober here; `shared`: with `--workers`, the down-set
        file the probing worker writes (probe=True) or the others read."""
        self.on_view = on_view
        self.drain_store = drain_store
        self.shared = shared
        self.drained: frozenset[str] = drain_store.load()
        self.drained_since: dict[str, float] = {r: time.time() for r in self.drained}
        self.down: frozenset[HealthKey] = frozenset()
        self.local_down: frozenset[HealthKey] = frozenset()  # this server's prober's
        self.generation = 0
        self.view = HealthView()
        self.fleet: Fleet | None = None
        self.fleet_in_charge = False  # the fleet's verdicts decide (Redis answers)
        self.quorum: dict[HealthKey, int | None] = {}  # target -> its check's quorum
        # (target, new state) -> how often the state routing obeys changed
        self.transitions: dict[tuple[HealthKey, str], int] = {}
        self.prober = ((Prober(self._local_changed, probe_fn) if probe_fn is not None
                        else Prober(self._local_changed)) if probe else None)
        self.lag = LoopLagMonitor()
        # Serializes drain read-modify-write cycles (API writes, refreshes from
        # the store): each computes its new set from the last one applied.
        self.drain_lock = asyncio.Lock()
        self._publish()

    def follow_shared(self) -> None:
        """A worker that does not probe: take the probing worker's down-set."""
        if self.shared is not None and self.prober is None:
            down = self.shared.read_if_changed()
            if down is not None:
                self.set_down(down)

    def start(self) -> None:
        self.lag.start()

    def stop(self) -> None:
        self.lag.stop()
        if self.prober is not None:
            self.prober.stop()

    def sync(self, snapshot: Snapshot) -> None:
        """Probe the targets of a newly published snapshot."""
        self.quorum = {key: check.quorum for key, check in snapshot.health_targets.items()}
        if self.prober is not None:
            self.prober.sync(snapshot)
        self._decide()

    # -- the fleet -----------------------------------------------------------

    def attach_fleet(self, fleet: Fleet) -> None:
        """Take health from the fleet while Redis answers (see the module doc).
        The prober waits for the probe lease, or for Redis to fail."""
        self.fleet = fleet
        if self.prober is not None:
            self.prober.set_active(False)

    def follow_fleet(self) -> None:
        """Re-read who decides (Redis may have come or gone); called every tick."""
        fleet = self.fleet
        if fleet is None:
            return
        in_charge = fleet.link.up
        if in_charge != self.fleet_in_charge:
            self.fleet_in_charge = in_charge
            log.warning("health.source", source="fleet" if in_charge else "own prober",
                        site=fleet.site)
            self._set_probing()
            if in_charge:  # verdicts that changed while Redis was away, still unpublished
                self._publish_site()
            self._decide()

    def fleet_changed(self) -> None:
        """The sites' verdicts or the live sites changed, or Redis came or went (the
        fleet calls this)."""
        self.follow_fleet()
        self._decide()

    def leader_changed(self, leader: bool) -> None:
        """This server took or lost its site's probe lease (the fleet calls this).
        A server that takes it publishes every verdict of its prober at once: the
        site's verdicts in Redis may be gone (a Redis that restarted empty) or
        older than what this prober knows (it probed alone while Redis was away)."""
        self._set_probing()
        if leader:
            self._publish_site()

    def _publish_site(self) -> None:
        fleet, prober = self.fleet, self.prober
        if fleet is not None and prober is not None and fleet.leader and prober.active:
            states = {key: state.up for key, state in prober.states.items()}
            asyncio.get_running_loop().create_task(fleet.publish(states))

    def _set_probing(self) -> None:
        fleet, prober = self.fleet, self.prober
        if fleet is None or prober is None:
            return
        active = fleet.leader or not fleet.link.up
        seed = fleet.site_verdicts() if active and fleet.leader else None
        prober.set_active(active, seed)

    def _local_changed(self, down: frozenset[HealthKey]) -> None:
        """The prober's verdicts changed: publish them for the site if we hold its
        lease, and decide."""
        self.local_down = down
        self._publish_site()
        self._decide()

    def _decide(self) -> None:
        fleet = self.fleet
        if fleet is None or not fleet.link.up:
            self.set_down(self.local_down)
            return
        if not fleet.live_sites:
            return  # no live site: the last verdicts stand
        known = self.quorum
        down = fleet_down(fleet.verdicts, fleet.live_sites, known)
        self.set_down(frozenset(key for key in down if key in known))

    # Drains: the store calls (`read_drains`, `persist_drain`) may block on a
    # file or the database, so the App runs them in a worker thread; the state
    # changes (`apply_drains`) happen on the event loop.

    def read_drains(self) -> frozenset[str] | None:
        """Drains made by another process (another worker, another server of a
        production site), or None when the store has not changed."""
        if not self.drain_store.changed():
            return None
        return self.drain_store.load()

    def persist_drain(self, region: str, drained: bool, author: str = "") -> frozenset[str]:
        """Write a drain or undrain to the store; return the new drained set."""
        regions = self.drained | {region} if drained else self.drained - {region}
        if regions != self.drained:
            self.drain_store.save(frozenset(regions), author=author)
        return frozenset(regions)

    def apply_drains(self, drained: frozenset[str], author: str = "") -> bool:
        """Route with this drained set from the next query on; True if it changed."""
        if drained == self.drained:
            return False
        for region in sorted(drained - self.drained):
            self.drained_since[region] = time.time()
            log.warning("region.drained", region=region, author=author or None)
        for region in sorted(self.drained - drained):
            self.drained_since.pop(region, None)
            log.warning("region.undrained", region=region, author=author or None)
        self.drained = drained
        self._publish()
        return True

    def set_drained(self, region: str, drained: bool, author: str = "") -> bool:
        """Drain or undrain a region and persist it (blocking; tests and tools)."""
        return self.apply_drains(self.persist_drain(region, drained, author), author)

    async def drain(self, region: str, drained: bool, author: str = "") -> bool:
        """Drain or undrain from the event loop: store I/O in a worker thread, the
        whole read-modify-write under `drain_lock`, so concurrent drains never
        undo each other."""
        async with self.drain_lock:
            regions = await asyncio.to_thread(self.persist_drain, region, drained, author)
            return self.apply_drains(regions, author)

    async def refresh_drains(self) -> None:
        """Apply drains made elsewhere (see `read_drains`), under `drain_lock`."""
        async with self.drain_lock:
            drained = await asyncio.to_thread(self.read_drains)
            if drained is not None:
                self.apply_drains(drained)

    def set_down(self, down: frozenset[HealthKey]) -> None:
        if down != self.down:
            counts = self.transitions
            for key in down - self.down:
                counts[(key, "down")] = counts.get((key, "down"), 0) + 1
            for key in self.down - down:
                counts[(key, "up")] = counts.get((key, "up"), 0) + 1
            if self.fleet is not None and self.fleet_in_charge:
                log.warning("health.verdict", source="fleet",
                            down=sorted("/".join(k) for k in down - self.down),
                            up=sorted("/".join(k) for k in self.down - down),
                            sites=sorted(self.fleet.live_sites))
            self.down = down
            self._publish()
            if self.shared is not None and self.prober is not None:
                try:
                    self.shared.write(down)
                except OSError:
                    log.exception("health.share_failed", path=str(self.shared.path))

    def _publish(self) -> None:
        self.generation += 1
        self.view = HealthView(self.generation, self.down, self.drained)
        self.on_view(self.view)
