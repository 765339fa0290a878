"""Route 53 ``list-resource-record-sets`` JSON -> a GeoStream zone.

How this works: record sets are grouped by (name, type). A group without
``SetIdentifier`` is a plain record set (or an alias); a group with one is a
routing policy, converted into a ``routing`` block with one pool per set:

* failover: ``primary`` falls back to ``secondary``, one catch-all rule;
* weighted: one pool answering one value by weight (weight 0: ``status:
  down``, served only when every other value is down, as Route 53 does);
* multivalue: one pool answering up to 8 healthy values;
* latency: a pool per set in its AWS region and a ``latency`` rule over them
  (which answers as ``nearest`` until latency measurements arrive);
* geolocation: a ``geos`` rule per location, most specific first, the
  default location (``*``) last; each pool falls back to the default;
* geoproximity: a ``nearest`` rule with the sets' regions or coordinates and
  their bias.

Names are absolute with or without the trailing dot, and Route 53 writes
characters outside letters, digits, ``-`` and ``_`` as octal escapes
(``\\052`` is ``*``, ``\\043`` is ``#``). Aliases to names in the zone become
ALIAS records (or a CNAME where the target has no address of its own),
aliases to names elsewhere (CloudFront, load balancers) ALIAS records with an
external target. Health checks come from ``list-health-checks`` JSON.
"""

from __future__ import annotations

import pathlib
import re
from collections import defaultdict
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from geostream_dns.config.document import APEX, Document
from geostream_dns.config.importers.aws import Checks, name_of, read, record_sets
from geostream_dns.config.importers.aws import health_checks as read_checks
from geostream_dns.config.importers.draft import (
    ConvertError,
    Imported,
    RecordKey,
    ZoneDraft,
    key_of,
    soa_document,
)
from geostream_dns.config.importers.places import AWS_REGIONS, CONTINENT_OF, aws_region
from geostream_dns.config.values import rdata_value
from geostream_dns.core.model import ROUTABLE_TYPES

POLICY_KEYS = ("Failover", "Weight", "Region", "GeoLocation", "GeoProximityLocation",
               "MultiValueAnswer", "CidrRoutingConfig")
BIAS_KM = 50  # km of distance that one unit of Route 53 geoproximity bias is taken to be
LATENCY_AS = "latency"  # the rule Route 53 latency records become


def import_route53(path: pathlib.Path, zone: str | None = None,
                   nameservers: list[str] | None = None, text: str | None = None,
                   health_checks: pathlib.Path | None = None) -> Imported:
    """Convert one ``list-resource-record-sets`` export (``--health-checks``: the
    ``list-health-checks`` export its record sets refer to)."""
    text = text if text is not None else read(path)
    sets = record_sets(text)
    soa = next((s for _, s in sets if s.get("Type") == "SOA"), None)
    if zone is None:
        if soa is None:
            raise ConvertError("no SOA record: give the zone's name with --zone NAME")
        zone = str(soa.get("Name", ""))
    origin = name_of(zone)
    draft = ZoneDraft(origin, str(path))
    checks = read_checks(health_checks) if health_checks is not None else None
    groups: dict[tuple[dns.name.Name, str], list[tuple[int, Document]]] = defaultdict(list)
    for line, rrset in sets:
        try:
            name = name_of(str(rrset["Name"]))
            rtype = str(rrset["Type"]).upper()
        except (KeyError, ConvertError) as exc:
            draft.warn(line, f"record set skipped: no usable Name or Type ({exc})")
            continue
        groups[(name, rtype)].append((line, rrset))
    converter = _Converter(draft, groups, checks)
    converter.run()
    return Imported(draft.document(nameservers), draft.warnings, draft.lines)


Group = list[tuple[int, Document]]


