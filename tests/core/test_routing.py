"""Routed answers: (YAML snippet, client, health) -> values, TTL, ECS scope.

The client location comes from the session's tiny GeoIP City database
(tests/core/conftest.py): 192.0.2.0/24 Virginia, 198.51.100.0/25 Frankfurt,
198.51.100.128/25 Paris, 203.0.113.0/24 Singapore, 198.18.0.0/15 Sydney,
2001:db8:1::/48 Munich, 2001:db8:2::/48 New York, 2001:db8:3::/48 Tokyo.
Everything else (10.0.0.0/8, 233.252.0.0/24, 2001:db8:ff::/48, ...) is
unknown to it. Health is a `HealthView` whose `down` set holds
(zone, check, target) keys; every case uses a fresh generation.
"""

from __future__ import annotations

import collections
import ipaddress
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.edns
import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geostream_dns.core.geo import GeoLocator, RawLookup
from geostream_dns.core.health import HealthView
from geostream_dns.core.resolve import resolve as resolve_wire
from geostream_dns.core.route.pools import MULTIVALUE_MAX
from geostream_dns.core.world import WorldRef
from tests.core.helpers import (
    DEFAULT_CLIENT,
    ask,
    ecs_scope,
    load,
    make_ref,
    query,
    unknown_option,
    values,
)

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
ZONE = "example.com."
WWW = "www.example.com."
_generations = itertools.count(1)
DUMMY = unknown_option(65001, b"keeps the query on the general path")

# Clients, by where the test GeoIP puts them.
VIRGINIA = "192.0.2.1"
FRANKFURT = "198.51.100.7"
PARIS = "198.51.100.200"
SINGAPORE = "203.0.113.5"
SYDNEY = "198.18.5.1"
MUNICH6 = "2001:db8:1::1"
NEWYORK6 = "2001:db8:2::1"
TOKYO6 = "2001:db8:3::1"
UNKNOWN = DEFAULT_CLIENT  # 233.252.0.1, in an unknown /3
UNKNOWN6 = "2001:db8:ff::1"  # in an unknown /41
CORP = "10.1.2.3"


def health(down: tuple[str, ...] = (), drained: tuple[str, ...] = ()) -> HealthView:
    """A view where the `web` check of each value in `down` fails."""
    return HealthView(next(_generations), frozenset((ZONE, "web", v) for v in down),
                      frozenset(drained))


def set_health(ref: WorldRef, view: HealthView) -> None:
    ref.use_health(view)


def resolve(ref: WorldRef, client: str, ecs: str | None = None,
            name: str = WWW, rdtype: str = "A") -> dns.message.Message:
    return ask(ref.world, query(name, rdtype, ecs=ecs), client=client)


GEOS = """\
www:
  type: A
  ttl: 60
  values: [192.0.2.1]
  routing:
    pools:
      he: {values: [198.51.100.30]}
      de: {values: [198.51.100.20]}
      eu: {region: eu, values: [198.51.100.10]}
      ap: {region: ap, values: [203.0.113.10]}
    rules:
      - geos: [EU-DE-HE]
        pool: he
      - geos: [EU-DE]
        pool: de
      - geos: [EU]
        pool: eu
      - geos: [AS, OC]
        pool: ap
"""

FIRST_WINS = """\
www:
  type: A
  routing:
    pools:
      eu: {values: [198.51.100.10]}
      de: {values: [198.51.100.20]}
      rest: {values: [192.0.2.1]}
    rules:
      - geos: [EU]
        pool: eu
      - geos: [EU-DE]
        pool: de
      - pool: rest
"""

EVERY_CONTINENT = """\
www:
  type: A
  routing:
    pools:
      geo: {values: [192.0.2.2]}
      rest: {values: [192.0.2.3]}
    rules:
      - geos: [AF, AN, AS, EU, NA, OC, SA]
        pool: geo
      - pool: rest
"""

SUBNETS = """\
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      lab: {values: [192.0.2.60]}
      corp: {values: [192.0.2.50]}
    rules:
      - subnets: [10.1.0.0/16]
        pool: lab
      - subnets: [10.0.0.0/8, "2001:db8:1::/48"]
        pool: corp
"""

