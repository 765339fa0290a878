"""External ALIAS targets, resolved in the background and kept in a cache.

How this works: an ALIAS whose target is outside the hosted zones (a CDN or
load balancer name, like a Route 53 alias to CloudFront) answers with the
target's A and AAAA records. Those are never looked up while a query waits:
`AliasResolver` runs one asyncio task that resolves every wanted target
(`want`, called with `Snapshot.alias_targets` whenever a snapshot is
published) through one resolver — the address given with `--alias-resolver`,
or the system's resolvers from /etc/resolv.conf — and keeps, per target, the
last good answer and when to ask again:

* a target is asked again when its TTL runs out (the smallest TTL of its A and
  AAAA answers, CNAME chain included), but never sooner than `floor` seconds
  and never later than `ceiling` seconds;
* a target that does not exist, or has no records of a type, is a good answer
  too: the ALIAS then answers NODATA for that type;
* when the resolver fails (timeout, SERVFAIL, REFUSED, no route), the last good
  answer is kept and served, the failure logged (`alias.resolve_failed`) and
  counted, and the target asked again after a back-off (`floor`, doubling, at
  most `RETRY_MAX` seconds);
* a target never resolved yet has no entry, and its ALIAS answers SERVFAIL.

The results are one immutable mapping, target name -> `ExternalTarget`,
replaced whole when a target's records or TTLs change; `on_change` gets the
new mapping, and is awaited when it is a coroutine (the App renders the
affected answers into a new snapshot, `core.build.with_externals`, in a
worker thread, and publishes it). The query path only ever
reads pre-rendered answers.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.resolver
import structlog

from geostream_dns.config.settings import SYSTEM_RESOLVER as SYSTEM
from geostream_dns.config.settings import parse_resolver
from geostream_dns.core.snapshot import ExternalTarget

log = structlog.get_logger("geostream.alias")

DEFAULT_FLOOR = 5.0  # seconds: never ask for a target more often
DEFAULT_CEILING = 3600.0  # seconds: ask for every target at least this often
RETRY_MAX = 60.0  # seconds: the longest back-off after failures
QUERY_TIMEOUT = 2.0  # seconds for one target's A or AAAA, retries included
PARALLEL = 16  # targets resolved at once

Results = Mapping[dns.name.Name, ExternalTarget]


class ResolveFailed(Exception):
    """The resolver gave no usable answer (the last good one is kept)."""


@dataclass
class TargetState:
    """One wanted target: its last good answer and when to ask again."""

    name: dns.name.Name
    result: ExternalTarget | None = None
    resolved_at: float | None = None  # wall clock of the last good answer
    refresh_s: float = 0.0  # how long the last good answer is good for
    attempts: int = 0
    failures: int = 0  # consecutive
    last_error: str | None = None
    due: float = 0.0  # monotonic time of the next attempt

    @property
    def state(self) -> str:
        """pending (never resolved), resolved, or stale (the last attempt failed)."""
        if self.result is None:
            return "pending"
        return "stale" if self.failures else "resolved"


def make_resolver(where: str, timeout: float = QUERY_TIMEOUT) -> dns.asyncresolver.Resolver:
    """A resolver for `where`: SYSTEM (/etc/resolv.conf) or `ADDR[:PORT]`."""
    if where == SYSTEM:
        resolver = dns.asyncresolver.Resolver()
    else:
        host, port = parse_resolver(where)
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.lifetime = timeout
    resolver.timeout = timeout / 2
    resolver.cache = None
    return resolver


class AliasResolver:
    def __init__(self, where: str | None,
                 on_change: Callable[[Results], Awaitable[None] | None], *,
                 floor: float = DEFAULT_FLOOR, ceiling: float = DEFAULT_CEILING,
                 timeout: float = QUERY_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.where = where  # None: external targets are not resolved at all
        self.on_change = on_change
        self.floor = max(floor, 0.1)
        self.ceiling = max(ceiling, self.floor)
        self.timeout = timeout
        self._clock = clock
        self._resolver = make_resolver(where, timeout) if where is not None else None
        self.targets: dict[dns.name.Name, TargetState] = {}
        self.results: Results = MappingProxyType({})
        self.counts = {"ok": 0, "failed": 0, "updates": 0}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned_off = False

    # -- what to resolve ---------------------------------------------------------

    def want(self, targets: frozenset[dns.name.Name]) -> None:
        """Resolve exactly these targets from now on (new ones right away)."""
        if targets == frozenset(self.targets):
            return
        for name in list(self.targets):
            if name not in targets:
                del self.targets[name]
        for name in targets:
            self.targets.setdefault(name, TargetState(name))
        self.results = MappingProxyType({n: s.result for n, s in self.targets.items()
                                         if s.result is not None})
        if targets and self._resolver is None and not self._warned_off:
            self._warned_off = True
            log.warning("alias.resolver_off", targets=len(targets),
                        message="ALIAS targets outside the hosted zones are not resolved: "
                                "their ALIAS answers SERVFAIL")
        self._wake.set()

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        if self._resolver is not None and self._task is None:
            self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            now = self._clock()
            due = [s for s in self.targets.values() if s.due <= now]
            if due:
                await self.refresh(due)
                continue
            wait = min((s.due for s in self.targets.values()), default=now + self.ceiling) - now
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.01))
            except TimeoutError:
                pass

    async def refresh(self, states: list[TargetState]) -> None:
        """Resolve these targets (at most PARALLEL at once); publish what changed."""
        limit = asyncio.Semaphore(PARALLEL)

        async def one(state: TargetState) -> bool:
            async with limit:
                return await self._refresh_one(state)

        changed = await asyncio.gather(*(one(s) for s in states))
        if any(changed):
            self.results = MappingProxyType({n: s.result for n, s in self.targets.items()
                                             if s.result is not None})
            self.counts["updates"] += 1
            done = self.on_change(self.results)
            if inspect.isawaitable(done):
                await done

    async def _refresh_one(self, state: TargetState) -> bool:
        """Ask for one target; True when its answer changed."""
        state.attempts += 1
        try:
            (a, a_ttl), (aaaa, aaaa_ttl) = await asyncio.gather(
                self._ask(state.name, dns.rdatatype.A), self._ask(state.name, dns.rdatatype.AAAA))
        except ResolveFailed as exc:
            state.failures += 1
            state.last_error = str(exc)
            retry = min(self.floor * 2 ** (state.failures - 1), max(RETRY_MAX, self.floor))
            state.due = self._clock() + retry
            self.counts["failed"] += 1
            log.warning("alias.resolve_failed", target=state.name.to_text(), error=str(exc),
                        failures=state.failures, kept_last_good=state.result is not None,
                        retry_s=round(retry, 2))
            return False
        # A type without records keeps no TTL: a new negative TTL changes no answer.
        result = ExternalTarget(a, a_ttl if a else 0, aaaa, aaaa_ttl if aaaa else 0)
        ttls = [ttl for ttl, records in ((a_ttl, a), (aaaa_ttl, aaaa)) if records] or [
            min(a_ttl, aaaa_ttl)]
        state.refresh_s = min(max(float(min(ttls)), self.floor), self.ceiling)
        state.due = self._clock() + state.refresh_s
        state.resolved_at = time.time()
        if state.failures:
            log.info("alias.resolver_recovered", target=state.name.to_text(),
                     failures=state.failures)
        state.failures = 0
        state.last_error = None
        self.counts["ok"] += 1
        if result == state.result:
            return False
        log.info("alias.resolved", target=state.name.to_text(),
                 a=[r.to_text() for r in a], aaaa=[r.to_text() for r in aaaa],
                 ttl=min(ttls), refresh_s=state.refresh_s)
        state.result = result
        return True

    async def _ask(self, name: dns.name.Name,
                   rdtype: dns.rdatatype.RdataType) -> tuple[tuple[dns.rdata.Rdata, ...], int]:
        """(records, TTL) of one type; no records (and the negative TTL) for a name
        without them or that does not exist."""
        assert self._resolver is not None
        try:
            answer = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False,
                                                  search=False)
        except dns.resolver.NXDOMAIN as exc:
            return (), self._negative_ttl(list(exc.responses().values()))
        except (dns.exception.DNSException, OSError) as exc:
            raise ResolveFailed(f"{dns.rdatatype.to_text(rdtype)}: "
                                f"{type(exc).__name__}: {exc}") from None
        if answer.rrset is None:
            return (), self._negative_ttl([answer.response])
        records = tuple(sorted(answer.rrset, key=lambda r: r.to_wire()))  # type: ignore[arg-type]
        ttl = answer.chaining_result.minimum_ttl
        return records, int(ttl)

    def _negative_ttl(self, responses: list[Any]) -> int:
        """RFC 2308: min(SOA TTL, SOA MINIMUM) of the negative answer, else the floor."""
        for response in responses:
            if not isinstance(response, dns.message.Message):
                continue
            for rrset in response.authority:
                if rrset.rdtype == dns.rdatatype.SOA:
                    return int(min(rrset.ttl, rrset[0].minimum))
        return int(self.floor)

    # -- for people and metrics ------------------------------------------------------

    def describe(self, target: dns.name.Name) -> dict[str, Any] | None:
        """The target's resolver state as JSON data; None when it is not wanted."""
        state = self.targets.get(target)
        if state is None:
            return None
        now = self._clock()
        return {"state": state.state if self._resolver is not None else "off",
                "resolver": self.where,
                "resolved_at": state.resolved_at,
                "refresh_s": state.refresh_s or None,
                "next_attempt_in_s": round(max(state.due - now, 0.0), 3)
                if self._resolver is not None else None,
                "attempts": state.attempts,
                "consecutive_failures": state.failures,
                "last_error": state.last_error}

    def states(self) -> dict[str, int]:
        out = {"pending": 0, "resolved": 0, "stale": 0}
        for state in self.targets.values():
            out[state.state] += 1
        return out

    def oldest_answer_age(self) -> float:
        """Seconds since the oldest answer being served was resolved (0: none)."""
        times = [s.resolved_at for s in self.targets.values() if s.resolved_at is not None]
        return max(time.time() - min(times), 0.0) if times else 0.0
