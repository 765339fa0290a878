"""The interface every routing rule kind implements.

How this works: a zone's rules are compiled into matchers, one class per rule
kind, each in its own module (`geos`, `subnets`, `nearest`, `latency`,
`catchall`). The
router asks each matcher in order for a `Verdict` about one client network;
the first that matches names the pool. A verdict also says how many leading
bits of the client address its outcome depended on, matched or not, so the
router can return an ECS scope that holds for every address inside it.
`explain` asks the same matchers, then `describe` words the verdict for
people: the query path never builds those words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from geostream_dns.core.client import ClientNet
    from geostream_dns.core.route.context import RouteContext
    from geostream_dns.core.route.pools import CompiledPool

# (matched, scope, pool, answering): did the rule match; how many leading address
# bits the verdict depended on; the pool the rule names (before health); and, for
# rules that choose among several pools with health in mind (nearest, latency), the pool
# chosen (None: the first healthy pool of `pool`'s chain). A plain tuple: the
# query path builds one per rule tried, and a NamedTuple costs several times more.
Verdict = tuple[bool, int, "CompiledPool | None", "CompiledPool | None"]


class Matcher(Protocol):
    kind: str  # "geos", "subnets", "nearest", "catch-all", ... (explain, metrics, logs)
    index: int  # position in the record's rules
    line: int  # line of the rule in its zone file

    def match(self, net: ClientNet, ctx: RouteContext) -> Verdict:
        """Does this rule match the client, and on how many address bits did that depend."""
        ...

    def condition(self) -> str:
        """The rule's condition, as people read it."""
        ...

    def describe(self, net: ClientNet, ctx: RouteContext, verdict: Verdict) -> dict[str, Any]:
        """Why `verdict` came out as it did: a step of `explain`'s trace."""
        ...


def step(matcher: Matcher, verdict: Verdict, why: str, **extra: Any) -> dict[str, Any]:
    """A trace step in the common shape."""
    return {"rule": matcher.index, "line": matcher.line, "kind": matcher.kind,
            "condition": matcher.condition(), "matched": verdict[0], "why": why, **extra}
