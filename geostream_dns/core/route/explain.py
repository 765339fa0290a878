"""The routing decision for one (name, type, client), for people and for JSON.

Runs the same `lookup`, the same client location (`core.client.client_net`)
and the same matchers (`Router.select`) as the query path, with a trace list
each matcher fills through its `describe` method: each rule tried and why it
matched or not, distances for `nearest`, for `latency` the client key used and
each pool's latency and sample count (or why it was skipped), each pool's values with health and
weight, and the fallback hops. The result is plain JSON data;
`cli/explain.py` prints it for a person and `GET /v1/explain` serves it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype

from geostream_dns.core.client import client_net
from geostream_dns.core.geo import Location
from geostream_dns.core.lookup import lookup
from geostream_dns.core.route.router import pick
from geostream_dns.core.snapshot import ALIAS
from geostream_dns.core.wire import ClientSubnet
from geostream_dns.core.world import World


class ExplainError(ValueError):
    """A bad explain request (name, type or client)."""


def _type_text(rdtype: int) -> str:
    if rdtype == ALIAS:
        return "ALIAS"
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


def _location_json(loc: Location) -> dict[str, Any]:
    return {"known": loc.known, "continent": loc.continent, "country": loc.country,
            "subdivision": loc.subdivision, "lat": loc.lat, "lon": loc.lon,
            "network_prefix": loc.prefix_len, "codes": sorted(loc.codes)}


def subnet_option(text: str) -> ClientSubnet:
    """An ECS option for a subnet written as text ("192.0.2.0/24")."""
    try:
        subnet = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ExplainError(f"ecs {text!r} is not a subnet like 192.0.2.0/24") from None
    length = (subnet.prefixlen + 7) // 8
    return ClientSubnet(1 if subnet.version == 4 else 2, subnet.prefixlen, 0,
                        subnet.network_address.packed[:length])


def explain(world: World, name: str, rtype: str, client: str,
            ecs: str | None = None) -> dict[str, Any]:
    try:
        qname = dns.name.from_text(name)
        qtype = int(dns.rdatatype.from_text(rtype.upper()))
    except (dns.exception.DNSException, ValueError) as exc:
        raise ExplainError(f"bad name or type: {exc}") from None
    try:
        client_ip = ipaddress.ip_address(client)
    except ValueError:
        raise ExplainError(f"client {client!r} is not an IP address") from None
    option = subnet_option(ecs) if ecs is not None else None
    net = client_net(str(client_ip), option, world.geo)
    health = world.health
    out: dict[str, Any] = {
        "query": {"name": qname.to_text(), "type": _type_text(qtype),
                  "client": str(client_ip), "ecs": ecs},
        "located_by": net.located_by(),
        "location": _location_json(net.location),
        "health_generation": health.generation,
        "latency_generation": world.latency.generation,
        "drained_regions": sorted(health.drained),
    }
    res = lookup(world.snapshot.zone_set, qname, qtype)
    out["zone"] = res.zone.origin.to_text() if res.zone is not None else None
    out["rcode"] = dns.rcode.to_text(dns.rcode.Rcode(res.rcode))
    records: list[dict[str, Any]] = []
    routed: list[dict[str, Any]] = []
    scope = 0
    for part in res.answer:
        router = part.data.router
        if router is None:
            rdatas = part.data.rdatas
        else:
            trace: list[dict[str, Any]] = []
            selection = router.select(net, world.route, trace)
            scope = max(scope, selection.scope)
            rdatas = pick(selection, world.rng).rdatas
            routed.append({"record": router.name, "type": router.rtype,
                           "steps": trace, "rule": selection.rule, "pool": selection.pool,
                           "failed_open": selection.failed_open,
                           "answer_mode": (router.pools[selection.pool].answer
                                           if selection.pool else "own values"),
                           "values": [r.to_text() for r in rdatas]})
        for rdata in rdatas:
            records.append({"name": part.owner.to_text(), "ttl": part.ttl,
                            "type": _type_text(part.data.rdtype),
                            "value": rdata.to_text()})
    out["routing"] = routed
    out["answer"] = records
    out["authority"] = [{"name": r.owner.to_text(), "type": _type_text(r.rdtype),
                         "ttl": r.ttl, "values": [x.to_text() for x in r.rdatas]}
                        for r in res.authority]
    out["ecs_scope"] = scope if ecs is not None else None  # select keeps it <= the source
    out["alias"] = _alias_json(world, res.external) if res.external is not None else None
    return out


def _alias_json(world: World, target: dns.name.Name) -> dict[str, Any]:
    """An ALIAS target outside the hosted zones: what the server resolved it to."""
    found = world.snapshot.zone_set.external(target)
    out: dict[str, Any] = {"target": target.to_text(), "external": True,
                           "resolved": found is not None}
    if found is not None:
        out["a"] = {"ttl": found.a_ttl, "values": [r.to_text() for r in found.a]}
        out["aaaa"] = {"ttl": found.aaaa_ttl, "values": [r.to_text() for r in found.aaaa]}
    return out


def _latency_lines(latency: dict[str, Any]) -> list[str]:
    used = latency["key_used"]
    lines = [f"      client keys: {', '.join(latency['keys']) or 'none'}; key used: "
             + (f"{used} ({latency['level_used']})" if used else "none")
             + f"; min_samples {latency['min_samples']}"]
    for p in latency["pools"]:
        health = "healthy" if p["chain_healthy"] else "chain down"
        if "score_ms" in p:
            what = (f"{p['rtt_ms']:.1f} ms + bias {p['bias_ms']:g} = {p['score_ms']:.1f} ms"
                    f" ({p['samples']:g} samples at {p['key_used']})")
        else:
            what = f"skipped: {p['skipped']}"
        lines.append(f"      {p['pool']} ({p['region']}, {health}): {what}")
        for e in p["evidence"]:
            mark = "" if e["enough"] else " (too few)"
            lines.append(f"        {e['key']:<24} {e['rtt_ms']:8.1f} ms {e['samples']:10g}"
                         f" samples{mark}")
    return lines


def format_text(result: dict[str, Any]) -> str:
    """The explain result as a person reads it."""
    q = result["query"]
    loc = result["location"]
    lines = [f"{q['name']} {q['type']} for {q['client']}"
             + (f" (ECS {q['ecs']})" if q["ecs"] else "")]
    if loc["known"]:
        where = "-".join(x for x in (loc["continent"], loc["country"], loc["subdivision"]) if x)
        coords = (f" at {loc['lat']:.2f}, {loc['lon']:.2f}"
                  if loc["lat"] is not None else " (no coordinates)")
        lines.append(f"  location: {where}{coords}, GeoIP network /{loc['network_prefix']}"
                     f" ({result['located_by']})")
    else:
        lines.append(f"  location: unknown ({result['located_by']})")
    if result["drained_regions"]:
        lines.append(f"  drained regions: {', '.join(result['drained_regions'])}")
    if result["zone"] is None:
        lines.append("  not in any hosted zone: REFUSED")
        return "\n".join(lines)
    lines.append(f"  zone: {result['zone']}")
    for routed in result["routing"]:
        lines.append(f"  routing of {routed['record']} {routed['type']}:")
        for step in routed["steps"]:
            if "rule" in step:
                mark = "match" if step["matched"] else "no match"
                lines.append(f"    rule {step['rule']} (line {step['line']}) {step['condition']}:"
                             f" {mark}: {step['why']}")
                for d in step.get("distances_km", ()):
                    km = "?" if d["km"] is None else f"{d['km']:,.0f} km"
                    health = "healthy" if d["chain_healthy"] else "chain down"
                    lines.append(f"      {d['pool']}: {km} ({health})")
                if "latency" in step:
                    lines.extend(_latency_lines(step["latency"]))
            elif step.get("step") == "pool":
                state = "healthy" if step["healthy"] else "DOWN"
                region = f" in {step['region']}" if step["region"] else ""
                lines.append(f"    pool {step['pool']}{region}: {state}")
                for v in step["values"]:
                    check = f" check {v['healthcheck']}" if v["healthcheck"] else ""
                    status = f" status {v['status']}" if v["status"] != "obey" else ""
                    lines.append(f"      {v['value']:<40} weight {v['weight']:<3}"
                                 f" {'up' if v['up'] else 'DOWN'}{check}{status}")
            else:
                lines.append(f"    {step['step']}")
        lines.append(f"    => pool {routed['pool'] or '-'} ({routed['answer_mode']}):"
                     f" {', '.join(routed['values'])}")
    alias = result.get("alias")
    if alias is not None:
        lines.append(f"  ALIAS to {alias['target']} (outside the hosted zones, resolved in "
                     f"the background):")
        if alias["resolved"]:
            for rtype in ("a", "aaaa"):
                got = alias[rtype]
                values = ", ".join(got["values"]) or "none"
                ttl = f" (TTL {got['ttl']})" if got["values"] else ""
                lines.append(f"    {rtype.upper()}: {values}{ttl}")
        else:
            lines.append("    not resolved (until it is, the ALIAS answers SERVFAIL)")
        resolver = alias.get("resolver")
        if resolver is not None:
            error = f", last error: {resolver['last_error']}" if resolver["last_error"] else ""
            lines.append(f"    resolver {resolver['resolver'] or 'off'}: {resolver['state']}, "
                         f"{resolver['attempts']} attempts, "
                         f"{resolver['consecutive_failures']} failing{error}")
    lines.append(f"  answer ({result['rcode']}):")
    for r in result["answer"]:
        lines.append(f"    {r['name']} {r['ttl']} {r['type']} {r['value']}")
    for r in result["authority"]:
        lines.append(f"    authority: {r['name']} {r['ttl']} {r['type']} {' '.join(r['values'])}")
    if result["ecs_scope"] is not None:
        lines.append(f"  ECS scope: /{result['ecs_scope']}")
    return "\n".join(lines)