NEAREST = """\
www:
  type: A
  ttl: 30
  routing:
    pools:
      us: {region: us, values: [{value: 192.0.2.10, healthcheck: web}]}
      eu: {region: eu, values: [{value: 198.51.100.10, healthcheck: web}]}
      ap: {region: ap, values: [{value: 203.0.113.10, healthcheck: web}]}
    rules:
      - nearest: [us, eu, ap]
"""


def nearest_with_bias(bias: str) -> str:
    return NEAREST + f"        bias: {bias}\n"


FALLBACK = """\
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      us:
        region: us
        answer: all
        values:
          - {value: 192.0.2.10, healthcheck: web}
          - {value: 192.0.2.11, healthcheck: web, status: up}
        fallback: eu
      eu: {region: eu, values: [{value: 198.51.100.10, healthcheck: web}], fallback: ap}
      ap: {region: ap, values: [{value: 203.0.113.10, healthcheck: web}]}
    rules:
      - pool: us
"""

MUTUAL = """\
www:
  type: A
  routing:
    pools:
      us:
        region: us
        answer: all
        values:
          - {value: 192.0.2.10, healthcheck: web}
          - {value: 192.0.2.11, status: down}
        fallback: eu
      eu: {region: eu, answer: all, values: [{value: 198.51.100.10, healthcheck: web}],
           fallback: us}
    rules:
      - geos: [EU]
        pool: eu
      - pool: us
"""
MUTUAL_OWN = MUTUAL.replace("  type: A\n", "  type: A\n  values: [192.0.2.1]\n", 1)

STATUS = """\
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      p:
        answer: all
        values:
          - {value: 192.0.2.10, healthcheck: web, status: up}
          - {value: 192.0.2.11, healthcheck: web, status: down}
          - {value: 192.0.2.12, healthcheck: web}
          - {value: 192.0.2.13, status: down}
          - 192.0.2.14
    rules:
      - pool: p
"""


@dataclass(frozen=True)
class Case:
    id: str
    snippet: str
    client: str
    want: tuple[str, ...]
    ttl: int = 300
    scope: int | None = None  # None: the query has no ECS, so the reply has none
    ecs: str | None = None
    down: tuple[str, ...] = ()
    drained: tuple[str, ...] = field(default=())


