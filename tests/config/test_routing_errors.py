"""One test per kind of routing problem, asserting the exact message.

Indexes are 0-based in paths and in messages (``rule after the catch-all rule 2``).
Snippets go under ``records:`` (file line R); snippet line N is file line R + N.
"""

from __future__ import annotations

import ipaddress

from geostream_dns.core.model import GeosRule, NearestRule, SubnetsRule
from tests.config.helpers import R, at, load, record_problems, records

HEAD = """\
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      us: {region: us, values: [192.0.2.10]}
      eu: {region: eu, values: [198.51.100.10]}
"""  # pools at snippet line 5; rules start at line 8


def routed(rest: str, head: str = HEAD) -> list[str]:
    return record_problems(head + rest)


def test_unknown_pool_in_rule() -> None:
    rules = """\
    rules:
      - {geos: [EU], pool: eu}
      - {geos: [NA], pool: us}
      - {pool: eu-west}
"""
    assert routed(rules) == [
        at(R + 11, 'records.www.routing.rules[2].pool: unknown pool "eu-west"')
    ]


def test_weight_out_of_range() -> None:
    head = HEAD.replace(
        "us: {region: us, values: [192.0.2.10]}",
        "us: {region: us, values: [192.0.2.10, 192.0.2.11, 192.0.2.12, {value: 192.0.2.13, "
        "weight: 0}]}",
    )
    assert routed("    rules: [{pool: us}]\n", head) == [
        at(R + 6, "records.www.routing.pools.us.values[3].weight: 0 is not in 1..100")
    ]


def test_mutual_fallbacks_are_allowed() -> None:
    """Pools may stand in for each other (us <-> eu, as in the sample zone); a chain
    stops at a pool already tried, so it never loops."""
    head = """\
www:
  type: A
  values: [192.0.2.1]
  routing:
    pools:
      us: {region: us, values: [192.0.2.10], fallback: eu}
      eu: {region: eu, values: [198.51.100.10], fallback: ap}
      ap: {region: ap, values: [203.0.113.10], fallback: eu}
    rules: [{pool: us}]
"""
    zone = load(records(head))
    pools = zone.rrsets[0].routing.pools  # type: ignore[union-attr]
    assert (pools["eu"].fallback, pools["ap"].fallback) == ("ap", "eu")


def test_fallback_to_itself_and_unknown() -> None:
    head = HEAD.replace("values: [192.0.2.10]}", "values: [192.0.2.10], fallback: us}").replace(
        "values: [198.51.100.10]}", "values: [198.51.100.10], fallback: ap}"
    )
    assert routed("    rules: [{pool: us}]\n", head) == [
        at(R + 6, "records.www.routing.pools.us.fallback: a pool cannot fall back to itself"),
        at(R + 7, 'records.www.routing.pools.eu.fallback: unknown pool "ap"'),
    ]


def test_fallback_chain_is_kept() -> None:
    head = HEAD.replace("values: [192.0.2.10]}", "values: [192.0.2.10], fallback: eu}")
    zone = load(records(head + "    rules: [{pool: us}]\n"))
    routing = zone.rrsets[0].routing
    assert routing is not None
    assert routing.pools["us"].fallback == "eu"
    assert routing.pools["eu"].fallback is None


def test_unknown_region_and_health_check() -> None:
    head = HEAD.replace(
        "us: {region: us, values: [192.0.2.10]}",
        "us: {region: mars, values: [{value: 192.0.2.10, healthcheck: ping}]}",
    )
    assert routed("    rules: [{pool: us}]\n", head) == [
        at(R + 6, 'records.www.routing.pools.us.region: unknown region "mars"'),
        at(
            R + 6, 'records.www.routing.pools.us.values[0].healthcheck: unknown health check "ping"'
        ),
    ]


def test_pool_value_must_fit_the_type() -> None:
    head = HEAD.replace("[198.51.100.10]", '["2001:db8::1"]')
    assert routed("    rules: [{pool: eu}]\n", head) == [
        at(R + 7, 'records.www.routing.pools.eu.values[0]: "2001:db8::1" is not an IPv4 address')
    ]


def test_pool_value_status_and_unknown_key() -> None:
    head = HEAD.replace("[198.51.100.10]", "[{value: 198.51.100.10, status: sometimes, weigth: 2}]")
    assert routed("    rules: [{pool: eu}]\n", head) == [
        at(R + 7, 'records.www.routing.pools.eu.values[0].weigth: unknown key "weigth"'),
        at(
            R + 7,
            "records.www.routing.pools.eu.values[0].status: expected one of up, down, obey, "
            'got "sometimes"',
        ),
    ]


def test_rule_after_catch_all() -> None:
    rules = """\
    rules:
      - {geos: [EU], pool: eu}
      - {subnets: [10.0.0.0/8], pool: us}
      - {pool: us}
      - {geos: [NA], pool: us}
      - {nearest: [us, eu]}
"""
    assert routed(rules) == [
        at(R + 12, "records.www.routing.rules[3]: rule after the catch-all rule 2 can never match"),
        at(R + 13, "records.www.routing.rules[4]: rule after the catch-all rule 2 can never match"),
    ]


