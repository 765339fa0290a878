"""What happened to a query, for the transports to count and log.

The resolver never touches a counter or a logger: with every reply it hands
back an `Outcome`, and the adapters turn outcomes into metrics and log lines.
Outcomes are made when an answer is rendered or memoized, not per query, and
interned by value, so a query costs no allocation for its outcome; counting
keys a dictionary by the outcome object itself (identity hashing, which is
cheap) and folds by value when metrics are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Paths a query can take through the resolver.
STATIC: Final = "static"  # the fast path, a static answer
ROUTED: Final = "routed"  # the fast path, a routed answer from the per-network memo
SLOW: Final = "slow"  # the full parser: first query of a name or network, errors, odd shapes
DROPPED: Final = "dropped"  # no reply (unreadable header, QR=1)

# Where the answer's bytes came from.
SNAPSHOT: Final = "snapshot"  # rendered when the snapshot was built
MEMO: Final = "memo"  # rendered earlier for another query and memoized
COMPUTED: Final = "computed"  # looked up and rendered for this query
NONE: Final = "none"  # no answer data (errors, drops)

INTERN_LIMIT = 100_000


@dataclass(frozen=True, slots=True, eq=False)
class Outcome:
    qtype: int
    rcode: int  # -1: dropped
    zone: str  # "" when no hosted zone holds the name
    path: str  # STATIC | ROUTED | SLOW | DROPPED
    tier: str  # SNAPSHOT | MEMO | COMPUTED | NONE
    rule: str | None = None  # kind of the routing rule that matched
    pool: str | None = None  # the pool that answered a routed name
    scope: int | None = None  # ECS scope prefix sent back; None: no ECS in the reply
    failed_open: bool = False  # every pool of the chain was down
    cookie: bool = False  # the query held a valid server cookie (never rate limited)

    def values(self) -> tuple[object, ...]:
        return (self.qtype, self.rcode, self.zone, self.path, self.tier, self.rule, self.pool,
                self.scope, self.failed_open, self.cookie)


DROPPED_OUTCOME = Outcome(0, -1, "", DROPPED, NONE)


class Outcomes:
    """An intern table: equal outcomes are one object (bounded; cleared when full)."""

    __slots__ = ("_table", "_variants", "_cookied")

    def __init__(self) -> None:
        self._table: dict[tuple[object, ...], Outcome] = {}
        self._variants: dict[tuple[Outcome, str, str], Outcome] = {}
        self._cookied: dict[Outcome, Outcome] = {}

    def get(self, qtype: int, rcode: int, zone: str, path: str, tier: str,
            rule: str | None = None, pool: str | None = None, scope: int | None = None,
            failed_open: bool = False, cookie: bool = False) -> Outcome:
        key = (qtype, rcode, zone, path, tier, rule, pool, scope, failed_open, cookie)
        outcome = self._table.get(key)
        if outcome is None:
            if len(self._table) >= INTERN_LIMIT:
                self._table.clear()
            outcome = self._table[key] = Outcome(*key)  # type: ignore[arg-type]
        return outcome

    def variant(self, outcome: Outcome, path: str, tier: str) -> Outcome:
        """`outcome` with another path and tier (how this one query was answered)."""
        key = (outcome, path, tier)
        found = self._variants.get(key)
        if found is None:
            if len(self._variants) >= INTERN_LIMIT:
                self._variants.clear()
            found = self._variants[key] = self.get(
                outcome.qtype, outcome.rcode, outcome.zone, path, tier, outcome.rule,
                outcome.pool, outcome.scope, outcome.failed_open, outcome.cookie)
        return found

    def cookied(self, outcome: Outcome) -> Outcome:
        """`outcome` for a query that held a valid server cookie."""
        found = self._cookied.get(outcome)
        if found is None:
            if len(self._cookied) >= INTERN_LIMIT:
                self._cookied.clear()
            found = self._cookied[outcome] = self.get(
                outcome.qtype, outcome.rcode, outcome.zone, outcome.path, outcome.tier,
                outcome.rule, outcome.pool, outcome.scope, outcome.failed_open, True)
        return found
