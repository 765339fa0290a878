"""Validated zones -> canonical zone documents in the zone file shape, and back to YAML.

How this works: a *zone document* is plain data (dicts, lists, strings,
numbers) in exactly the shape a zone file has, written out from a validated
:class:`~geostream_dns.core.model.Zone`, never copied from what an operator
typed. So two files that mean the same thing (``value:`` or ``values: [..]``,
``'@'`` or ``''``, ``5s`` or ``5``, keys in any order) give equal documents,
and ``load_zone_data(zone_document(z))`` gives back a zone whose document is
equal again (the round trip the PostgreSQL store, ``plan``, ``export`` and
saved plans rely on).

Canonical choices: every record set carries its TTL; one value is written as
``value``, several as ``values``; the apex is ``'@'``; map keys (regions,
health checks, pools) are sorted; health checks list every setting; pool
values are a plain string unless they carry a weight, a check or a status;
whole-number floats (coordinates, bias, durations) are written as integers,
durations as ``"5s"``.

A document splits into the zone's *settings* (``ttl``, ``soa``,
``nameservers``, ``regions``, ``healthchecks``) and its *record sets*, keyed
by (absolute owner name, type); each record set entry is the mapping a zone
file holds under its label (``{type, ttl, value(s), routing}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from geostream_dns.config.values import rdata_value
from geostream_dns.core.model import (
    DEFAULT_MIN_SAMPLES,
    GeosRule,
    HealthCheck,
    LatencyRule,
    NearestRule,
    Routing,
    Rule,
    SubnetsRule,
    Zone,
)

APEX = "@"
SETTINGS_KEYS = ("ttl", "soa", "nameservers", "regions", "healthchecks", "dnssec")
DEFAULT_TIMEOUT: float = HealthCheck.__dataclass_fields__["timeout"].default  # type: ignore[assignment]

Document = dict[str, Any]
RecordKey = tuple[str, str]  # (absolute owner name, type)


def zone_document(zone: Zone) -> Document:
    """The canonical document of a validated zone (without its managed serial)."""
    doc: Document = {"zone": zone.origin}
    doc.update(zone_settings(zone))
    records: dict[str, Any] = {}
    for name, entry in sorted(record_entries(zone).items()):
        label = owner_label(name[0], zone.origin)
        if label in records:
            previous = records[label]
            records[label] = [*previous, entry] if isinstance(previous, list) else [previous, entry]
        else:
            records[label] = entry
    doc["records"] = dict(sorted(records.items(), key=lambda item: _label_order(item[0])))
    return doc


def zone_settings(zone: Zone) -> Document:
    soa = zone.soa
    soa_doc: Document = {"primary": soa.primary, "email": soa.email, "refresh": soa.refresh,
                         "retry": soa.retry, "expire": soa.expire,
                         "negative_ttl": soa.negative_ttl}
    if soa.serial is not None:
        soa_doc["serial"] = soa.serial
    settings: Document = {
        "ttl": zone.ttl,
        "soa": soa_doc,
        "nameservers": list(zone.nameservers),
        "regions": {name: {"lat": _number(r.lat), "lon": _number(r.lon)}
                    for name, r in sorted(zone.regions.items())},
        "healthchecks": {name: _healthcheck(c) for name, c in sorted(zone.healthchecks.items())},
    }
    if zone.dnssec is not None:
        settings["dnssec"] = {"algorithm": zone.dnssec.algorithm, "keys": zone.dnssec.keys}
    return settings


def record_entries(zone: Zone) -> dict[RecordKey, Document]:
    """Every record set of the zone as its canonical entry, keyed by (owner, type)."""
    out: dict[RecordKey, Document] = {}
    for rs in zone.rrsets:
        entry: Document = {"type": rs.rtype, "ttl": rs.ttl}
        values: list[Any] = (
            [rs.alias] if rs.alias else [rdata_value(r, rs.rtype) for r in rs.rdatas])
        if len(values) == 1:
            entry["value"] = values[0]
        elif values:
            entry["values"] = values
        if rs.routing is not None:
            entry["routing"] = _routing(rs.routing)
        out[(rs.name, rs.rtype)] = entry
    return out


def split_document(doc: Document) -> tuple[str, Document, dict[RecordKey, Document]]:
    """A canonical document -> (origin, settings, record sets by (owner, type))."""
    origin = str(doc["zone"])
    settings = {key: doc[key] for key in SETTINGS_KEYS if key in doc}
    record_sets: dict[RecordKey, Document] = {}
    for label, spec in (doc.get("records") or {}).items():
        name = owner_name(str(label), origin)
        for entry in spec if isinstance(spec, list) else [spec]:
            record_sets[(name, str(entry.get("type", "")).upper())] = entry
    return origin, settings, record_sets


def join_document(origin: str, settings: Document,
                  record_sets: Iterable[tuple[str, Document]]) -> Document:
    """(origin, settings, (owner, entry) pairs) -> a document in the zone file shape."""
    doc: Document = {"zone": origin}
    doc.update({key: settings[key] for key in SETTINGS_KEYS if key in settings})
    records: dict[str, Any] = {}
    for name, entry in record_sets:
        label = owner_label(name, origin)
        previous = records.get(label)
        if previous is None:
            records[label] = entry
        elif isinstance(previous, list):
            previous.append(entry)
        else:
            records[label] = [previous, entry]
    doc["records"] = records
    return doc


def document_yaml(doc: Document) -> str:
    """A document as zone file text (block style, keys in document order, UTF-8 kept)."""
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)
    return text


def owner_label(name: str, origin: str) -> str:
    """``www.example.com.`` in ``example.com.`` -> ``www``; the apex -> ``@``."""
    if name == origin:
        return APEX
    return name[: -len(origin) - 1]


def owner_name(label: str, origin: str) -> str:
    if label in ("", APEX):
        return origin
    return f"{label.lower()}.{origin}"


def _label_order(label: str) -> tuple[int, tuple[str, ...]]:
    """The apex first, then names in DNS order (by reversed labels)."""
    return (0, ()) if label == APEX else (1, tuple(reversed(label.split("."))))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _duration(seconds: float) -> str | float:
    return f"{int(seconds)}s" if float(seconds).is_integer() else seconds


def _healthcheck(check: HealthCheck) -> Document:
    out: Document = {"protocol": check.protocol, "port": check.port}
    if check.protocol != "tcp":
        out["path"] = check.path
        if check.host is not None:
            out["host"] = check.host
        expect: Document = {"status": list(check.expect_status)}
        if check.expect_body is not None:
            expect["body_contains"] = check.expect_body
        out["expect"] = expect
    out["interval"] = _duration(check.interval)
    # The default timeout, min(2 s, interval), is left implicit.
    if check.timeout != min(DEFAULT_TIMEOUT, check.interval):
        out["timeout"] = _duration(check.timeout)
    out.update(rise=check.rise, fall=check.fall)
    if check.quorum is not None:
        out["quorum"] = check.quorum
    if check.protocol == "https":
        out["verify_tls"] = check.verify_tls
    return out


def _routing(routing: Routing) -> Document:
    pools: Document = {}
    for name, pool in sorted(routing.pools.items()):
        spec: Document = {}
        if pool.region is not None:
            spec["region"] = pool.region
        spec["answer"] = pool.answer
        values: list[Any] = []
        for pv in pool.values:
            value = rdata_value(pv.rdata)
            if pv.weight == 1 and pv.healthcheck is None and pv.status == "obey":
                values.append(value)
                continue
            item: Document = {"value": value}
            if pv.weight != 1:
                item["weight"] = pv.weight
            if pv.healthcheck is not None:
                item["healthcheck"] = pv.healthcheck
            if pv.status != "obey":
                item["status"] = pv.status
            values.append(item)
        spec["values"] = values
        if pool.fallback is not None:
            spec["fallback"] = pool.fallback
        pools[name] = spec
    return {"pools": pools, "rules": [_rule(rule) for rule in routing.rules]}


def _rule(rule: Rule) -> Document:
    if isinstance(rule, GeosRule):
        return {"geos": list(rule.geos), "pool": rule.pool}
    if isinstance(rule, SubnetsRule):
        return {"subnets": [str(net) for net in rule.subnets], "pool": rule.pool}
    if isinstance(rule, NearestRule):
        out: Document = {"nearest": list(rule.pools)}
        if rule.bias:
            out["bias"] = {name: _number(km) for name, km in sorted(rule.bias)}
        return out
    if isinstance(rule, LatencyRule):
        doc: Document = {"latency": list(rule.pools)}
        if rule.bias:
            doc["bias"] = {name: _number(ms) for name, ms in sorted(rule.bias)}
        if rule.min_samples != DEFAULT_MIN_SAMPLES:
            doc["min_samples"] = rule.min_samples
        return doc
    return {"pool": rule.pool}


class _Dumper(yaml.SafeDumper):
    """Block style, except that small mappings of scalars (a plain record, a region, an MX
    value) and short lists of scalars go on one line, as people write them."""


FLOW_WIDTH = 72  # characters a one-line mapping may take


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _flat(value: Any) -> bool:
    return _scalar(value) or (isinstance(value, list) and len(value) <= 8
                              and all(_scalar(v) for v in value))


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = len(data) <= 8 and all(_scalar(v) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict[Any, Any]) -> yaml.Node:
    flow = (bool(data) and all(_flat(v) for v in data.values())
            and len(repr(data)) <= FLOW_WIDTH)
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)