def test_rule_after_nearest() -> None:
    rules = """\
    rules:
      - {nearest: [us, eu]}
      - {pool: us}
"""
    assert routed(rules) == [
        at(R + 10, "records.www.routing.rules[1]: rule after the catch-all rule 0 can never match")
    ]


def test_two_conditions() -> None:
    assert routed("    rules: [{geos: [EU], subnets: [10.0.0.0/8], pool: eu}]\n") == [
        at(
            R + 8,
            "records.www.routing.rules[0]: a rule has at most one condition, got geos and subnets",
        )
    ]


def test_rule_without_pool() -> None:
    assert routed("    rules: [{geos: [EU]}, {pool: us}]\n") == [
        at(R + 8, "records.www.routing.rules[0].pool: missing required key")
    ]


def test_nearest_rule_problems() -> None:
    rules = """\
    rules:
      - nearest: [us, ap, us]
        pool: us
        bias: {eu: 100, us: far}
"""
    assert routed(rules) == [
        at(R + 9, 'records.www.routing.rules[0].nearest[1]: unknown pool "ap"'),
        at(R + 9, 'records.www.routing.rules[0].nearest[2]: pool "us" is listed twice'),
        at(
            R + 10,
            "records.www.routing.rules[0].pool: a nearest rule picks among its listed "
            "pools; remove pool",
        ),
        at(
            R + 11,
            'records.www.routing.rules[0].bias.eu: "eu" is not one of this rule\'s nearest pools',
        ),
        at(R + 11, 'records.www.routing.rules[0].bias.us: expected a number, got "far"'),
    ]


def test_nearest_pool_needs_a_region() -> None:
    head = HEAD.replace("us: {region: us, values", "us: {values")
    assert routed("    rules: [{nearest: [us, eu]}]\n", head) == [
        at(
            R + 8,
            'records.www.routing.rules[0].nearest[0]: pool "us" has no region, '
            "so it has no distance",
        )
    ]


def test_bias_only_on_nearest() -> None:
    assert routed("    rules: [{pool: us, bias: {us: 10}}]\n") == [
        at(R + 8,
           "records.www.routing.rules[0].bias: bias only applies to a nearest or latency rule")
    ]


def test_latency_rule_problems() -> None:
    rules = """\
    rules:
      - latency: [us, ap, us]
        pool: us
        bias: {eu: 10, us: slow}
        min_samples: 0
"""
    assert routed(rules) == [
        at(R + 9, 'records.www.routing.rules[0].latency[1]: unknown pool "ap"'),
        at(R + 9, 'records.www.routing.rules[0].latency[2]: pool "us" is listed twice'),
        at(R + 10, "records.www.routing.rules[0].pool: a latency rule picks among its listed "
                   "pools; remove pool"),
        at(R + 11, 'records.www.routing.rules[0].bias.eu: "eu" is not one of this rule\'s '
                   "latency pools"),
        at(R + 11, 'records.www.routing.rules[0].bias.us: expected a number, got "slow"'),
        at(R + 12, "records.www.routing.rules[0].min_samples: 0 is not in 1..1000000"),
    ]


def test_latency_rule_needs_regions_pools_and_stands_alone() -> None:
    head = HEAD.replace("us: {region: us, values", "us: {values")
    assert routed("    rules: [{latency: [us, eu]}]\n", head) == [
        at(R + 8, 'records.www.routing.rules[0].latency[0]: pool "us" has no region, '
                  "so it has no measured latency")]
    assert routed("    rules: [{latency: []}]\n") == [
        at(R + 8, "records.www.routing.rules[0].latency: must not be empty")]
    assert routed("    rules: [{pool: us, min_samples: 5}]\n") == [
        at(R + 8, "records.www.routing.rules[0].min_samples: min_samples only applies to a "
                  "latency rule")]
    assert routed("    rules: [{latency: [us], nearest: [eu]}]\n") == [
        at(R + 8, "records.www.routing.rules[0]: a rule has at most one condition, "
                  "got nearest and latency")]
    assert routed("    rules: [{latency: [us]}, {pool: eu}]\n") == [
        at(R + 8, "records.www.routing.rules[1]: rule after the catch-all rule 0 can never "
                  "match")]


def test_a_latency_rule_loads_into_the_model() -> None:
    from geostream_dns.core.model import LatencyRule

    zone = load(records(HEAD + "    rules: [{latency: [us, eu], bias: {us: 12.5}, "
                                "min_samples: 3}]\n"))
    (rrset,) = [rs for rs in zone.rrsets if rs.routing is not None]
    assert rrset.routing is not None
    assert rrset.routing.rules == (LatencyRule(("us", "eu"), (("us", 12.5),), 3, R + 8),)


