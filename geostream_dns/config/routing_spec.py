"""Validation of a record's ``routing`` block: pools, fallback chains and rules.

Indexes in paths are 0-based (``rules[0]`` is the first rule), and so are the
rule numbers inside messages (``rule after the catch-all rule 2``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

import dns.rdata

from geostream_dns.config.fields import (
    Checker,
    as_int,
    as_list,
    as_map,
    as_number,
    as_str,
    check_keys,
    choice,
    describe,
    index,
    join,
)
from geostream_dns.config.values import build_rdata
from geostream_dns.config.yamlpos import PosDict
from geostream_dns.core.model import (
    DEFAULT_MIN_SAMPLES,
    CatchAllRule,
    GeosRule,
    IPNetwork,
    LatencyRule,
    NearestRule,
    Pool,
    PoolValue,
    Region,
    Routing,
    Rule,
    SubnetsRule,
)

CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
_GEO = re.compile(r"^([A-Z]{2})(?:-([A-Z]{2})(?:-([A-Z0-9]{1,3}))?)?$")
CONDITIONS = ("geos", "subnets", "nearest", "latency")
CHOOSERS = ("nearest", "latency")  # rules that choose among their listed pools
MIN_SAMPLES_MAX = 1_000_000


def parse_routing(
    ck: Checker,
    value: Any,
    line: int,
    path: str,
    rtype: str,
    regions: dict[str, Region],
    healthchecks: set[str],
    has_values: bool,
) -> Routing | None:
    """The validated routing of one record set, or None after recording problems."""
    before = len(ck.problems)
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    check_keys(ck, m, path, ("pools", "rules"), ("pools", "rules"), line)
    pools: dict[str, Pool] = {}
    pool_names: list[str] = []
    if "pools" in m:
        pools, pool_names = _pools(
            ck, m["pools"], m.line_of("pools"), join(path, "pools"), rtype, regions, healthchecks
        )
    rules: list[Rule] = []
    if "rules" in m:
        rules = _rules(
            ck, m["rules"], m.line_of("rules"), join(path, "rules"), pool_names, pools, has_values
        )
    if len(ck.problems) != before:
        return None
    return Routing(pools=pools, rules=tuple(rules))


def _pools(
    ck: Checker,
    value: Any,
    line: int,
    path: str,
    rtype: str,
    regions: dict[str, Region],
    healthchecks: set[str],
) -> tuple[dict[str, Pool], list[str]]:
    """Valid pools, and the names of all pools written (valid or not)."""
    pools: dict[str, Pool] = {}
    m = as_map(ck, value, line, path)
    if m is None:
        return pools, []
    check_keys(ck, m, path, m.keys())  # duplicates only
    if not m:
        ck.add(line, path, "must not be empty")
    names = [str(name) for name in m]
    fallbacks: dict[str, tuple[str, int]] = {}
    for name, spec in m.items():
        name = str(name)
        pool = _pool(
            ck, name, spec, m.line_of(name), join(path, name), rtype, regions, healthchecks
        )
        if pool is not None:
            pools[name] = pool
        if isinstance(spec, PosDict) and isinstance(spec.get("fallback"), str):
            fallbacks[name] = (spec["fallback"], spec.line_of("fallback"))
    for name, (target, fline) in fallbacks.items():
        fpath = join(join(path, name), "fallback")
        if target == name:
            ck.add(fline, fpath, "a pool cannot fall back to itself")
        elif target not in names:
            ck.add(fline, fpath, f'unknown pool "{target}"')
    # Pools may back each other up (us -> eu -> us), as the sample zone does:
    # routing follows a chain only until it reaches a pool already tried, so a
    # cycle never loops at run time. Only a pool falling back to itself is
    # meaningless, and refused above.
    return pools, names


def _pool(
    ck: Checker,
    name: str,
    value: Any,
    line: int,
    path: str,
    rtype: str,
    regions: dict[str, Region],
    healthchecks: set[str],
) -> Pool | None:
    before = len(ck.problems)
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    check_keys(ck, m, path, ("region", "answer", "values", "fallback"), ("values",), line)
    region: str | None = None
    if "region" in m:
        region = as_str(ck, m["region"], m.line_of("region"), join(path, "region"))
        if region is not None and region not in regions:
            ck.add(m.line_of("region"), join(path, "region"), f'unknown region "{region}"')
    answer = "weighted"
    if "answer" in m:
        answer = (
            choice(
                ck,
                m["answer"],
                m.line_of("answer"),
                join(path, "answer"),
                ("weighted", "all", "multivalue"),
            )
            or answer
        )
        if rtype == "CNAME" and answer != "weighted":
            ck.add(
                m.line_of("answer"),
                join(path, "answer"),
                f'a CNAME answer holds one value, so "{answer}" cannot apply; use "weighted"',
            )
    fallback: str | None = None
    if "fallback" in m:  # references are checked by _pools, which knows every pool
        fallback = as_str(ck, m["fallback"], m.line_of("fallback"), join(path, "fallback"))
    values: list[PoolValue] = []
    if "values" in m:
        vpath = join(path, "values")
        items = as_list(ck, m["values"], m.line_of("values"), vpath)
        seen: dict[dns.rdata.Rdata, int] = {}
        for i, item in enumerate(items or ()):
            pv = _pool_value(ck, item, items.lines[i], index(vpath, i), rtype, healthchecks)  # type: ignore[union-attr]
            if pv is None:
                continue
            if pv.rdata in seen:
                ck.add(items.lines[i], index(vpath, i), f"duplicate of values[{seen[pv.rdata]}]")  # type: ignore[union-attr]
                continue
            seen[pv.rdata] = i
            values.append(pv)
    if len(ck.problems) != before:
        return None
    return Pool(name, region, answer, tuple(values), fallback)  # type: ignore[arg-type]


def _pool_value(
    ck: Checker, item: Any, line: int, path: str, rtype: str, healthchecks: set[str]
) -> PoolValue | None:
    if not isinstance(item, PosDict):
        rdata = build_rdata(ck, rtype, item, line, path)
        return None if rdata is None else PoolValue(rdata)
    before = len(ck.problems)
    check_keys(ck, item, path, ("value", "weight", "healthcheck", "status"), ("value",), line)
    rdata = None
    if "value" in item:
        rdata = build_rdata(ck, rtype, item["value"], item.line_of("value"), join(path, "value"))
    weight: int | None = 1
    if "weight" in item:
        weight = as_int(ck, item["weight"], item.line_of("weight"), join(path, "weight"), 1, 100)
    check: str | None = None
    if "healthcheck" in item:
        hline, hpath = item.line_of("healthcheck"), join(path, "healthcheck")
        check = as_str(ck, item["healthcheck"], hline, hpath)
        if check is not None and check not in healthchecks:
            ck.add(hline, hpath, f'unknown health check "{check}"')
        elif check is not None and rtype == "TXT":
            ck.add(hline, hpath, "a TXT value has no address to check")
    status = "obey"
    if "status" in item:
        status = (
            choice(
                ck,
                item["status"],
                item.line_of("status"),
                join(path, "status"),
                ("up", "down", "obey"),
            )
            or status
        )
    if len(ck.problems) != before or rdata is None or weight is None:
        return None
    return PoolValue(rdata, weight, check, status)  # type: ignore[arg-type]


def _rules(
    ck: Checker,
    value: Any,
    line: int,
    path: str,
    pool_names: list[str],
    pools: dict[str, Pool],
    has_values: bool,
) -> list[Rule]:
    rules: list[Rule] = []
    items = as_list(ck, value, line, path)
    if items is None:
        return rules
    catch_all: int | None = None
    for i, item in enumerate(items):
        rpath, rline = index(path, i), items.lines[i]
        if catch_all is not None:
            ck.add(rline, rpath, f"rule after the catch-all rule {catch_all} can never match")
        rule = _rule(ck, item, rline, rpath, pool_names, pools)
        if rule is not None:
            rules.append(rule)
        if catch_all is None and _matches_everyone(item):
            catch_all = i
    if not has_values and not _matches_everyone(items[-1]):
        ck.add(
            line,
            path,
            "a routed record without values must end with a rule that matches every client "
            "(a nearest or latency rule, or a rule without a condition)",
        )
    return rules


def _matches_everyone(rule: Any) -> bool:
    """A nearest or latency rule or a rule without a condition (judged as written,
    valid or not)."""
    return isinstance(rule, PosDict) and "geos" not in rule and "subnets" not in rule


def _rule(
    ck: Checker, value: Any, line: int, path: str, pool_names: list[str], pools: dict[str, Pool]
) -> Rule | None:
    before = len(ck.problems)
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    check_keys(ck, m, path, (*CONDITIONS, "bias", "min_samples", "pool"))
    given = [c for c in CONDITIONS if c in m]
    if len(given) > 1:
        ck.add(line, path, f"a rule has at most one condition, got {' and '.join(given)}")
    chooser = next((c for c in CHOOSERS if c in m), None)
    pool: str | None = None
    if chooser is not None and "pool" in m:
        ck.add(
            m.line_of("pool"),
            join(path, "pool"),
            f"a {chooser} rule picks among its listed pools; remove pool",
        )
    elif "pool" in m:
        pool = as_str(ck, m["pool"], m.line_of("pool"), join(path, "pool"))
        if pool is not None and pool not in pool_names:
            ck.add(m.line_of("pool"), join(path, "pool"), f'unknown pool "{pool}"')
    elif chooser is None:
        ck.add(line, join(path, "pool"), "missing required key")
    geos = _geos(ck, m, path) if "geos" in m else ()
    subnets = _subnets(ck, m, path) if "subnets" in m else ()
    listed = _listed(ck, m, chooser, path, pool_names, pools) if chooser is not None else ()
    if chooser is not None and not listed and len(ck.problems) == before:
        ck.add(m.line_of(chooser), join(path, chooser), "must list at least one pool")
    bias: tuple[tuple[str, float], ...] = ()
    if "bias" in m:
        if chooser is None:
            ck.add(m.line_of("bias"), join(path, "bias"),
                   "bias only applies to a nearest or latency rule")
        else:
            written = m[chooser] if isinstance(m[chooser], list) else []
            bias = _bias(ck, m, path, chooser, [n for n in written if isinstance(n, str)])
    min_samples = DEFAULT_MIN_SAMPLES
    if "min_samples" in m:
        mline, mpath = m.line_of("min_samples"), join(path, "min_samples")
        if chooser != "latency":
            ck.add(mline, mpath, "min_samples only applies to a latency rule")
        else:
            min_samples = as_int(ck, m["min_samples"], mline, mpath, 1,
                                 MIN_SAMPLES_MAX) or min_samples
    if len(ck.problems) != before:
        return None
    if listed and chooser == "latency":
        return LatencyRule(listed, bias, min_samples, line)
    if listed:
        return NearestRule(listed, bias, line)
    assert pool is not None
    if geos:
        return GeosRule(pool, geos, line)
    if subnets:
        return SubnetsRule(pool, subnets, line)
    return CatchAllRule(pool, line)


def _strings(ck: Checker, m: PosDict, key: str,
             path: str) -> Iterator[tuple[str, int, str]]:
    """(text, line, path) of each string in the list under `key`; others are reported."""
    lpath = join(path, key)
    items = as_list(ck, m[key], m.line_of(key), lpath)
    for i, item in enumerate(items or ()):
        ipath, iline = index(lpath, i), items.lines[i]  # type: ignore[union-attr]
        text = as_str(ck, item, iline, ipath)
        if text is not None:
            yield text, iline, ipath


def _geos(ck: Checker, m: PosDict, path: str) -> tuple[str, ...]:
    codes: list[str] = []
    for text, iline, ipath in _strings(ck, m, "geos", path):
        code = text.upper()
        match = _GEO.match(code)
        if match is None:
            ck.add(iline, ipath, f'"{text}" is not a geo code like EU, EU-DE or NA-US-CA')
        elif match.group(1) not in CONTINENTS:
            ck.add(
                iline,
                ipath,
                f'"{match.group(1)}" is not a continent code ({" ".join(CONTINENTS)})',
            )
        else:
            codes.append(code)
    return tuple(codes)


def _subnets(ck: Checker, m: PosDict, path: str) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for text, iline, ipath in _strings(ck, m, "subnets", path):
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            if "host bits set" in str(exc):
                fixed = ipaddress.ip_network(text, strict=False)
                ck.add(iline, ipath, f'"{text}" has host bits set; did you mean {fixed}?')
            else:
                ck.add(iline, ipath, f'"{text}" is not an IP network like 192.0.2.0/24')
    return tuple(networks)


def _listed(
    ck: Checker, m: PosDict, chooser: str, path: str, pool_names: list[str],
    pools: dict[str, Pool]
) -> tuple[str, ...]:
    """The pools a nearest or latency rule chooses among: known, once, with a region."""
    names: list[str] = []
    what = "distance" if chooser == "nearest" else "measured latency"
    for name, iline, ipath in _strings(ck, m, chooser, path):
        if name not in pool_names:
            ck.add(iline, ipath, f'unknown pool "{name}"')
        elif name in names:
            ck.add(iline, ipath, f'pool "{name}" is listed twice')
        elif name in pools and pools[name].region is None:
            ck.add(iline, ipath, f'pool "{name}" has no region, so it has no {what}')
        else:
            names.append(name)
    return tuple(names)


def _bias(ck: Checker, m: PosDict, path: str, chooser: str,
          near: list[str]) -> tuple[tuple[str, float], ...]:
    bpath = join(path, "bias")
    bm = as_map(ck, m["bias"], m.line_of("bias"), bpath)
    out: list[tuple[str, float]] = []
    if bm is None:
        return ()
    check_keys(ck, bm, bpath, bm.keys())  # duplicates only
    for name, km in bm.items():
        kline, kpath = bm.line_of(name), join(bpath, name)
        if name not in near:
            ck.add(kline, kpath, f"{describe(name)} is not one of this rule's {chooser} pools")
            continue
        value = as_number(ck, km, kline, kpath)
        if value is not None:
            out.append((name, value))
    return tuple(out)
