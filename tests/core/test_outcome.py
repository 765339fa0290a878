"""What `resolve` says happened: the Outcome each reply comes with.

Transports count and log from outcomes only, so the path taken, the rule and
pool of a routed answer, the ECS scope, fail-open and the cache tier must be
right for every kind of query. Outcomes are interned: equal ones are one
object, so counting them costs an identity hash.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.rcode
import dns.rdatatype

from geostream_dns.core.build import build_snapshot
from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.health import HealthView
from geostream_dns.core.outcome import COMPUTED, MEMO, ROUTED, SLOW, SNAPSHOT, STATIC, Outcomes
from geostream_dns.core.resolve import resolve
from tests.core.helpers import load, make_world, query

ROUTED_ZONE = """\
static: {type: A, value: 192.0.2.80}
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      eu: {region: eu, values: [{value: 198.51.100.10, healthcheck: web}]}
      us: {region: us, answer: all, values: [192.0.2.10, 192.0.2.11]}
    rules:
      - geos: [EU]
        pool: eu
      - nearest: [us, eu]
"""
PARIS, VIRGINIA = "198.51.100.200", "192.0.2.1"


def test_routed_records_are_always_compiled_with_their_routing() -> None:
    snapshot = build_snapshot([load(ROUTED_ZONE)], 1)
    www = query("www.example.com.", "A").to_wire()[12:].lower()
    assert www in snapshot.routed and www not in snapshot.answers
    reply, outcome = resolve(query("www.example.com.", "A").to_wire(), VIRGINIA,
                             make_world([load(ROUTED_ZONE)]))
    assert reply is not None and outcome.rule == "nearest" and outcome.pool == "us"


def test_paths_and_tiers(make_geo: Callable[..., GeoLocator]) -> None:
    world = make_world([load(ROUTED_ZONE)], geo=make_geo())

    def ask(name: str, client: str = VIRGINIA, ecs: str | None = None) -> object:
        return resolve(query(name, "A", ecs=ecs).to_wire(), client, world)[1]

    first = ask("static.example.com.")
    assert (first.path, first.tier, first.zone, first.rcode, first.qtype) == (
        STATIC, SNAPSHOT, "example.com.", dns.rcode.NOERROR, dns.rdatatype.A)
    assert ask("static.example.com.") is first  # interned: the same object every time
    nx = ask("nothing.example.com.")
    assert (nx.path, nx.tier, nx.rcode) == (SLOW, COMPUTED, dns.rcode.NXDOMAIN)
    again = ask("nothing.example.com.")
    assert (again.path, again.tier) == (STATIC, MEMO)
    miss = ask("www.example.com.", PARIS)
    assert (miss.path, miss.rule, miss.pool, miss.scope) == (SLOW, "geos", "eu", None)
    hit = ask("www.example.com.", PARIS)
    assert (hit.path, hit.tier, hit.rule, hit.pool, hit.scope) == (ROUTED, MEMO, "geos", "eu",
                                                                    None)
    # A routed name asked from a new ECS network is decided on the fast path at once.
    ecs_miss = ask("www.example.com.", VIRGINIA, "198.51.100.128/25")
    assert (ecs_miss.path, ecs_miss.tier, ecs_miss.pool, ecs_miss.scope) == (ROUTED, COMPUTED,
                                                                             "eu", 25)
    ecs_hit = ask("www.example.com.", VIRGINIA, "198.51.100.128/25")
    assert (ecs_hit.path, ecs_hit.tier, ecs_hit.pool, ecs_hit.scope) == (ROUTED, MEMO, "eu", 25)
    us = ask("www.example.com.", VIRGINIA, "192.0.2.0/24")
    assert (us.rule, us.pool, us.scope) == ("nearest", "us", 24)
    static_ecs = ask("static.example.com.", VIRGINIA, "192.0.2.0/24")
    assert (static_ecs.path, static_ecs.scope) == (SLOW, 0)
    assert ask("static.example.com.", VIRGINIA, "192.0.2.0/24").path == STATIC


def test_fail_open_is_in_the_outcome(make_geo: Callable[..., GeoLocator]) -> None:
    down = HealthView(1, frozenset({("example.com.", "web", "198.51.100.10")}),
                      frozenset({"us"}))
    world = make_world([load(ROUTED_ZONE)], geo=make_geo(), health=down)
    for _ in range(2):
        _reply, outcome = resolve(query("www.example.com.", "A").to_wire(), PARIS, world)
        assert outcome.failed_open and outcome.pool is None  # the record's own values


def test_outcomes_are_interned_by_value() -> None:
    table = Outcomes()
    a = table.get(1, 0, "example.com.", ROUTED, MEMO, "geos", "eu", 24)
    assert table.get(1, 0, "example.com.", ROUTED, MEMO, "geos", "eu", 24) is a
    assert table.get(1, 0, "example.com.", ROUTED, MEMO, "geos", "us", 24) is not a
    assert table.variant(a, SLOW, COMPUTED).values() == (1, 0, "example.com.", SLOW, COMPUTED,
                                                         "geos", "eu", 24, False, False)
    assert table.variant(a, SLOW, COMPUTED) is table.variant(a, SLOW, COMPUTED)
    cookied = table.cookied(a)
    assert cookied.cookie and not a.cookie and cookied is table.cookied(a)
    assert cookied.values()[:-1] == a.values()[:-1]
