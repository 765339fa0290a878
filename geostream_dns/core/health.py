"""The health view routing reads: an immutable picture, swapped whole.

A value is identified for health by (zone, check name, target text). The
prober (or, in a fleet, the sites' verdicts combined by `fleet_down`)
publishes a new `HealthView`
with a higher generation whenever something changes; routers cache derived
pool health per generation. Operator decisions beat the monitors: `status:
up|down` on a value beats the checks, and a drained region counts as down.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

HealthKey = tuple[str, str, str]  # (zone origin, check name, target)


@dataclass(frozen=True, slots=True)
class HealthView:
    generation: int = 0
    down: frozenset[HealthKey] = frozenset()
    drained: frozenset[str] = frozenset()  # region names

    def is_up(self, key: HealthKey | None, status: str, region: str | None) -> bool:
        if region is not None and region in self.drained:
            return False
        if status == "up":
            return True
        if status == "down":
            return False
        return key is None or key not in self.down


ALL_UP = HealthView()


# -- a fleet's verdicts, combined --------------------------------------------------
#
# In a fleet each site's active prober publishes a verdict per target (after its
# own rise/fall). A target is down when at least `quorum` live sites say down:
# the health check's `quorum`, else a majority of the live sites, and never more
# than the live sites (so one live site's verdict stands). A live site that has
# no verdict for a target (it does not serve that zone yet) does not say down.

SiteVerdicts = Mapping[str, Mapping[HealthKey, bool]]  # site -> target -> up?


def quorum_needed(configured: int | None, live_sites: int) -> int:
    """How many live sites must say down for a target to be down."""
    wanted = configured if configured is not None else live_sites // 2 + 1
    return max(1, min(wanted, live_sites))


def fleet_down(verdicts: SiteVerdicts, live: Collection[str],
               quorum: Mapping[HealthKey, int | None]) -> frozenset[HealthKey]:
    """The targets down by the fleet's rule, from the live sites' verdicts.

    `quorum` maps each target to its check's configured quorum (None: majority).
    With no live site there is nothing to combine: callers keep the last view.
    """
    sites = [site for site in live if site in verdicts]
    n = len(live)
    down_votes: dict[HealthKey, int] = {}
    for site in sites:
        for key, up in verdicts[site].items():
            if not up:
                down_votes[key] = down_votes.get(key, 0) + 1
    return frozenset(key for key, votes in down_votes.items()
                     if votes >= quorum_needed(quorum.get(key), n))


# -- the per-target state machine ------------------------------------------------
#
# How this works: a target starts up (a restart must not black-hole traffic
# while the first probes run). `fall` consecutive failures take an up target
# down; `rise` consecutive passes bring a down target back. While a target is
# down its probes back off (a circuit breaker: a dead target costs few
# sockets), doubling from the check's interval up to HALF_OPEN_MAX seconds;
# the first passing probe closes the breaker again (the failure streak ends),
# so the remaining `rise - 1` passes come at the normal interval and the
# target is back in answers within `interval * rise + 1 s` of that first
# pass. The breaker opens only after BREAKER_THRESHOLD failures in
# a row, so a short outage recovers at the normal pace; and a down target is
# probed at least every HALF_OPEN_MAX seconds, however long its interval.

HALF_OPEN_MAX = 10.0
BREAKER_THRESHOLD = 10


@dataclass(slots=True)
class ProbeResult:
    ok: bool
    latency: float  # seconds
    reason: str  # "HTTP 200", "connection refused", "timeout after 2.0s", ...


@dataclass(slots=True)
class Transition:
    key: HealthKey
    old: str  # "up" | "down"
    new: str
    reason: str
    latency: float


@dataclass(slots=True)
class TargetState:
    key: HealthKey
    interval: float
    rise: int
    fall: int
    up: bool = True
    since: float = 0.0  # clock time of the last change (or of the start)
    passes: int = 0  # consecutive
    failures: int = 0  # consecutive
    checks: int = 0
    last: ProbeResult | None = None
    last_at: float | None = None

    def record(self, result: ProbeResult, now: float) -> Transition | None:
        """Apply one probe result; return the transition it caused, if any."""
        self.checks += 1
        self.last = result
        self.last_at = now
        if result.ok:
            self.passes += 1
            self.failures = 0
            if not self.up and self.passes >= self.rise:
                return self._change(True, result, now)
            return None
        self.failures += 1
        self.passes = 0
        if self.up and self.failures >= self.fall:
            return self._change(False, result, now)
        return None

    def _change(self, up: bool, result: ProbeResult, now: float) -> Transition:
        old = "up" if self.up else "down"
        self.up = up
        self.since = now
        return Transition(self.key, old, "up" if up else "down", result.reason, result.latency)

    @property
    def breaker_open(self) -> bool:
        return not self.up and self.failures > BREAKER_THRESHOLD

    def next_delay(self) -> float:
        """Seconds until the next probe (before jitter)."""
        if self.up:
            return self.interval
        if not self.breaker_open:
            return min(self.interval, HALF_OPEN_MAX)
        # Cap the exponent: a target down for hours would overflow the float.
        doublings = min(self.failures - BREAKER_THRESHOLD, 64)
        return min(HALF_OPEN_MAX, self.interval * 2.0 ** doublings)