CASES = [
    # geos: continent-country-subdivision, continent-country, continent; first match wins
    Case("geo-subdivision", GEOS, FRANKFURT, ("198.51.100.30",), 60),
    Case("geo-subdivision-ecs", GEOS, UNKNOWN, ("198.51.100.30",), 60, 25, "198.51.100.7/32"),
    Case("geo-country-v6", GEOS, UNKNOWN, ("198.51.100.20",), 60, 48, "2001:db8:1::/56"),
    Case("geo-country-v6-source", GEOS, MUNICH6, ("198.51.100.20",), 60),
    Case("geo-continent", GEOS, PARIS, ("198.51.100.10",), 60, 25, "198.51.100.200/32"),
    Case("geo-asia", GEOS, SINGAPORE, ("203.0.113.10",), 60, 24, "203.0.113.0/24"),
    Case("geo-oceania", GEOS, UNKNOWN, ("203.0.113.10",), 60, 15, "198.18.5.0/24"),
    Case("geo-no-rule-own-values", GEOS, VIRGINIA, ("192.0.2.1",), 60, 24, "192.0.2.0/24"),
    Case("geo-unknown-own-values", GEOS, UNKNOWN, ("192.0.2.1",), 60),
    Case("geo-unknown-ecs-scope-is-its-network", GEOS, VIRGINIA, ("192.0.2.1",), 60, 3,
         "233.252.0.0/24"),
    Case("geo-scope-capped-by-source", GEOS, UNKNOWN, ("198.51.100.30",), 60, 24,
         "198.51.100.0/24"),
    Case("geo-v4-mapped-source", GEOS, "::ffff:198.51.100.7", ("198.51.100.30",), 60),
    Case("first-rule-wins", FIRST_WINS, FRANKFURT, ("198.51.100.10",)),
    Case("first-rule-wins-v6", FIRST_WINS, MUNICH6, ("198.51.100.10",)),
    Case("catch-all", FIRST_WINS, VIRGINIA, ("192.0.2.1",)),
    Case("catch-all-unknown", FIRST_WINS, UNKNOWN, ("192.0.2.1",)),
    Case("geos-known", EVERY_CONTINENT, SYDNEY, ("192.0.2.2",)),
    Case("geos-never-match-unknown", EVERY_CONTINENT, UNKNOWN, ("192.0.2.3",)),
    Case("geos-never-match-unknown-10/8", EVERY_CONTINENT, CORP, ("192.0.2.3",)),
    Case("geos-never-match-unknown-v6", EVERY_CONTINENT, UNKNOWN6, ("192.0.2.3",)),
    # subnets: v4 and v6; unknown clients match them; scope is the prefix that matters
    Case("subnet-v4", SUBNETS, CORP, ("192.0.2.60",)),
    Case("subnet-v4-ecs", SUBNETS, UNKNOWN, ("192.0.2.60",), 300, 16, "10.1.2.0/24"),
    Case("subnet-second-rule", SUBNETS, UNKNOWN, ("192.0.2.50",), 300, 15, "10.2.3.0/24"),
    Case("subnet-longer-prefix-matters", SUBNETS, UNKNOWN, ("192.0.2.50",), 300, 9,
         "10.200.0.0/24"),
    Case("subnet-scope-capped-by-source", SUBNETS, UNKNOWN, ("192.0.2.50",), 300, 12,
         "10.0.0.0/12"),
    Case("subnet-v6", SUBNETS, UNKNOWN, ("192.0.2.50",), 300, 48, "2001:db8:1:2::/64"),
    Case("subnet-v6-source", SUBNETS, MUNICH6, ("192.0.2.50",)),
    Case("subnet-v6-outside", SUBNETS, UNKNOWN, ("192.0.2.1",), 300, 47, "2001:db8:2::/64"),
    Case("subnet-v4-outside", SUBNETS, UNKNOWN, ("192.0.2.1",), 300, 1, "192.0.2.0/24"),
    # nearest: great-circle distance (+ bias) among pools whose chain is healthy
    Case("nearest-virginia", NEAREST, UNKNOWN, ("192.0.2.10",), 30, 24, "192.0.2.0/24"),
    Case("nearest-paris", NEAREST, PARIS, ("198.51.100.10",), 30),
    Case("nearest-munich-v6", NEAREST, UNKNOWN, ("198.51.100.10",), 30, 48, "2001:db8:1::/48"),
    Case("nearest-newyork-v6", NEAREST, NEWYORK6, ("192.0.2.10",), 30),
    Case("nearest-tokyo-v6", NEAREST, TOKYO6, ("203.0.113.10",), 30),
    Case("nearest-sydney", NEAREST, SYDNEY, ("203.0.113.10",), 30),
    Case("nearest-paris-eu-down", NEAREST, PARIS, ("192.0.2.10",), 30,
         down=("198.51.100.10",)),
    Case("nearest-paris-eu-us-down", NEAREST, PARIS, ("203.0.113.10",), 30,
         down=("198.51.100.10", "192.0.2.10")),
    Case("nearest-unknown-first-listed", NEAREST, UNKNOWN, ("192.0.2.10",), 30, 3,
         "233.252.0.0/24"),
    Case("nearest-unknown-first-healthy", NEAREST, UNKNOWN, ("198.51.100.10",), 30,
         down=("192.0.2.10",)),
    Case("nearest-unknown-first-healthy-2", NEAREST, UNKNOWN6, ("203.0.113.10",), 30,
         down=("192.0.2.10", "198.51.100.10")),
    Case("nearest-all-down-fail-open-nearest", NEAREST, PARIS, ("198.51.100.10",), 30,
         down=("192.0.2.10", "198.51.100.10", "203.0.113.10")),
    Case("nearest-all-down-fail-open-unknown", NEAREST, UNKNOWN, ("192.0.2.10",), 30,
         down=("192.0.2.10", "198.51.100.10", "203.0.113.10")),
    Case("nearest-drained", NEAREST, PARIS, ("192.0.2.10",), 30, drained=("eu",)),
    Case("nearest-source-prefix-0-no-location", NEAREST, PARIS, ("192.0.2.10",), 30, 0,
         "0.0.0.0/0"),
    Case("nearest-source-prefix-0-v6", NEAREST, TOKYO6, ("192.0.2.10",), 30, 0, "::/0"),
    Case("bias-keeps-winner", nearest_with_bias("{eu: 5500}"), PARIS, ("198.51.100.10",), 30),
    Case("bias-changes-winner", nearest_with_bias("{eu: 6000}"), PARIS, ("192.0.2.10",), 30),
    Case("negative-bias", nearest_with_bias("{us: -10000}"), SYDNEY, ("192.0.2.10",), 30),
    # fallback chains, status overrides, drained regions, fail open
    Case("chain-all-up", FALLBACK, VIRGINIA, ("192.0.2.10", "192.0.2.11")),
    Case("chain-one-value-down", FALLBACK, VIRGINIA, ("192.0.2.11",), down=("192.0.2.10",)),
    Case("chain-status-up-beats-check", FALLBACK, VIRGINIA, ("192.0.2.10", "192.0.2.11"),
         down=("192.0.2.11",)),
    Case("chain-first-pool-drained", FALLBACK, VIRGINIA, ("198.51.100.10",), drained=("us",)),
    Case("chain-second-fallback", FALLBACK, VIRGINIA, ("203.0.113.10",),
         down=("198.51.100.10",), drained=("us",)),
    Case("chain-all-down-own-values", FALLBACK, VIRGINIA, ("192.0.2.1",),
         down=("198.51.100.10", "203.0.113.10"), drained=("us",)),
    Case("chain-static-record-scope-0", FALLBACK, VIRGINIA, ("192.0.2.10", "192.0.2.11"), 300, 0,
         "192.0.2.0/24"),
    Case("mutual-up", MUTUAL, VIRGINIA, ("192.0.2.10",)),
    Case("mutual-us-down", MUTUAL, VIRGINIA, ("198.51.100.10",), down=("192.0.2.10",)),
    Case("mutual-eu-down", MUTUAL, PARIS, ("192.0.2.10",), down=("198.51.100.10",)),
    Case("mutual-both-down-fail-open-us", MUTUAL, VIRGINIA, ("192.0.2.10", "192.0.2.11"),
         down=("192.0.2.10", "198.51.100.10")),
    Case("mutual-both-down-fail-open-eu", MUTUAL, PARIS, ("198.51.100.10",),
         down=("192.0.2.10", "198.51.100.10")),
    Case("mutual-both-drained-fail-open", MUTUAL, VIRGINIA, ("192.0.2.10", "192.0.2.11"),
         drained=("us", "eu")),
    Case("mutual-both-down-own-values", MUTUAL_OWN, VIRGINIA, ("192.0.2.1",),
         down=("192.0.2.10", "198.51.100.10")),
    Case("status-defaults", STATUS, VIRGINIA, ("192.0.2.10", "192.0.2.12", "192.0.2.14")),
    Case("status-up-beats-down-check", STATUS, VIRGINIA, ("192.0.2.10", "192.0.2.14"),
         down=("192.0.2.10", "192.0.2.12")),
    Case("status-down-beats-up-check", STATUS, VIRGINIA, ("192.0.2.10", "192.0.2.14"),
         down=("192.0.2.12",)),
]


