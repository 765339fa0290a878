"""`latency` rules: (measurements, client, health) -> values, ECS scope; no sockets.

Measurements are folded into a `LatencyTable` (the adapter's in-memory table,
which does no I/O) at a fixed time and published into the world with
`WorldRef.use_latency`, as the server does. Clients are placed by the
session's test GeoIP (tests/support/geoip.py): 192.0.2.0/24 Virginia
(NA-US-VA), 198.51.100.0/25 Frankfurt (EU-DE-HE), 198.51.100.128/25 Paris,
203.0.113.0/24 Singapore, 198.18.0.0/15 Sydney, 2001:db8:1::/48 Munich;
233.252.0.0/24 and 10.0.0.0/8 are unknown.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geostream_dns.adapters.latency import LatencyTable
from geostream_dns.adapters.latency_input import Sample, expand, parse_client
from geostream_dns.core.client import client_net
from geostream_dns.core.geo import GeoLocator, RawLookup
from geostream_dns.core.health import HealthView
from geostream_dns.core.latency import PROBE_KEY, LatencyView
from geostream_dns.core.route.explain import explain, format_text
from geostream_dns.core.route.latency import client_keys
from geostream_dns.core.wire import ClientSubnet
from geostream_dns.core.world import WorldRef
from tests.core.helpers import ask, ecs_scope, load, make_ref, query, values

PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
ZONE = "example.com."
WWW = "www.example.com."
T0 = 1_800_000_000.0
_generations = itertools.count(1)

VIRGINIA = "192.0.2.1"
FRANKFURT = "198.51.100.7"
SINGAPORE = "203.0.113.5"
SYDNEY = "198.18.5.1"
MUNICH6 = "2001:db8:1::1"
UNKNOWN = "233.252.0.1"

US, EU, AP = "192.0.2.10", "198.51.100.10", "203.0.113.10"
POOL_VALUE = {"us": US, "eu": EU, "ap": AP}

LATENCY = """\
www:
  type: A
  ttl: 60
  routing:
    pools:
      us: {region: us, values: [{value: 192.0.2.10, healthcheck: web}]}
      eu: {region: eu, values: [{value: 198.51.100.10, healthcheck: web}]}
      ap: {region: ap, values: [{value: 203.0.113.10, healthcheck: web}]}
    rules:
      - latency: [us, eu, ap]
        bias: {ap: 5}
        min_samples: 3