def test_bad_geo_codes() -> None:
    assert routed("    rules: [{geos: [EU-DEU, XX-DE, eu-de, NA-US-CA], pool: eu}]\n") == [
        at(
            R + 8,
            'records.www.routing.rules[0].geos[0]: "EU-DEU" is not a geo code like EU, '
            "EU-DE or NA-US-CA",
        ),
        at(
            R + 8,
            'records.www.routing.rules[0].geos[1]: "XX" is not a continent code '
            "(AF AN AS EU NA OC SA)",
        ),
    ]


def test_subnets() -> None:
    assert routed('    rules: [{subnets: [10.0.0.1/8, bogus, "2001:db8::/32"], pool: eu}]\n') == [
        at(
            R + 8,
            'records.www.routing.rules[0].subnets[0]: "10.0.0.1/8" has host bits set; '
            "did you mean 10.0.0.0/8?",
        ),
        at(
            R + 8,
            'records.www.routing.rules[0].subnets[1]: "bogus" is not an IP network like '
            "192.0.2.0/24",
        ),
    ]


def test_routed_record_without_values_needs_a_catch_all() -> None:
    head = HEAD.replace("  values: [192.0.2.1]\n", "")
    assert routed("    rules: [{geos: [EU], pool: eu}]\n", head) == [
        at(
            R + 7,
            "records.www.routing.rules: a routed record without values must end with a rule "
            "that matches every client (a nearest or latency rule, or a rule without a condition)",
        )
    ]


def test_routed_record_without_values_with_catch_all() -> None:
    head = HEAD.replace("  values: [192.0.2.1]\n", "")
    zone = load(records(head + "    rules: [{geos: [EU], pool: eu}, {pool: us}]\n"))
    assert zone.rrsets[0].rdatas == ()


def test_routing_keys() -> None:
    assert record_problems(
        "www: {type: A, value: 192.0.2.1, routing: {pools: {}, rule: []}}\n"
    ) == [
        at(R + 1, 'records.www.routing.rule: unknown key "rule"'),
        at(R + 1, "records.www.routing.rules: missing required key"),
        at(R + 1, "records.www.routing.pools: must not be empty"),
    ]


def test_cname_pool_answers_one_value() -> None:
    snippet = """\
    api:
      type: CNAME
      value: www.example.net.
      routing:
        pools:
          eu: {answer: all, values: [eu.example.net., eu2.example.net.]}
        rules: [{pool: eu}]
    """
    assert record_problems(snippet) == [
        at(
            R + 6,
            'records.api.routing.pools.eu.answer: a CNAME answer holds one value, so "all" '
            'cannot apply; use "weighted"',
        )
    ]


def test_txt_values_cannot_be_health_checked() -> None:
    snippet = """\
    txt:
      type: TXT
      value: default
      routing:
        pools:
          eu: {values: [{value: hello, healthcheck: web}]}
        rules: [{pool: eu}]
    """
    assert record_problems(snippet) == [
        at(
            R + 6,
            "records.txt.routing.pools.eu.values[0].healthcheck: a TXT value has no address "
            "to check",
        )
    ]


def test_valid_routing_model() -> None:
    rules = """\
    rules:
      - {geos: [eu-de, NA-US-CA], pool: eu}
      - {subnets: ["2001:db8::/32"], pool: us}
      - nearest: [us, eu]
        bias: {eu: -250.5}
"""
    head = HEAD.replace(
        "[198.51.100.10]", "[{value: 198.51.100.10, weight: 7, healthcheck: web, status: down}]"
    ).replace("{region: us, values", "{region: us, answer: multivalue, values")
    zone = load(records(head + rules))
    (rrset,) = zone.rrsets
    assert rrset.routing is not None
    us, eu = rrset.routing.pools["us"], rrset.routing.pools["eu"]
    assert (us.answer, us.region, eu.answer) == ("multivalue", "us", "weighted")
    (value,) = eu.values
    assert (value.rdata.to_text(), value.weight, value.healthcheck, value.status) == (
        "198.51.100.10",
        7,
        "web",
        "down",
    )
    first, second, third = rrset.routing.rules
    assert (first.geos, first.pool, first.kind, first.line) == (
        ("EU-DE", "NA-US-CA"),
        "eu",
        "geos",
        R + 9,
    )
    assert isinstance(first, GeosRule)
    assert isinstance(second, SubnetsRule)
    assert second.subnets == (ipaddress.ip_network("2001:db8::/32"),)
    assert isinstance(third, NearestRule)
    assert (third.pools, third.bias, third.kind, third.line) == (
        ("us", "eu"),
        (("eu", -250.5),),
        "nearest",
        R + 11,
    )


def test_a_bias_must_be_finite() -> None:
    rules = """\
    rules:
      - {nearest: [us, eu], bias: {eu: .nan}}
"""
    assert routed(rules) == [
        at(R + 9, "records.www.routing.rules[0].bias.eu: expected a finite number, got nan")
    ]