def routed_replies(case: Case, geo: Callable[..., GeoLocator]) -> dict[str, dns.message.Message]:
    """The case's query answered along each path of the resolver.

    general: the first query for the name (no plan yet: `wire.parse_query`,
    `lookup`, then the route layer); forced: an unknown EDNS option keeps a
    repeat query on the general path; fast: the name's plan exists (made by
    another client), so the query takes the inline path and locates the
    client itself; memoized: the same query again, from the selection memo.
    """
    view = health(case.down, case.drained)
    zone = load(case.snippet)
    out = {}
    resolver = make_ref([zone], geo=geo(), health=view)
    out["general"] = resolve(resolver, case.client, case.ecs)
    q = query(WWW, "A", ecs=case.ecs, options=[DUMMY])
    out["forced"] = ask(resolver.world, q, client=case.client)
    resolver = make_ref([zone], geo=geo(), health=view)
    resolve(resolver, "233.252.0.99")  # another client: makes the plan only
    out["fast"] = resolve(resolver, case.client, case.ecs)
    out["memoized"] = resolve(resolver, case.client, case.ecs)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_routing(case: Case, make_geo: Callable[..., GeoLocator]) -> None:
    for path, reply in routed_replies(case, make_geo).items():
        got = (sorted(values(reply)), {r.ttl for r in reply.answer}, ecs_scope(reply))
        assert got == (sorted(case.want), {case.ttl}, case.scope), path


