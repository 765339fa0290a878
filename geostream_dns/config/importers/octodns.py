"""octoDNS YAML zones (``YamlProvider`` files) -> a GeoStream zone.

The record syntax is nearly ours already: the same field names, ``value`` or
``values``, ``dynamic`` pools and rules (renamed ``routing``; a rule with
both ``subnets`` and ``geos`` becomes two rules), legacy ``geo`` (one pool per
geo code, most specific first, the record's values for everyone else).
What differs: TXT values escape ``;`` as ``\\;``; records without a TTL get
the provider's default (3600 unless ``--ttl`` says otherwise); the apex NS set
is often left to the provider (``--nameservers`` supplies it); ``octodns:``
holds provider settings: ``ignored`` records are skipped, a dynamic record's
``healthcheck`` becomes a GeoStream health check on its addresses, and the
rest (provider-specific keys, ``excluded``...) is warned about.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import yaml

from geostream_dns.config.document import APEX, Document
from geostream_dns.config.importers.draft import (
    ConvertError,
    Imported,
    RecordKey,
    ZoneDraft,
    absolute,
)
from geostream_dns.config.values import is_generic_type
from geostream_dns.config.yamlpos import PosDict, PosList, load
from geostream_dns.core.model import RECORD_TYPES, ROUTABLE_TYPES

DEFAULT_TTL = 3600  # octoDNS YamlProvider's default_ttl
RECORD_KEYS = ("type", "ttl", "value", "values", "dynamic", "geo", "octodns")
CHECK_DEFAULTS = {"path": "/_dns", "port": 443, "protocol": "HTTPS"}
_SEMICOLON = re.compile(r"\\;")


def import_octodns(path: pathlib.Path, zone: str | None = None,
                   nameservers: list[str] | None = None, text: str | None = None,
                   ttl: int | None = None) -> Imported:
    """Convert one octoDNS zone file; the zone's name defaults to the file's name."""
    if zone is None:
        stem = path.name.removesuffix(".yaml").removesuffix(".yml").lstrip("$")
        if stem == path.name or not stem:
            raise ConvertError("octoDNS files are named after their zone: give --zone NAME")
        zone = stem
    try:
        origin = dns.name.from_text(zone)
        data = load(text if text is not None else path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f"cannot read: {exc}") from None
    except dns.exception.DNSException as exc:
        raise ConvertError(f'"{zone}" is not a zone name: {exc}') from None
    except yaml.YAMLError as exc:
        raise ConvertError(f"not YAML: {exc}") from None
    if data is None:
        data = PosDict(1)
    if not isinstance(data, PosDict):
        raise ConvertError("an octoDNS zone is a mapping of labels to records")
    draft = ZoneDraft(origin, str(path))
    draft.ttl = ttl if ttl is not None else DEFAULT_TTL
    for label, spec in data.items():
        line = data.line_of(label)
        label = APEX if label in ("", None, APEX) else str(label).lower()
        items = spec if isinstance(spec, PosList) else [spec]
        for i, record in enumerate(items):
            rline = spec.lines[i] if isinstance(spec, PosList) else line
            record_into(draft, label, record, rline)
    return Imported(draft.document(nameservers), draft.warnings, draft.lines)


def _owner(draft: ZoneDraft, label: str) -> str:
    return draft.origin_text if label == APEX else f"{label}.{draft.origin_text}"


def _keys(owner: str, rtype: str, values: list[Any]) -> tuple[RecordKey, ...]:
    return tuple((owner, rtype, str(v)) for v in values)


def record_into(draft: ZoneDraft, label: str, record: Any, line: int) -> None:
    """One octoDNS record (as its YAML data) into the draft, or warnings saying why not."""
    owner = _owner(draft, label)
    if not isinstance(record, dict) or "type" not in record:
        draft.warn(line, f"{owner}: not an octoDNS record (no type), skipped")
        return
    rtype = str(record["type"]).upper()
    values = list(record["values"]) if isinstance(record.get("values"), list) else (
        [record["value"]] if "value" in record else [])
    keys = _keys(owner, rtype, values)
    settings: dict[str, Any] = (
        record["octodns"] if isinstance(record.get("octodns"), dict) else {})
    if settings.get("ignored"):
        draft.warn(line, f"{owner} {rtype} skipped: octodns.ignored is set", keys)
        return
    for key in record:
        if key not in RECORD_KEYS:
            draft.warn(line, f"{owner} {rtype}: unknown key {key!r} ignored")
    for key in settings:
        if key == "ignored" or (key == "healthcheck" and "dynamic" in record
                                and rtype in ("A", "AAAA")):
            continue
        draft.warn(line, f"{owner} {rtype}: octodns.{key} is a provider setting, not carried "
                         "over")
    ttl = record.get("ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)):
        draft.warn(line, f"{owner} {rtype}: ttl {ttl!r} is not a number; the default is used")
        ttl = None
    if rtype == "NS" and label == APEX:
        draft.nameservers = [absolute(str(v)) for v in values]
        draft.nameserver_keys, draft.nameserver_line = list(keys), line
        return
    values, written = _values(draft, owner, rtype, values, line, keys)
    if written is None:
        return
    rtype = written
    if rtype == "ALIAS":
        if values:
            draft.add_entry(label, {"type": "ALIAS", **({"ttl": ttl} if ttl else {}),
                                    "value": absolute(str(values[0]))}, line)
        return
    before = len(draft.records.get(label, []))
    draft.add_values(label, owner, rtype, ttl, values, line, keys)
    entries = draft.records.get(label, [])
    if len(entries) == before:
        return
    entry = entries[-1]
    if "dynamic" in record or "geo" in record:
        routing = _routing(draft, label, owner, rtype, record, line)
        if routing is not None:
            entry["routing"] = routing


def _values(draft: ZoneDraft, owner: str, rtype: str, values: list[Any], line: int,
            keys: tuple[RecordKey, ...]) -> tuple[list[Any], str | None]:
    """octoDNS values -> zone values (and the type a zone writes), or a warning."""
    if rtype in ("TXT", "SPF"):
        return [_SEMICOLON.sub(";", str(v)) for v in values], rtype
    if rtype == "MX":  # octoDNS's older spelling: priority/value
        return [{"preference": v.get("preference", v.get("priority")),
                 "exchange": v.get("exchange", v.get("value"))} if isinstance(v, dict) else v
                for v in values], rtype
    if rtype == "DS":  # octoDNS's older field names
        return [{"key_tag": v["flags"], "algorithm": v["protocol"],
                 "digest_type": v["algorithm"], "digest": v["public_key"]}
                if isinstance(v, dict) and "public_key" in v else v for v in values], rtype
    if rtype in ("CNAME", "NS", "PTR", "ALIAS"):
        return [absolute(str(v)) for v in values], rtype
    if rtype in RECORD_TYPES:
        return [_plain(v) for v in values], rtype
    if rtype == "DNAME":
        out = []
        for v in values:
            try:
                target = dns.name.from_text(absolute(str(v)))
            except dns.exception.DNSException as exc:
                draft.warn(line, f"{owner} DNAME record skipped: {str(v)!r} is not a domain "
                                 f"name ({exc})", keys)
                return [], None
            data = target.to_wire()
            assert data is not None
            out.append(f"\\# {len(data)} {data.hex()}")
        draft.warn(line, f"{owner} DNAME: kept as TYPE39 data; GeoStream does not rewrite "
                         "names below it as a DNAME server would")
        return out, "TYPE39"
    if is_generic_type(rtype):
        return values, rtype
    draft.warn(line, f"{owner} {rtype} record skipped: GeoStream does not serve this type",
               keys)
    return [], None


def _plain(value: Any) -> Any:
    """PosDict/PosList -> dict/list (so values compare and print plainly)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _routing(draft: ZoneDraft, label: str, owner: str, rtype: str, record: Any,
             line: int) -> Document | None:
    if rtype not in ROUTABLE_TYPES:
        draft.warn(line, f"{owner} {rtype}: routing only applies to "
                         f"{', '.join(ROUTABLE_TYPES)}; the record's own values are kept")
        return None
    if "dynamic" in record:
        if "geo" in record:
            draft.warn(line, f"{owner} {rtype}: both dynamic and geo given; geo is ignored")
        return _dynamic(draft, label, owner, rtype, record, line)
    routing = _geo(record["geo"], rtype)
    if routing is None:
        draft.warn(line, f"{owner} {rtype}: geo is not a mapping of codes to lists of "
                         "values; the record's own values are kept")
    return routing