"""

# (client, region, rtt ms, samples, age in seconds)
Measurement = tuple[str, str, float, int, float]


def view_of(measurements: Sequence[Measurement], geo: GeoLocator,
            half_life: float = 3600.0) -> LatencyView:
    table = LatencyTable(half_life=half_life, epoch=T0)
    for client, region, rtt, count, age in measurements:
        if client == "probes":
            table.add((PROBE_KEY,), region, rtt, count, T0 - age)
            continue
        (row,) = expand([Sample(parse_client(client), region, rtt, count)], geo)
        table.add(row[0], region, rtt, count, T0 - age)
    return table.view(T0)


def health(down: Sequence[str] = ()) -> HealthView:
    return HealthView(next(_generations), frozenset((ZONE, "web", POOL_VALUE[p]) for p in down))


@dataclass(frozen=True)
class Case:
    id: str
    measurements: tuple[Measurement, ...]
    ecs: str
    want: str  # the pool whose value answers
    scope: int
    down: tuple[str, ...] = ()


CASES = [
    Case("no-data-behaves-as-nearest", (), f"{FRANKFURT}/32", "eu", 25),
    Case("network-key-lowest-wins", (("192.0.2.0/24", "ap", 10, 5, 0),
                                     ("192.0.2.0/24", "us", 30, 5, 0)),
         f"{VIRGINIA}/32", "ap", 24),
    Case("bias-is-added", (("192.0.2.0/24", "ap", 28, 5, 0), ("192.0.2.0/24", "us", 30, 5, 0)),
         f"{VIRGINIA}/32", "us", 24),
    Case("too-few-samples-go-to-a-wider-key", (("192.0.2.0/24", "ap", 10, 2, 0),
                                               ("NA-US", "us", 50, 10, 0),
                                               ("NA-US", "eu", 70, 10, 0)),
         f"{VIRGINIA}/32", "us", 24),
    Case("a-candidate-without-data-at-the-key-uses-the-next-key",
         (("192.0.2.0/24", "us", 30, 5, 0), ("NA", "ap", 10, 10, 0)),
         f"{VIRGINIA}/32", "ap", 24),
    Case("down-chain-is-no-candidate", (("192.0.2.0/24", "ap", 10, 5, 0),
                                        ("192.0.2.0/24", "us", 30, 5, 0),
                                        ("192.0.2.0/24", "eu", 90, 5, 0)),
         f"{VIRGINIA}/32", "us", 24, down=("ap",)),
    Case("all-down-fails-open-to-the-lowest", (("192.0.2.0/24", "eu", 10, 5, 0),
                                               ("192.0.2.0/24", "us", 30, 5, 0)),
         f"{VIRGINIA}/32", "eu", 24, down=("us", "eu", "ap")),
    Case("unknown-address-with-network-data", (("233.252.0.0/24", "eu", 10, 5, 0),),
         f"{UNKNOWN}/32", "eu", 24),
    Case("unknown-address-without-data-first-listed", (("192.0.2.0/24", "eu", 10, 5, 0),),
         f"{UNKNOWN}/32", "us", 24),
    Case("probes-decide-without-client-data", (("probes", "ap", 5, 10, 0),
                                                ("probes", "eu", 50, 10, 0)),
         f"{FRANKFURT}/32", "ap", 25),
    Case("client-data-beats-probes", (("probes", "ap", 5, 10, 0),
                                      ("198.51.100.0/24", "eu", 40, 5, 0)),
         f"{FRANKFURT}/32", "eu", 25),
    Case("short-source-skips-the-network-key", (("198.51.0.0/24", "eu", 10, 5, 0),
                                                ("probes", "ap", 50, 50, 0)),
         "198.51.0.0/16", "ap", 16),
    Case("full-source-uses-the-network-key", (("198.51.0.0/24", "eu", 10, 5, 0),
                                              ("probes", "ap", 50, 50, 0)),
         "198.51.0.1/32", "eu", 24),
    Case("ipv6-network-key", (("2001:db8:1::/48", "eu", 30, 5, 0),
                              ("2001:db8:1::/48", "us", 20, 5, 0)),
         f"{MUNICH6}/56", "us", 48),
    Case("old-samples-count-less", (("192.0.2.0/24", "ap", 10, 5, 7200),
                                    ("192.0.2.0/24", "us", 30, 5, 0)),
         f"{VIRGINIA}/32", "us", 24),
    Case("a-minute-old-samples-still-count-whole", (("192.0.2.0/24", "ap", 10, 3, 60),
                                                   ("192.0.2.0/24", "us", 30, 3, 0)),
         f"{VIRGINIA}/32", "ap", 24),
    Case("wide-geoip-network-is-narrowed-to-the-network-key",
         (("198.18.7.0/24", "ap", 10, 5, 0),), f"{SYDNEY}/32", "ap", 24),
]


def answer(ref: WorldRef, ecs: str, client: str = "233.252.0.99") -> tuple[list[str], int | None]:
    reply = ask(ref.world, query(WWW, "A", ecs=ecs), client=client)
    return values(reply), ecs_scope(reply)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_latency_rule(case: Case, make_geo: Callable[..., GeoLocator]) -> None:
    geo = make_geo()
    ref = make_ref([load(LATENCY)], geo=geo, health=health(case.down))
    ref.use_latency(view_of(case.measurements, make_geo()))
    first = answer(ref, case.ecs)
    again = answer(ref, case.ecs)  # from the memo
    assert first == again == ([POOL_VALUE[case.want]], case.scope)


def test_a_new_view_replaces_memoized_choices(make_geo: Callable[..., GeoLocator]) -> None:
    ref = make_ref([load(LATENCY)], geo=make_geo(), health=health())
    ref.use_latency(view_of([("192.0.2.0/24", "us", 30, 5, 0)], make_geo()))
    assert answer(ref, f"{VIRGINIA}/32")[0] == [US]
    no_ecs = ask(ref.world, query(WWW, "A"), client=VIRGINIA)
    assert values(no_ecs) == [US]
    ref.use_latency(view_of([("192.0.2.0/24", "us", 30, 5, 0),
                             ("192.0.2.0/24", "eu", 8, 50, 0)], make_geo()))
    assert answer(ref, f"{VIRGINIA}/32")[0] == [EU]
    assert values(ask(ref.world, query(WWW, "A"), client=VIRGINIA)) == [EU]
    # a health change keeps the latency view
    ref.use_health(health(("eu",)))
    assert answer(ref, f"{VIRGINIA}/32")[0] == [US]
    assert ref.world.latency.keys > 0


def test_explain_shows_the_key_latencies_and_skips(make_geo: Callable[..., GeoLocator]) -> None:
    ref = make_ref([load(LATENCY)], geo=make_geo(), health=health(("ap",)))
    ref.use_latency(view_of([("192.0.2.0/24", "us", 30, 5, 0),
                             ("192.0.2.0/24", "ap", 5, 5, 0),
                             ("NA", "eu", 80, 1, 0)], make_geo()))
    result = explain(ref.world, WWW, "A", "233.252.0.9", ecs=f"{VIRGINIA}/32")
    (routing,) = result["routing"]
    (rule,) = [s for s in routing["steps"] if s.get("kind") == "latency"]
    latency = rule["latency"]
    assert latency["key_used"] == "192.0.2.0/24" and latency["level_used"] == "network"
    assert latency["keys"] == ["192.0.2.0/24", "NA-US-VA", "NA-US", "NA"]
    pools = {p["pool"]: p for p in latency["pools"]}
    assert pools["us"]["rtt_ms"] == 30 and pools["us"]["samples"] == 5
    assert pools["ap"]["skipped"] == "chain down"
    assert pools["eu"]["skipped"].startswith("fewer than 3 samples at 192.0.2.0/24")
    assert routing["pool"] == "us" and result["ecs_scope"] == 24
    text = format_text(result)
    assert "key used: 192.0.2.0/24 (network)" in text and "skipped: chain down" in text


# -- properties ------------------------------------------------------------------

NEIGHBOURHOODS = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15",
                  "10.0.0.0/8", "233.252.0.0/24", "2001:db8:1::/48", "2001:db8:4::/48",
                  "2001:db8::/32"]
SAMPLE_CLIENTS = ["192.0.2.0/24", "198.51.100.0/24", "198.51.100.128/25", "203.0.113.0/24",
                  "198.18.7.0/24", "198.19.0.0/24", "10.1.2.0/24", "233.252.0.0/24",
                  "2001:db8:1::/48", "2001:db8:4::/48", "EU", "EU-DE", "NA-US", "OC-AU",
                  "probes"]


@st.composite
def addresses(draw: st.DrawFn, within: str | None = None) -> str:
    network = ipaddress.ip_network(within or draw(st.sampled_from(NEIGHBOURHOODS)))
    host = draw(st.integers(0, network.num_addresses - 1))
    return str(network.network_address + host)


measurements = st.lists(st.tuples(st.sampled_from(SAMPLE_CLIENTS),
                                  st.sampled_from(["us", "eu", "ap"]),
                                  st.floats(1, 300), st.integers(1, 6),
                                  st.sampled_from([0.0, 1800.0, 7200.0])), max_size=25)
downs = st.lists(st.sampled_from(["us", "eu", "ap"]), unique=True, max_size=3)

_geo_cache: dict[int, GeoLocator] = {}


def shared_geo(raw: RawLookup) -> GeoLocator:
    return _geo_cache.setdefault(id(raw), GeoLocator(raw, limit=10_000))


@PROPERTY
@given(ms=measurements, down=downs, address=addresses(), prefix=st.integers(0, 128))
def test_the_chosen_pool_has_the_lowest_latency_plus_bias_at_the_key_used(
        city_raw: RawLookup, ms: list[Measurement], down: list[str], address: str,
        prefix: int) -> None:
    geo = shared_geo(city_raw)
    view = view_of(ms, geo)
    ref = make_ref([load(LATENCY)], geo=geo, health=health(down))
    ref.use_latency(view)
    bits = ipaddress.ip_address(address).max_prefixlen
    prefix = min(prefix, bits)
    got, scope = answer(ref, f"{address}/{prefix}")
    assert scope is not None and 0 <= scope <= prefix
    assert got  # never empty
    # The oracle: candidates are the healthy pools (every pool when all are down).
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    packed = network.network_address.packed
    subnet = ClientSubnet(1 if network.version == 4 else 2, prefix, 0,
                          packed[:(prefix + 7) // 8])
    net = client_net("233.252.0.99", subnet if prefix else None, geo)
    if prefix == 0:
        net = client_net("233.252.0.99", ClientSubnet(1, 0, 0, b""), geo)
    bias = {"us": 0.0, "eu": 0.0, "ap": 5.0}
    candidates = [p for p in ("us", "eu", "ap") if p not in down] or ["us", "eu", "ap"]
    keys = client_keys(net)
    enough = {k: {r: view.region_stats(k, r) for r in candidates} for k in (*keys, PROBE_KEY)}
    enough = {k: {r: s[0] for r, s in v.items() if s is not None and s[1] >= 2.5}
              for k, v in enough.items()}
    levels = next((list(keys[i:]) for i, k in enumerate(keys) if enough[k]), None)
    if levels is None and enough[PROBE_KEY]:
        levels = [PROBE_KEY]
    if levels is None:
        return  # no data: the nearest rule's tests cover this
    scores = {}
    for r in candidates:
        for k in levels:
            if r in enough[k]:
                scores[r] = enough[k][r] + bias[r]
                break
    chosen = next(p for p, v in POOL_VALUE.items() if [v] == got)
    assert chosen in scores, (chosen, scores)
    assert scores[chosen] == min(scores.values()), (chosen, scores)


@PROPERTY
@given(ms=measurements, down=downs, address=addresses(), data=st.data())
def test_every_address_inside_the_scope_gets_the_same_answer(
        city_raw: RawLookup, ms: list[Measurement], down: list[str], address: str,
        data: st.DataObject) -> None:
    geo = shared_geo(city_raw)
    ref = make_ref([load(LATENCY)], geo=geo, health=health(down))
    ref.use_latency(view_of(ms, geo))
    bits = ipaddress.ip_address(address).max_prefixlen
    got, scope = answer(ref, f"{address}/{bits}")
    assert scope is not None
    network = ipaddress.ip_network(f"{address}/{scope}", strict=False)
    for _ in range(3):
        other = data.draw(addresses(str(network)), label="other")
        assert answer(ref, f"{other}/{bits}")[0] == got, (
            f"{address} and {other} are both inside {network}")