def test_memoized_selections_follow_health_changes(
        make_geo: Callable[..., GeoLocator]) -> None:
    resolver = make_ref([load(FALLBACK)], geo=make_geo(), health=health())
    for _ in range(3):  # general path, then fast path from the memo
        assert values(resolve(resolver, VIRGINIA)) == ["192.0.2.10", "192.0.2.11"]
    set_health(resolver, health(drained=("us",)))
    for _ in range(3):
        assert values(resolve(resolver, VIRGINIA)) == ["198.51.100.10"]
    set_health(resolver, health())
    assert values(resolve(resolver, VIRGINIA)) == ["192.0.2.10", "192.0.2.11"]


def test_memoized_selections_are_per_client(make_geo: Callable[..., GeoLocator]) -> None:
    resolver = make_ref([load(NEAREST)], geo=make_geo())
    want = {VIRGINIA: "192.0.2.10", PARIS: "198.51.100.10", TOKYO6: "203.0.113.10",
            UNKNOWN: "192.0.2.10"}
    for _ in range(3):
        for client, value in want.items():
            assert values(resolve(resolver, client)) == [value], client
            ecs = f"{client}/{32 if '.' in client else 128}"
            assert values(resolve(resolver, UNKNOWN, ecs)) == [value], ecs


def test_routed_names_behind_a_cname_and_an_alias(make_geo: Callable[..., GeoLocator]) -> None:
    snippet = NEAREST + """\
'':
  - {type: ALIAS, value: www.example.com.}
api: {type: CNAME, ttl: 600, value: www.example.com.}
"""
    resolver = make_ref([load(snippet)], geo=make_geo())
    for _ in range(2):
        reply = resolve(resolver, UNKNOWN, "198.51.100.128/25", name="api.example.com.")
        assert [r.ttl for r in reply.answer] == [600, 30]
        assert values(reply) == ["198.51.100.10"] and ecs_scope(reply) == 25
        reply = resolve(resolver, UNKNOWN, "203.0.113.0/24", name="example.com.")
        assert reply.answer[0].name.to_text() == "example.com."
        # the routed target's TTL (30), not the ALIAS's (the zone's 300): the apex
        # fails over as fast as the name it is aliased to
        assert [r.ttl for r in reply.answer] == [30]
        assert values(reply) == ["203.0.113.10"] and ecs_scope(reply) == 24


# -- ECS scope of answers that do not depend on the client ----------------------


@pytest.mark.parametrize("ecs", ["198.51.100.0/24", "2001:db8:1::/56", "10.0.0.0/8"])
@pytest.mark.parametrize("name", ["static.example.com.", "nothing.example.com.",
                                  "catchall.example.com."])
def test_scope_is_zero_when_the_answer_does_not_depend_on_location(
        name: str, ecs: str, make_geo: Callable[..., GeoLocator]) -> None:
    snippet = """\
    static: {type: A, value: 192.0.2.80}
    catchall:
      type: A
      routing:
        pools:
          p: {values: [192.0.2.81]}
        rules:
          - pool: p
    """
    resolver = make_ref([load(snippet)], geo=make_geo())
    reply = resolve(resolver, FRANKFURT, ecs, name=name)
    assert ecs_scope(reply) == 0
    source = ecs.partition("/")[2]
    assert [o.srclen for o in reply.options] == [int(source)]  # echoed (RFC 7871 §7.2.1)


