"""The world a query is answered in: one snapshot, one health and latency view, memos.

How this works: everything the resolver reads is one frozen `World` — the
compiled snapshot, the health view routing obeys, the latency view `latency`
rules read, the GeoIP locator, the
random source for weighted picks, and the memo tables that belong to them.
The adapters build a new world off the query path whenever one of those
changes (a new snapshot, a health verdict, a drain, a batch of latency
measurements) and publish it with one
assignment; a query in flight finishes in the world it started in, and the
resolver never waits, locks or asks anything while answering.

Memo tables are the only thing the query path changes, and each is bounded:

* `answers` and `routed` start as copies of the snapshot's pre-rendered
  answers and routed names; the slow path adds what it learns (negative
  answers, wildcard syntheses, routed names found by lookup), at most
  DERIVED_LIMIT entries, then starts over. They and the other snapshot-only
  tables (`SnapshotMemo`) are shared by every world of the same snapshot, so a
  health change does not throw them away;
* `selections` maps a question plus the query's OPT record as sent (which
  holds the ECS option, so it names the client network) to the entry that
  answers it — a routed answer for that network, or a static answer with the
  OPT record to send — and a routed name's question plus source address to
  that address's answer. It depends on health and latency, so each world has its own, at
  most SELECTION_LIMIT entries (cleared when full);
* `exact` maps a query's bytes after its ID to the reply made for it (UDP and
  TCP): only for answers that hold for every client sending those bytes (a
  static answer, or a routed one whose network is in the query's ECS option),
  at most EXACT_LIMIT entries, per world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from geostream_dns.core.answer import Answer, ByAddress, RoutedName, Shuffled, Tailored, Weighted
from geostream_dns.core.cookies import Cookies
from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.health import ALL_UP, HealthView
from geostream_dns.core.latency import NO_LATENCY, LatencyView
from geostream_dns.core.outcome import Outcome, Outcomes
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.snapshot import EMPTY, Snapshot

DERIVED_LIMIT = 50_000  # answers learned by the slow path, per snapshot
RENDERED_LIMIT = 100_000  # routed renderings, per snapshot
SELECTION_LIMIT = 200_000  # per-network entries, per world
EXACT_LIMIT = 100_000  # replies kept by query bytes, per world

# The reply to a query as sent (after its ID): over UDP, over TCP, its outcome, and
# None; or, for a weighted pool, the replies of each value (UDP, TCP), the outcome
# and the running weight sums to pick one by.
ExactReply = (tuple[bytes, bytes, Outcome, None]
              | tuple[tuple[bytes, ...], tuple[bytes, ...], Outcome, tuple[int, ...]])

SelectionEntry = Tailored | Weighted | Shuffled | ByAddress


class SnapshotMemo:
    """The memo tables that depend on the snapshot alone."""

    __slots__ = ("answers", "routed", "derived", "rendered", "orderings", "outcomes")

    def __init__(self, snapshot: Snapshot) -> None:
        self.answers: dict[bytes, Answer] = dict(snapshot.answers)
        self.routed: dict[bytes, RoutedName] = dict(snapshot.routed)
        self.derived: list[bytes] = []  # keys the slow path added to `answers` or `routed`
        # (question key, decision key[, True for the signed rendering]) -> the answer
        # rendered for that decision
        self.rendered: dict[tuple[Any, ...], Answer] = {}
        self.orderings: dict[Any, Any] = {}  # nearest orderings, see RouteContext
        self.outcomes = Outcomes()

    def learn(self, key: bytes, entry: Answer | RoutedName) -> None:
        if len(self.derived) >= DERIVED_LIMIT:
            for old in self.derived:
                self.answers.pop(old, None)
                self.routed.pop(old, None)
            self.derived.clear()
        if isinstance(entry, RoutedName):
            self.routed[key] = entry
        else:
            self.answers[key] = entry
        self.derived.append(key)

    def remember_rendering(self, key: tuple[Any, ...], answer: Answer) -> None:
        if len(self.rendered) >= RENDERED_LIMIT:
            self.rendered.clear()
        self.rendered[key] = answer


@dataclass(frozen=True, slots=True)
class World:
    snapshot: Snapshot
    health: HealthView
    geo: GeoLocator
    rng: random.Random
    memo: SnapshotMemo
    answers: dict[bytes, Answer]  # the memo's, read on every query
    routed: dict[bytes, RoutedName]  # the memo's
    selections: dict[Any, SelectionEntry]
    route: RouteContext
    exact: dict[bytes | tuple[bytes, str], ExactReply]
    # The server's cookie secrets and clock (shared by every world of a server,
    # updated in place by the adapters) and its id (NSID, CH TXT id.server).
    cookies: Cookies
    server_id: bytes
    # (query bytes after the ID, client, over TCP) -> (the second of the cookie
    # clock it was made in, reply after the ID, outcome): replies to queries with
    # a COOKIE option, kept for the second their server cookie's stamp stays.
    cookied: dict[tuple[bytes, str, bool], tuple[int, bytes, Outcome]]
    latency: LatencyView = NO_LATENCY

    @classmethod
    def create(cls, snapshot: Snapshot = EMPTY, health: HealthView = ALL_UP,
               geo: GeoLocator | None = None, rng: random.Random | None = None,
               cookies: Cookies | None = None, server_id: bytes = b"",
               latency: LatencyView = NO_LATENCY) -> World:
        memo = SnapshotMemo(snapshot)
        rng = rng if rng is not None else random.Random()
        return cls(snapshot, health, geo if geo is not None else GeoLocator(None),
                   rng, memo, memo.answers, memo.routed, {},
                   RouteContext(health, memo.orderings, latency), {},
                   cookies if cookies is not None else Cookies(rng.randbytes(16)), server_id,
                   {}, latency)

    def with_snapshot(self, snapshot: Snapshot) -> World:
        """The same health, latency, GeoIP, randomness and identity around a new snapshot."""
        return World.create(snapshot, self.health, self.geo, self.rng, self.cookies,
                            self.server_id, self.latency)

    def with_health(self, health: HealthView) -> World:
        """The same snapshot (and its memos) under a new health view."""
        memo = self.memo
        return World(self.snapshot, health, self.geo, self.rng, memo, memo.answers,
                     memo.routed, {}, RouteContext(health, memo.orderings, self.latency), {},
                     self.cookies, self.server_id, {}, self.latency)

    def with_latency(self, latency: LatencyView) -> World:
        """The same snapshot and health under a new latency view. Per-network
        selections and exact replies start empty (a `latency` rule may now choose
        differently); the snapshot's memos and renderings are kept, since they
        never depend on the client."""
        memo = self.memo
        return World(self.snapshot, self.health, self.geo, self.rng, memo, memo.answers,
                     memo.routed, {}, self.route.with_latency(latency), {}, self.cookies,
                     self.server_id, {}, latency)

    @property
    def generation(self) -> int:
        return self.snapshot.generation

    def remember_exact(self, key: bytes | tuple[bytes, str], reply: ExactReply) -> None:
        exact = self.exact
        if len(exact) >= EXACT_LIMIT:
            exact.clear()
        exact[key] = reply

    def remember_cookied(self, key: tuple[bytes, str, bool],
                         reply: tuple[int, bytes, Outcome]) -> None:
        cookied = self.cookied
        if len(cookied) >= EXACT_LIMIT:
            cookied.clear()
        cookied[key] = reply

    def remember_selection(self, key: Any, entry: SelectionEntry) -> None:
        selections = self.selections
        if len(selections) >= SELECTION_LIMIT:
            selections.clear()
        selections[key] = entry


class WorldRef:
    """The world the transports answer in, replaced whole by one assignment.

    The composition root owns one; transports read `.world` once per query.
    """

    __slots__ = ("world",)

    def __init__(self, world: World) -> None:
        self.world = world

    def use_snapshot(self, snapshot: Snapshot) -> None:
        self.world = self.world.with_snapshot(snapshot)

    def use_health(self, health: HealthView) -> None:
        self.world = self.world.with_health(health)

    def use_latency(self, latency: LatencyView) -> None:
        self.world = self.world.with_latency(latency)