class _Converter:
    def __init__(self, draft: ZoneDraft,
                 groups: dict[tuple[dns.name.Name, str], Group],
                 checks: Checks | None) -> None:
        self.draft = draft
        self.groups = groups
        self.checks = checks

    def run(self) -> None:
        draft = self.draft
        for (name, rtype), group in self.groups.items():
            owner = name.to_text()
            label = draft.label(name)
            line = group[0][0]
            if label is None:
                draft.warn(line, f"{owner} {rtype} skipped: outside the zone "
                                 f"{draft.origin_text}", self._keys(owner, rtype, group))
            elif rtype == "SOA" and label == APEX:
                self._soa(group)
            elif any("SetIdentifier" in s for _, s in group):
                self._policy(name, label, rtype, group)
            elif any("AliasTarget" in s for _, s in group):
                self._alias(name, label, rtype, line, group[0][1])
            else:
                self._plain(name, rtype, group)

    # -- plain record sets ----------------------------------------------------

    def _rdatas(self, owner: str, rtype: str, line: int,
                rrset: Document) -> list[dns.rdata.Rdata]:
        out: list[dns.rdata.Rdata] = []
        records = rrset.get("ResourceRecords")
        if not records:
            policy = rrset.get("TrafficPolicyInstanceId")
            why = (f"created by traffic policy instance {policy}; the export holds no values"
                   if policy else "no values")
            self.draft.warn(line, f"{owner} {rtype} skipped: {why}",
                            ((owner, rtype, f"traffic policy {policy}"),))
            return out
        for record in records:
            value = str(record.get("Value", ""))
            try:
                out.append(dns.rdata.from_text(dns.rdataclass.IN, rtype, value,
                                               origin=dns.name.root, relativize=False))
            except (dns.exception.DNSException, ValueError) as exc:
                self.draft.warn(line, f"{owner} {rtype} record skipped: cannot read "
                                      f"{value!r} ({exc})", ((owner, rtype, value),))
        return out

    def _keys(self, owner: str, rtype: str, group: Group) -> tuple[RecordKey, ...]:
        keys: list[RecordKey] = []
        for _, rrset in group:
            if "AliasTarget" in rrset:
                keys.append((owner, rtype, "ALIAS " + _target(rrset).to_text()))
            for record in rrset.get("ResourceRecords") or []:
                value = str(record.get("Value", ""))
                try:
                    keys.append(key_of(owner, dns.rdata.from_text(
                        dns.rdataclass.IN, rtype, value, origin=dns.name.root, relativize=False)))
                except (dns.exception.DNSException, ValueError):
                    keys.append((owner, rtype, value))
        return tuple(keys)

    def _soa(self, group: Group) -> None:
        line, rrset = group[0]
        rdatas = self._rdatas(self.draft.origin_text, "SOA", line, rrset)
        if rdatas:
            self.draft.soa, self.draft.soa_line = soa_document(rdatas[0]), line
            self.draft.ttl = int(rrset.get("TTL", 900))

    def _plain(self, name: dns.name.Name, rtype: str, group: Group) -> None:
        line, rrset = group[0]
        rdatas = self._rdatas(name.to_text(), rtype, line, rrset)
        if rdatas:
            self.draft.add_rdatas(name, int(rrset.get("TTL", 300)), rdatas, line)

    # -- aliases -------------------------------------------------------------

    def _alias(self, name: dns.name.Name, label: str, rtype: str, line: int,
               rrset: Document) -> None:
        draft = self.draft
        owner = name.to_text()
        target = self._final_target(_target(rrset), rtype)
        key = ((owner, rtype, "ALIAS " + _target(rrset).to_text()),)
        in_zone = draft.label(target) is not None
        if rtype in ("A", "AAAA"):
            existing = [e for e in draft.records.get(label, []) if e["type"] == "ALIAS"]
            if existing and existing[0]["value"] != target.to_text():
                draft.warn(line, f"{owner} {rtype} alias to {target} skipped: the name already "
                                 f"has an alias to {existing[0]['value']} (one ALIAS answers "
                                 "both A and AAAA)", key)
            elif existing:
                return
            elif in_zone and not self._has_address(target):
                if label == APEX or self._other_types(name) - {"A", "AAAA"}:
                    draft.warn(line, f"{owner} {rtype} alias to {target} skipped: the target has "
                                     "no address of its own and this name cannot hold a CNAME",
                               key)
                else:
                    draft.add_entry(label, {"type": "CNAME", "value": target.to_text()}, line)
            else:
                draft.add_entry(label, {"type": "ALIAS", "value": target.to_text()}, line)
            return
        if rtype == "CNAME" and label != APEX:
            draft.add_entry(label, {"type": "CNAME", "value": target.to_text()}, line)
            return
        draft.warn(line, f"{owner} {rtype} alias to {target} skipped: only A, AAAA and CNAME "
                         "aliases are carried over", key)

    def _final_target(self, target: dns.name.Name, rtype: str) -> dns.name.Name:
        """Follows aliases inside the zone to the name that holds the data."""
        seen = {target}
        while True:
            group = self.groups.get((target, rtype))
            if not group or any("SetIdentifier" in s for _, s in group) or \
                    "AliasTarget" not in group[0][1]:
                return target
            following = _target(group[0][1])
            if following in seen:
                return target
            seen.add(following)
            target = following

    def _other_types(self, name: dns.name.Name) -> set[str]:
        return {rtype for (owner, rtype) in self.groups if owner == name}

    def _has_address(self, target: dns.name.Name) -> bool:
        return any((target, t) in self.groups for t in ("A", "AAAA"))

    # -- routing policies -------------------------------------------------------

    def _policy(self, name: dns.name.Name, label: str, rtype: str, group: Group) -> None:
        draft = self.draft
        owner = name.to_text()
        line = group[0][0]
        keys = self._keys(owner, rtype, group)
        policies = {k for _, s in group for k in POLICY_KEYS if k in s}
        if len(policies) != 1:
            draft.warn(line, f"{owner} {rtype} skipped: its record sets mix routing policies "
                             f"({', '.join(sorted(policies)) or 'none'})", keys)
            return
        policy = policies.pop()
        if policy == "CidrRoutingConfig":
            draft.warn(line, f"{owner} {rtype} skipped: IP-based (CIDR collection) routing needs "
                             "the collection, which this export does not hold; write subnets "
                             "rules", keys)
            return
        written = rtype
        if any("AliasTarget" in s for _, s in group):
            if label == APEX or rtype not in ("A", "AAAA", "CNAME") or \
                    self._other_types(name) - {"A", "AAAA", "CNAME"}:
                self._one_alias(name, label, rtype, policy, group, keys)
                return
            written = "CNAME"
            if draft.has(label, "CNAME"):
                return  # the AAAA twin of routed A aliases already made this CNAME
            draft.warn(line, f"{owner} {rtype}: routed aliases become a routed CNAME to "
                             "their targets")
        if written not in ROUTABLE_TYPES:
            draft.warn(line, f"{owner} {rtype} skipped: routing applies to "
                             f"{', '.join(ROUTABLE_TYPES)} only", keys)
            return
        pools, ttl = self._pools(owner, rtype, written, group)
        if not pools:
            return
        routing = getattr(self, "_" + policy.lower())(owner, rtype, group, pools, line)
        if routing is None:
            return
        draft.add_entry(label, {"type": written, "ttl": ttl, "routing": routing}, line)

    def _one_alias(self, name: dns.name.Name, label: str, rtype: str, policy: str,
                   group: Group, keys: tuple[RecordKey, ...]) -> None:
        """Routed aliases where a CNAME cannot stand (the apex): one ALIAS to the set that
        answers when everything is healthy and nothing else decides (the primary, the
        heaviest, the default location, else the first)."""
        def rank(item: tuple[int, Document]) -> tuple[int, int]:
            rrset = item[1]
            return (int(rrset.get("Failover") == "PRIMARY")
                    + int((rrset.get("GeoLocation") or {}).get("CountryCode") == "*"),
                    int(rrset.get("Weight", 0)))
        aliases = [item for item in group if isinstance(item[1].get("AliasTarget"), dict)]
        if not aliases:
            return
        line, chosen = max(aliases, key=rank)
        target = self._final_target(_target(chosen), rtype)
        owner = name.to_text()
        kept = (owner, rtype, "ALIAS " + _target(chosen).to_text())
        self.draft.warn(group[0][0], f"{owner} {rtype}: routed aliases ({policy}) at a name that "
                                     f"cannot hold a CNAME: only the alias of set "
                                     f"{chosen.get('SetIdentifier')!r} to {target} is kept, "
                                     "without routing", tuple(k for k in keys if k != kept))
        if not self.draft.has(label, "ALIAS"):
            self.draft.add_entry(label, {"type": "ALIAS", "value": target.to_text()}, line)

    def _pools(self, owner: str, rtype: str, written: str,
               group: Group) -> tuple[dict[str, Document], int]:
        pools: dict[str, Document] = {}
        ttls: set[int] = set()
        for line, rrset in group:
            if "SetIdentifier" not in rrset:
                self.draft.warn(line, f"{owner} {rtype}: a record set without SetIdentifier "
                                      "beside routed ones; skipped")
                continue
            pool = _pool_name(str(rrset["SetIdentifier"]), pools)
            check = self._check(owner, rtype, line, rrset) if written != "CNAME" else None
            values: list[Any] = []
            if "AliasTarget" in rrset:
                values.append(self._final_target(_target(rrset), rtype).to_text())
            else:
                values.extend(rdata_value(r) for r in self._rdatas(owner, rtype, line, rrset))
                ttls.add(int(rrset.get("TTL", 300)))
            if not values:
                continue
            items: list[Any] = []
            probed = self.checks.ips.get(check or "") if self.checks is not None else None
            for value in values:
                item: Document = {"value": value}
                if check:
                    item["healthcheck"] = check
                    if probed and probed != value:
                        self.draft.warn(line, f"{owner} {rtype} ({rrset['SetIdentifier']}): "
                                              f"health check {rrset['HealthCheckId']} probes "
                                              f"{probed}; GeoStream probes the value, {value}")
                items.append(item)
            pools[pool] = {"values": items, "_set": rrset, "_line": line}
        ttl = min(ttls) if ttls else 60
        if len(ttls) > 1:
            self.draft.warn(group[0][0], f"{owner} {rtype}: the record sets have different "
                                         f"TTLs ({', '.join(map(str, sorted(ttls)))}); the "
                                         f"lowest ({ttl}) is used")
        return pools, ttl

    def _check(self, owner: str, rtype: str, line: int, rrset: Document) -> str | None:
        ident = rrset.get("HealthCheckId")
        if not ident:
            return None
        if self.checks is None or ident not in self.checks:
            self.draft.warn(line, f"{owner} {rtype} ({rrset['SetIdentifier']}): health check "
                                  f"{ident} not found (give --health-checks FILE from aws "
                                  "route53 list-health-checks); the values are treated as "
                                  "healthy")
            return None
        name = self.checks[ident]
        if name is None or rtype not in ("A", "AAAA"):
            why = (self.checks.unusable[ident][1] if name is None
                   else f"GeoStream checks addresses, not {rtype} values")
            self.draft.warn(line, f"{owner} {rtype} ({rrset['SetIdentifier']}): health check "
                                  f"{ident} not carried over ({why}); the values are treated "
                                  "as healthy")
            return None
        self.draft.healthchecks[name] = self.checks.specs[name]
        return name

    def _failover(self, owner: str, rtype: str, group: Group, pools: dict[str, Document],
                  line: int) -> Document | None:
        by_role = {str(p["_set"].get("Failover", "")).upper(): name for name, p in pools.items()}
        primary, secondary = by_role.get("PRIMARY"), by_role.get("SECONDARY")
        if primary is None and secondary is None:
            self.draft.warn(line, f"{owner} {rtype} skipped: failover record sets without "
                                  "PRIMARY or SECONDARY", self._keys(owner, rtype, group))
            return None
        if primary is None:
            self.draft.warn(line, f"{owner} {rtype}: failover without a PRIMARY record set; "
                                  "the SECONDARY answers")
            primary, secondary = secondary, None
        if primary is not None and secondary is not None:
            pools[primary]["fallback"] = secondary
        return _routing(pools, [{"pool": primary}])

    def _weight(self, owner: str, rtype: str, group: Group, pools: dict[str, Document],
                line: int) -> Document | None:
        weights = {name: int(p["_set"].get("Weight", 0)) for name, p in pools.items()}
        top = max(weights.values())
        scale = 100 / top if top > 100 else 1
        if scale != 1:
            self.draft.warn(line, f"{owner} {rtype}: weights scaled to 1..100 (Route 53 allows "
                                  "0..255)")
        values: list[Any] = []
        for name, pool in pools.items():
            weight = weights[name]
            for item in pool["values"]:
                if weight == 0:
                    item["status"] = "down"
                elif round(weight * scale) > 1:
                    item["weight"] = max(1, round(weight * scale))
                values.append(item)
            if len(pool["values"]) > 1:
                self.draft.warn(pool["_line"], f"{owner} {rtype} ({name}): a weighted set with "
                                               "several values; each value is weighted on its "
                                               "own")
        return {"pools": {"weighted": {"values": values}}, "rules": [{"pool": "weighted"}]}

    def _multivalueanswer(self, owner: str, rtype: str, group: Group,
                          pools: dict[str, Document], line: int) -> Document | None:
        values = [item for pool in pools.values() for item in pool["values"]]
        return {"pools": {"multivalue": {"answer": "multivalue", "values": values}},
                "rules": [{"pool": "multivalue"}]}

    def _region(self, owner: str, rtype: str, group: Group, pools: dict[str, Document],
                line: int) -> Document | None:
        missing = [name for name, pool in pools.items() if "Region" not in pool["_set"]]
        if missing:
            self.draft.warn(line, f"{owner} {rtype} skipped: latency record sets without a "
                                  f"Region ({', '.join(missing)})", self._keys(owner, rtype, group))
            return None
        for pool in pools.values():
            pool["region"] = self._aws_region(str(pool["_set"]["Region"]), pool["_line"])
        return _routing(pools, [{LATENCY_AS: list(pools)}])

    def _aws_region(self, name: str, line: int) -> str:
        region = aws_region(name)
        if region not in AWS_REGIONS:
            self.draft.warn(line, f"unknown AWS region {name!r}: placed at 0, 0; fix its "
                                  "coordinates under regions")
        lat, lon = AWS_REGIONS.get(region, (0.0, 0.0))
        self.draft.regions.setdefault(region, {"lat": lat, "lon": lon})
        return region

    def _geolocation(self, owner: str, rtype: str, group: Group, pools: dict[str, Document],
                     line: int) -> Document | None:
        located: list[tuple[int, str, str]] = []
        default: str | None = None
        for name, pool in pools.items():
            where = pool["_set"].get("GeoLocation") or {}
            code = _geo_code(where)
            if code == "*":
                default = name
            elif code is None:
                self.draft.warn(pool["_line"], f"{owner} {rtype} ({name}): location {where} "
                                               "not understood; the set is skipped",
                                self._keys(owner, rtype, [(pool["_line"], pool["_set"])]))
            else:
                located.append((code.count("-"), code, name))
        rules: list[Document] = [{"geos": [code], "pool": name}
                                 for _, code, name in sorted(located, key=lambda x: -x[0])]
        if default is None:
            first = rules[0]["pool"] if rules else next(iter(pools))
            self.draft.warn(line, f"{owner} {rtype}: no default location (*): clients outside "
                                  f"every location get pool {first} (Route 53 gives them no "
                                  "answer)")
            default = first
        rules.append({"pool": default})
        for _, _, name in located:
            if name != default:
                pools[name]["fallback"] = default
        used = {r["pool"] for r in rules}
        return _routing({k: v for k, v in pools.items() if k in used}, rules)

    def _geoproximitylocation(self, owner: str, rtype: str, group: Group,
                              pools: dict[str, Document], line: int) -> Document | None:
        bias: dict[str, int] = {}
        for name, pool in pools.items():
            where = pool["_set"].get("GeoProximityLocation") or {}
            if "Coordinates" in where:
                lat = float(where["Coordinates"]["Latitude"])
                lon = float(where["Coordinates"]["Longitude"])
                self.draft.regions.setdefault(name, {"lat": lat, "lon": lon})
                pool["region"] = name
            else:
                place = where.get("AWSRegion") or where.get("LocalZoneGroup") or ""
                pool["region"] = self._aws_region(str(place), pool["_line"])
            if where.get("Bias"):
                bias[name] = -int(where["Bias"]) * BIAS_KM
        rule: Document = {"nearest": list(pools)}
        if bias:
            rule["bias"] = bias
            self.draft.warn(line, f"{owner} {rtype}: geoproximity bias becomes distance: each "
                                  f"unit of bias counts as {BIAS_KM} km")
        return _routing(pools, [rule])


def _target(rrset: Document) -> dns.name.Name:
    alias = rrset.get("AliasTarget")
    if not isinstance(alias, dict) or "DNSName" not in alias:
        raise ConvertError(f"{rrset.get('Name', '?')}: AliasTarget without a DNSName")
    return name_of(str(alias["DNSName"]))


def _pool_name(identifier: str, taken: dict[str, Any]) -> str:
    base = re.sub(r"[^a-z0-9_-]+", "-", identifier.lower()).strip("-") or "pool"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _geo_code(where: Document) -> str | None:
    if where.get("CountryCode") == "*":
        return "*"
    if "ContinentCode" in where:
        return str(where["ContinentCode"]).upper()
    country = str(where.get("CountryCode", "")).upper()
    continent = CONTINENT_OF.get(country)
    if continent is None:
        return None
    code = f"{continent}-{country}"
    if where.get("SubdivisionCode"):
        code += f"-{str(where['SubdivisionCode']).upper()}"
    return code


def _routing(pools: dict[str, Document], rules: list[Document]) -> Document:
    clean = {name: {k: v for k, v in pool.items() if not k.startswith("_")}
             for name, pool in pools.items()}
    return {"pools": clean, "rules": rules}
