"""The health prober: checks every (health check, value) target on its interval.

How this works: `sync(snapshot)` derives the distinct targets from the
snapshot's routed records — (zone, check name, value) with the check's
settings — starts one task per new target, stops tasks of targets that are
gone, and keeps the state of those that stay (a reload never resets health).
In a fleet only one prober per site probes at a time: the others are paused
(`set_active(False)`: no tasks, no sockets) and, when they take over, start
from the states the site last published (`set_active(True, seed)`).
Each task waits a random fraction of its interval first, so targets are not
probed in lock-step, then probes, feeds the result to its `TargetState`
(hysteresis and circuit breaker, `core/health.py`) and starts the next probe
`next_delay() * U(0.9, 1.0)` after the start of the last one. A transition is
logged, counted, and published at once through `on_change` as a new
down-set: routing reads it on the very next query.

Everything runs on the serving event loop; probes are asyncio streams, so
connecting, TLS and reading never block DNS answers. `LoopLagMonitor`
measures how late the loop runs timers, to prove it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from geostream_dns.adapters.probes import ProbeFn, probe, tls_context
from geostream_dns.core.health import HealthKey, ProbeResult, TargetState, Transition
from geostream_dns.core.model import HealthCheck
from geostream_dns.core.snapshot import Snapshot

log = structlog.get_logger("geostream.prober")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Address ranges reserved for documentation (RFC 5737, RFC 3849). No real
# endpoint lives there, so they are never probed: the sample zones and the
# docs use them, and a prober must not send traffic to them.
DOCUMENTATION_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))
NOT_PROBED = "not probed: documentation address (RFC 5737/3849)"


def is_documentation_address(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in network for network in DOCUMENTATION_NETWORKS
               if network.version == address.version)


@dataclass(frozen=True, slots=True)
class Target:
    key: HealthKey  # (zone, check name, value text)
    check: HealthCheck

    @property
    def address(self) -> str:
        return self.key[2]


def targets_of(snapshot: Snapshot) -> dict[HealthKey, Target]:
    """Every distinct (zone, check, value) that a routed record asks to check."""
    return {key: Target(key, check) for key, check in snapshot.health_targets.items()}


@dataclass
class ProberStats:
    checks: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    transitions: dict[tuple[HealthKey, str], int] = field(default_factory=dict)


class Prober:
    def __init__(self, on_change: Callable[[frozenset[HealthKey]], None],
                 probe_fn: ProbeFn = probe, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.on_change = on_change
        self.probe_fn = probe_fn
        self.clock = clock
        self.rng = rng or random.Random()
        self.active = True  # probing; a paused prober keeps its targets but runs no probes
        self.targets: dict[HealthKey, Target] = {}
        self.states: dict[HealthKey, TargetState] = {}
        self.tasks: dict[HealthKey, asyncio.Task[None]] = {}
        self.stats = ProberStats()
        # Load the CA store now, at start-up: doing it on the first HTTPS probe
        # would stall the serving loop for ~20 ms.
        tls_context(True)
        tls_context(False)
        self.wall_since: dict[HealthKey, float] = {}  # wall-clock time of the last change

    def down(self) -> frozenset[HealthKey]:
        return frozenset(k for k, s in self.states.items() if not s.up)

    def sync(self, snapshot: Snapshot) -> None:
        """Probe exactly the targets of this snapshot (call on the event loop)."""
        wanted = targets_of(snapshot)
        for key in list(self.targets):
            if key not in wanted or wanted[key].check != self.targets[key].check:
                task = self.tasks.pop(key, None)
                if task is not None:
                    task.cancel()
                if key not in wanted:
                    self.states.pop(key, None)
                    self.targets.pop(key, None)
                    self.wall_since.pop(key, None)
        now = self.clock()
        for key, target in wanted.items():
            if key in self.tasks:
                continue
            check = target.check
            state = self.states.get(key)
            if state is None:
                state = TargetState(key, check.interval, check.rise, check.fall, since=now)
                self.states[key] = state
                self.wall_since[key] = time.time()
            else:  # the check's settings changed: keep the health, take the new pace
                state.interval, state.rise, state.fall = check.interval, check.rise, check.fall
            self.targets[key] = target
            if is_documentation_address(target.address):
                state.last = ProbeResult(True, 0.0, NOT_PROBED)
                continue
            if self.active:
                self.tasks[key] = asyncio.get_running_loop().create_task(
                    self._run(target, state))
        self.on_change(self.down())

    def set_active(self, active: bool, seed: Mapping[HealthKey, bool] | None = None) -> None:
        """Start or stop probing (call on the event loop). A prober that starts
        takes each target's state from `seed` (the site's last published
        verdicts) when given, so a takeover does not start from "all up"."""
        if active == self.active:
            return
        self.active = active
        if not active:
            self.stop()
            return
        now = self.clock()
        for key, state in self.states.items():
            if seed is not None and key in seed and seed[key] != state.up:
                state.up, state.since = seed[key], now
                state.passes = state.failures = 0
                self.wall_since[key] = time.time()
        loop = asyncio.get_running_loop()
        for key, target in self.targets.items():
            if key not in self.tasks and not is_documentation_address(target.address):
                self.tasks[key] = loop.create_task(self._run(target, self.states[key]))
        self.on_change(self.down())

    def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        self.tasks.clear()

    async def _run(self, target: Target, state: TargetState) -> None:
        # Probes are scheduled start to start, and jitter only ever shortens the
        # gap: a probe that hangs until its timeout does not push the next one
        # back, so `fall` failures take at most interval * fall + timeout.
        loop = asyncio.get_running_loop()
        next_start = loop.time() + self.rng.uniform(0, min(state.interval, 1.0))
        while True:
            await asyncio.sleep(max(0.0, next_start - loop.time()))
            started = loop.time()
            delay = state.interval
            try:
                result = await self.probe_fn(target.check, target.address)
                self._observe(result)
                transition = state.record(result, self.clock())
                if transition is not None:
                    self._transition(transition)
                delay = state.next_delay()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must never end a target's probing
                log.exception("health.probe_failed", target=target.address)
            next_start = started + delay * self.rng.uniform(0.9, 1.0)

    def _observe(self, result: ProbeResult) -> None:
        stats = self.stats
        stats.checks[result.ok] += 1
        stats.latency_buckets[bisect_left(LATENCY_BUCKETS, result.latency)] += 1
        stats.latency_sum += result.latency

    def _transition(self, t: Transition) -> None:
        zone, check, value = t.key
        counts = self.stats.transitions
        counts[(t.key, t.new)] = counts.get((t.key, t.new), 0) + 1
        self.wall_since[t.key] = time.time()
        log.warning("health.changed", zone=zone, check=check, target=value, old=t.old,
                    new=t.new, reason=t.reason, latency_s=round(t.latency, 4))
        self.on_change(self.down())


class LoopLagMonitor:
    """How late the event loop runs a timer: the stall any blocking work causes."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.max_lag = 0.0
        self.samples = 0
        self.lag_sum = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            lag = max(0.0, loop.time() - before - self.period)
            self.samples += 1
            self.lag_sum += lag
            self.max_lag = max(self.max_lag, lag)