def _value(rtype: str, value: Any) -> Any:
    if rtype in ("CNAME",):
        return absolute(str(value))
    if rtype == "TXT":
        return _SEMICOLON.sub(";", str(value))
    return value


def _dynamic(draft: ZoneDraft, label: str, owner: str, rtype: str, record: Any,
             line: int) -> Document | None:
    dynamic = record["dynamic"]
    if not isinstance(dynamic, dict):
        draft.warn(line, f"{owner} {rtype}: dynamic is not a mapping; not converted")
        return None
    check = _healthcheck(draft, label, owner, rtype, record)
    pools: Document = {}
    written_pools = dynamic.get("pools") or {}
    if not isinstance(written_pools, dict):
        draft.warn(line, f"{owner} {rtype}: dynamic.pools is not a mapping; not converted")
        return None
    for name, pool in written_pools.items():
        spec: Document = {"values": []}
        if pool is not None and not isinstance(pool, dict):
            draft.warn(line, f"{owner} {rtype}: pool {name!r} is not a mapping; not converted")
            return None
        items = (pool or {}).get("values", [])
        if not isinstance(items, list):
            draft.warn(line, f"{owner} {rtype}: pool {name!r} values are not a list; "
                             "not converted")
            return None
        for item in items:
            item = item if isinstance(item, dict) else {"value": item}
            value: Document = {"value": _value(rtype, item.get("value"))}
            if item.get("weight", 1) != 1:
                value["weight"] = item["weight"]
            if item.get("status", "obey") != "obey":
                value["status"] = item["status"]
            if check is not None:
                value["healthcheck"] = check
            spec["values"].append(value)
        if pool is not None and pool.get("fallback"):
            spec["fallback"] = pool["fallback"]
        pools[str(name)] = spec
    rules: list[Document] = []
    written_rules = dynamic.get("rules") or []
    if not isinstance(written_rules, list) or not all(isinstance(r, dict)
                                                      for r in written_rules):
        draft.warn(line, f"{owner} {rtype}: dynamic.rules is not a list of mappings; "
                         "not converted")
        return None
    for rule in written_rules:
        pool = rule.get("pool")
        if rule.get("subnets"):
            rules.append({"subnets": list(rule["subnets"]), "pool": pool})
        if rule.get("geos"):
            rules.append({"geos": list(rule["geos"]), "pool": pool})
        if not rule.get("subnets") and not rule.get("geos"):
            rules.append({"pool": pool})
    return {"pools": pools, "rules": rules}