# -- answer modes ---------------------------------------------------------------

MODES = """\
weighted:
  type: A
  routing:
    pools:
      p:
        values:
          - {value: 192.0.2.1, weight: 1}
          - {value: 192.0.2.2, weight: 3}
          - {value: 192.0.2.3, weight: 6}
    rules:
      - pool: p
all:
  type: A
  routing:
    pools:
      p: {answer: all, values: [192.0.2.1, 192.0.2.2, 192.0.2.3]}
    rules:
      - pool: p
multi:
  type: A
  routing:
    pools:
      p:
        answer: multivalue
        values:
          - 192.0.2.1
          - 192.0.2.2
          - 192.0.2.3
          - {value: 192.0.2.4, healthcheck: web}
    rules:
      - pool: p
multi12:
  type: A
  ttl: 20
  routing:
    pools:
      p:
        answer: multivalue
        values: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 192.0.2.5, 192.0.2.6,
                 192.0.2.7, 192.0.2.8, 192.0.2.9, 192.0.2.10, 192.0.2.11, 192.0.2.12]
    rules:
      - pool: p
"""
WEIGHTED_RUNS = 20_000
WEIGHT_TOLERANCE = 0.02  # ±2 percentage points of each value's share (about 5 sigma)


@pytest.fixture
def modes(make_geo: Callable[..., GeoLocator]) -> WorldRef:
    return make_ref([load(MODES)], geo=make_geo(), seed=2024)


def test_weighted_shares_follow_the_weights(modes: WorldRef) -> None:
    wire = query("weighted.example.com.", "A").to_wire()
    counts: collections.Counter[str] = collections.Counter()
    for _ in range(WEIGHTED_RUNS):
        reply, _ = resolve_wire(wire, VIRGINIA, modes.world)
        assert reply is not None
        (value,) = values(dns.message.from_wire(reply))
        counts[value] += 1
    weights = {"192.0.2.1": 1, "192.0.2.2": 3, "192.0.2.3": 6}
    total = sum(weights.values())
    assert set(counts) == set(weights)
    for value, weight in weights.items():
        assert abs(counts[value] / WEIGHTED_RUNS - weight / total) <= WEIGHT_TOLERANCE, counts


def test_weighted_skips_down_values(modes: WorldRef) -> None:
    snippet = MODES.replace("{value: 192.0.2.3, weight: 6}",
                            "{value: 192.0.2.3, weight: 6, healthcheck: web}")
    resolver = make_ref([load(snippet)], seed=3, health=health(down=("192.0.2.3",)))
    seen = {values(resolve(resolver, VIRGINIA, name="weighted.example.com."))[0]
            for _ in range(300)}
    assert seen == {"192.0.2.1", "192.0.2.2"}


def test_all_returns_every_healthy_value(modes: WorldRef) -> None:
    reply = resolve(modes, VIRGINIA, name="all.example.com.")
    assert values(reply) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_multivalue_shuffles_per_query(modes: WorldRef) -> None:
    orders = {tuple(values(resolve(modes, VIRGINIA, name="multi.example.com.")))
              for _ in range(300)}
    assert all(sorted(o) == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
               for o in orders)
    assert len(orders) > 10  # 24 orders exist; a fixed order would give 1


def test_multivalue_leaves_out_down_values(modes: WorldRef) -> None:
    set_health(modes, health(down=("192.0.2.4",)))
    for _ in range(50):
        assert sorted(values(resolve(modes, VIRGINIA, name="multi.example.com."))) == [
            "192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_multivalue_returns_at_most_eight(modes: WorldRef) -> None:
    pool = {f"192.0.2.{i}" for i in range(1, 13)}
    seen: set[str] = set()
    for _ in range(200):
        reply = resolve(modes, VIRGINIA, name="multi12.example.com.")
        got = values(reply)
        assert len(got) == MULTIVALUE_MAX == 8
        assert len(set(got)) == 8 and set(got) <= pool
        assert reply.answer[0].ttl == 20
        seen.update(got)
    assert seen == pool  # every value gets its turn


def test_multivalue_sample_fits_udp(modes: WorldRef) -> None:
    # The sampled answer, not the whole pool, is what is sized against the limit.
    reply, _ = resolve_wire(query("multi12.example.com.", "A").to_wire(), VIRGINIA, modes.world)
    assert reply is not None and len(reply) <= 512
    assert len(dns.message.from_wire(reply).answer[0]) == 8


# -- properties: health and scope --------------------------------------------------

HEALTH_SNIPPET = """\
www:
  type: A
  {own}
  routing:
    pools:
      us:
        region: us
        answer: all
        values:
          - {{value: 192.0.2.10, healthcheck: web}}
          - {{value: 192.0.2.11, healthcheck: web}}
        fallback: eu
      eu:
        region: eu
        answer: multivalue
        values:
          - {{value: 198.51.100.10, healthcheck: web}}
          - {{value: 198.51.100.11, healthcheck: web, status: down}}
        fallback: us
      ap:
        region: ap
        values:
          - {{value: 203.0.113.10, healthcheck: web}}
          - {{value: 203.0.113.11, healthcheck: web, weight: 5}}
        fallback: eu
      lab: {{values: [{{value: 192.0.2.50, healthcheck: web}}], fallback: ap}}
    rules:
      - subnets: [10.0.0.0/8]
        pool: lab
      - geos: [EU]
        pool: eu
      - nearest: [us, ap]
"""
# value -> (pool, region, status) of HEALTH_SNIPPET
HEALTH_VALUES = {
    "192.0.2.10": ("us", "us", "obey"),
    "192.0.2.11": ("us", "us", "obey"),
    "198.51.100.10": ("eu", "eu", "obey"),
    "198.51.100.11": ("eu", "eu", "down"),
    "203.0.113.10": ("ap", "ap", "obey"),
    "203.0.113.11": ("ap", "ap", "obey"),
    "192.0.2.50": ("lab", None, "obey"),
}
FALLBACKS = {"us": "eu", "eu": "us", "ap": "eu", "lab": "ap"}
# client -> the pools whose chains its rule may answer from
CONSIDERED = {
    CORP: ["lab"],
    PARIS: ["eu"],
    FRANKFURT: ["eu"],
    MUNICH6: ["eu"],
    VIRGINIA: ["us", "ap"],
    SYDNEY: ["us", "ap"],
    TOKYO6: ["us", "ap"],
    UNKNOWN: ["us", "ap"],
    UNKNOWN6: ["us", "ap"],
}
_resolvers: dict[tuple[str, int], WorldRef] = {}


def cached_resolver(snippet: str, raw: RawLookup) -> WorldRef:
    key = (snippet, id(raw))
    if key not in _resolvers:
        _resolvers[key] = make_ref([load(snippet)], geo=GeoLocator(raw), seed=11)
    return _resolvers[key]


def chain(pool: str) -> list[str]:
    out = [pool]
    while FALLBACKS.get(out[-1]) and FALLBACKS[out[-1]] not in out:
        out.append(FALLBACKS[out[-1]])
    return out


@PROPERTY
@given(
    own=st.booleans(),
    client=st.sampled_from(sorted(CONSIDERED)),
    down=st.sets(st.sampled_from(sorted(HEALTH_VALUES))),
    drained=st.sets(st.sampled_from(["us", "eu", "ap"])),
)
def test_answers_are_never_empty_and_never_down_while_an_up_value_exists(
        city_raw: RawLookup, own: bool, client: str, down: set[str], drained: set[str]) -> None:
    snippet = HEALTH_SNIPPET.format(own="values: [192.0.2.1]" if own else "")
    resolver = cached_resolver(snippet, city_raw)
    set_health(resolver, health(tuple(sorted(down)), tuple(sorted(drained))))

    def up(value: str) -> bool:
        _pool, region, status = HEALTH_VALUES[value]
        if region in drained or status == "down":
            return False
        return status == "up" or value not in down

    pools = {p for first in CONSIDERED[client] for p in chain(first)}
    candidates = [v for v, (p, _, _) in HEALTH_VALUES.items() if p in pools]
    answer = values(resolve(resolver, client))
    assert answer, "an empty answer because of health"
    if any(up(v) for v in candidates):
        assert all(up(v) for v in answer), (answer, down, drained)
        assert set(answer) <= set(candidates)
    elif own:
        assert answer == ["192.0.2.1"]
    else:  # fail open: every value of one pool, down or not
        (pool,) = {HEALTH_VALUES[v][0] for v in answer}
        assert pool in pools
        assert sorted(answer) == sorted(v for v, (p, _, _) in HEALTH_VALUES.items() if p == pool)


SCOPE_SNIPPET = """\
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      us: {region: us, answer: all, values: [192.0.2.10]}
      eu: {region: eu, answer: all, values: [198.51.100.10]}
      ap: {region: ap, answer: all, values: [203.0.113.10]}
      de: {answer: all, values: [198.51.100.20]}
      lab: {answer: all, values: [192.0.2.60]}
      v6lab: {answer: all, values: [192.0.2.66]}
    rules:
      - subnets: [10.1.0.0/16, 198.51.100.192/26]
        pool: lab
      - geos: [EU-DE]
        pool: de
      - subnets: ["2001:db8:2:8000::/49", 10.0.0.0/8]
        pool: v6lab
      - nearest: [us, eu, ap]
"""
# Where clients are drawn from: the test GeoIP's networks, the rules' subnets, the rest.
NEIGHBOURHOODS = [
    "192.0.2.0/24", "198.51.100.0/24", "198.51.100.192/26", "203.0.113.0/24",
    "198.18.0.0/15", "10.0.0.0/8", "10.1.0.0/16", "233.252.0.0/24", "0.0.0.0/0",
    "2001:db8::/32", "2001:db8:1::/48", "2001:db8:2::/48", "2001:db8:2:8000::/50",
    "2001:db8:4::/48", "::/0",
]


@st.composite
def addresses(draw: st.DrawFn, within: str | None = None) -> str:
    network = ipaddress.ip_network(within or draw(st.sampled_from(NEIGHBOURHOODS)))
    host = draw(st.integers(0, network.num_addresses - 1))
    return str(network.network_address + host)


@PROPERTY
@given(address=addresses(), prefix=st.integers(0, 128))
def test_scope_never_exceeds_the_source_prefix(city_raw: RawLookup, address: str,
                                               prefix: int) -> None:
    resolver = cached_resolver(SCOPE_SNIPPET, city_raw)
    bits = ipaddress.ip_address(address).max_prefixlen
    prefix = min(prefix, bits)
    reply = resolve(resolver, VIRGINIA, f"{address}/{prefix}")
    scope = ecs_scope(reply)
    assert scope is not None and 0 <= scope <= prefix
    assert values(reply)


@PROPERTY
@given(address=addresses(), data=st.data())
def test_every_address_inside_the_scope_gets_the_same_answer(
        city_raw: RawLookup, address: str, data: st.DataObject) -> None:
    resolver = cached_resolver(SCOPE_SNIPPET, city_raw)
    bits = ipaddress.ip_address(address).max_prefixlen
    reply = resolve(resolver, VIRGINIA, f"{address}/{bits}")
    scope = ecs_scope(reply)
    assert scope is not None
    network = ipaddress.ip_network(f"{address}/{scope}", strict=False)
    for _ in range(3):
        other = data.draw(addresses(str(network)), label="other")
        assert values(resolve(resolver, VIRGINIA, f"{other}/{bits}")) == values(reply), (
            f"{address} and {other} are both inside {network}")


def test_the_geoip_is_what_the_cases_assume(city_raw: RawLookup) -> None:
    def where(ip: str) -> tuple[str, ...]:
        return tuple(sorted(city_raw(ipaddress.ip_address(ip).packed).codes))

    assert where(FRANKFURT) == ("EU", "EU-DE", "EU-DE-HE")
    assert where(PARIS) == ("EU", "EU-FR", "EU-FR-IDF")
    assert where(MUNICH6) == ("EU", "EU-DE", "EU-DE-BY")
    assert where(UNKNOWN) == where(UNKNOWN6) == where(CORP) == ()
    assert city_raw(ipaddress.ip_address(UNKNOWN).packed).prefix_len == 3