def _healthcheck(draft: ZoneDraft, label: str, owner: str, rtype: str,
                 record: Any) -> str | None:
    """A dynamic record's ``octodns.healthcheck`` as a health check of the zone (only
    when written: GeoStream probes nothing that the zone does not ask it to)."""
    options = record.get("octodns")
    given = options.get("healthcheck") if isinstance(options, dict) else None
    if rtype not in ("A", "AAAA") or not isinstance(given, dict):
        return None
    settings = {**CHECK_DEFAULTS, **given}
    protocol = str(settings["protocol"]).lower()
    check: Document = {"protocol": protocol, "port": settings["port"]}
    if protocol in ("http", "https"):
        check["path"] = settings["path"]
        check["host"] = str(settings.get("host") or owner).rstrip(".")
    name = "octodns-" + re.sub(r"[^a-z0-9-]+", "-", "apex" if label == APEX else label).strip("-")
    draft.healthchecks.setdefault(name, check)
    return name


def _geo(geo: Any, rtype: str) -> Document | None:
    """Legacy ``geo``: one pool per code; the most specific codes are tried first."""
    if not isinstance(geo, dict) or not geo or not all(isinstance(v, list)
                                                         for v in geo.values()):
        return None
    pools: Document = {}
    rules: list[Document] = []
    for code in sorted(geo, key=lambda c: (-str(c).count("-"), str(c))):
        name = str(code).lower()
        pools[name] = {"answer": "all", "values": [_value(rtype, v) for v in geo[code]]}
        rules.append({"geos": [str(code)], "pool": name})
    return {"pools": pools, "rules": rules}
