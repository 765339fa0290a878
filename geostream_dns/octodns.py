"""An octoDNS provider that syncs zones into GeoStream through its ``/v1`` API.

How this works: ``populate`` reads a zone with ``GET /v1/zones/{zone}`` and
turns each record set into octoDNS records (``routing`` becomes ``dynamic``:
pools, ``geos`` and ``subnets`` rules and a catch-all rule; the apex
``nameservers`` become the root NS record). ``_apply`` builds the whole zone
the plan wants with the octoDNS importer's conversion (the same one
``geostream-dns import octodns`` uses), keeps what octoDNS does not manage
(the SOA and its serial, regions, health checks, record types octoDNS does not
know), and writes it with one ``PUT /v1/zones/{zone}``: the server validates
it as ``check`` does and applies it atomically. A zone the plan deletes every
record of is still PUT (octoDNS never deletes zones).

Configuration (``providers:`` in an octoDNS config)::

    geostream:
      class: geostream_dns.octodns.GeoStreamProvider
      url: http://127.0.0.1:8080          # the server's HTTP endpoint
      token: env/GEOSTREAM_API_TOKEN      # Bearer token for writes
      nameservers: [ns1.example.com.]     # for new zones without a root NS record
      ttl: 3600                           # default TTL of new zones (optional)
      timeout: 10                         # seconds per request (optional)

Requires the ``octodns`` extra (``pip install 'geostream-dns[octodns]'``).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from octodns.provider.base import BaseProvider
from octodns.record import Record

from geostream_dns.config.document import APEX, Document
from geostream_dns.config.importers.draft import ZoneDraft
from geostream_dns.config.importers.octodns import record_into

# The record types both octoDNS and GeoStream know.
SUPPORTED = ("A", "AAAA", "ALIAS", "CAA", "CNAME", "DS", "HTTPS", "LOC", "MX", "NAPTR", "NS",
             "OPENPGPKEY", "PTR", "SPF", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI")


class GeoStreamError(Exception):
    """The GeoStream API refused a request or could not be reached."""


class GeoStreamProvider(BaseProvider):
    SUPPORTS_GEO = False
    SUPPORTS_DYNAMIC = True
    SUPPORTS_POOL_VALUE_STATUS = True
    SUPPORTS_DYNAMIC_SUBNETS = True
    SUPPORTS_MULTIVALUE_PTR = True
    SUPPORTS_ROOT_NS = True
    SUPPORTS = set(SUPPORTED)

    def __init__(self, id: str, url: str, token: str | None = None,
                 nameservers: list[str] | None = None, ttl: int = 3600,
                 timeout: float = 10, *args: Any, **kwargs: Any) -> None:
        self.log = logging.getLogger(f"GeoStreamProvider[{id}]")
        super().__init__(id, *args, **kwargs)
        self.url = url.rstrip("/")
        self.token = token
        self.nameservers = list(nameservers or [])
        self.ttl = ttl
        self.timeout = timeout

    # -- HTTP -------------------------------------------------------------------

    def _request(self, method: str, zone: str, body: Document | None = None) -> Any:
        """One API call; None for a zone the server does not host (GET 404)."""
        url = f"{self.url}/v1/zones/{urllib.parse.quote(zone)}"
        if method == "PUT":
            url += "?force=true"  # octoDNS has applied its own safety thresholds
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method != "GET" and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if method == "GET" and exc.code == 404:
                return None
            detail = exc.read().decode(errors="replace")
            try:
                err = json.loads(detail)
                detail = "; ".join([err.get("error", ""), *err.get("details", [])])
            except (ValueError, AttributeError):
                pass
            raise GeoStreamError(f"{method} {url}: {exc.code} {detail}") from None
        except OSError as exc:
            raise GeoStreamError(f"{method} {url}: {exc}") from None

    # -- reading ------------------------------------------------------------------

    def populate(self, zone: Any, target: bool = False, lenient: bool = False) -> bool:
        self.log.debug("populate: name=%s, target=%s, lenient=%s", zone.name, target, lenient)
        doc = self._request("GET", zone.name)
        if doc is None:
            return False
        ttl = int(doc.get("ttl", self.ttl))
        root = Record.new(zone, "", {"type": "NS", "ttl": ttl, "values": doc["nameservers"]},
                          source=self, lenient=lenient)
        zone.add_record(root, lenient=lenient)
        for label, spec in (doc.get("records") or {}).items():
            for entry in spec if isinstance(spec, list) else [spec]:
                data = octodns_data(entry, doc)
                if data is None:
                    continue
                name = "" if label == APEX else label
                record = Record.new(zone, name, data, source=self, lenient=lenient)
                zone.add_record(record, lenient=lenient, replace=True)
        return True

    # -- writing --------------------------------------------------------------------

    def _apply(self, plan: Any) -> None:
        desired = plan.desired
        existing = self._request("GET", desired.name)
        doc = zone_document_for(desired, existing, self.nameservers, self.ttl, self.log)
        answer = self._request("PUT", desired.name, doc)
        self.log.info("apply: %s: %s (generation %s)", desired.name,
                      (answer or {}).get("summary", "done"), (answer or {}).get("generation"))


def zone_document_for(desired: Any, existing: Document | None, nameservers: list[str],
                      ttl: int, log: logging.Logger) -> Document:
    """The whole zone the plan wants, with what octoDNS does not manage kept."""
    import dns.name

    draft = ZoneDraft(dns.name.from_text(desired.name), f"octodns:{desired.name}")
    draft.ttl = int(existing["ttl"]) if existing else ttl
    for record in sorted(desired.records, key=lambda r: (r.name, r._type)):
        data = {"type": record._type, **_plain(record.data)}
        if record._type == "NS" and record.name == "":
            draft.nameservers = [str(v) for v in data.get("values", [])]
            continue
        label = record.name or APEX
        record_into(draft, label, data, 0)
    if not draft.nameservers:
        draft.nameservers = list(existing["nameservers"]) if existing else list(nameservers)
    for warning in draft.warnings:
        log.warning("%s", warning.message)
    doc = draft.document()
    if existing:
        doc["soa"] = existing["soa"]
        doc["regions"] = {**(existing.get("regions") or {}), **doc.get("regions", {})}
        doc["healthchecks"] = {**(existing.get("healthchecks") or {}),
                               **doc.get("healthchecks", {})}
        if existing.get("dnssec"):  # signing is GeoStream's own: octoDNS never turns it off
            doc["dnssec"] = existing["dnssec"]
        records = doc["records"]
        wanted = {(record.name or APEX, record._type) for record in desired.records}
        for label, spec in (existing.get("records") or {}).items():
            # what octoDNS cannot see (types it does not know, routing it cannot
            # express) stays as it is, unless the plan writes that record set
            kept = [e for e in (spec if isinstance(spec, list) else [spec])
                    if octodns_data(e, existing) is None
                    and (label, e.get("type")) not in wanted]
            if kept:
                mine = records.get(label)
                mine = [] if mine is None else mine if isinstance(mine, list) else [mine]
                records[label] = [*mine, *kept]
    return doc


def _plain(value: Any) -> Any:
    """octoDNS values (dict and str subclasses, immutable mappings) as plain data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def octodns_data(entry: Document, doc: Document) -> Document | None:
    """One record set of a GeoStream zone as octoDNS record data (None: a type or
    routing octoDNS cannot hold; it is left alone)."""
    rtype = str(entry.get("type", ""))
    if rtype not in SUPPORTED:
        return None
    values = entry["values"] if "values" in entry else ([entry["value"]] if "value" in entry
                                                        else [])
    if rtype in ("TXT", "SPF"):
        values = [("".join(v) if isinstance(v, list) else str(v)).replace(";", "\\;")
                  for v in values]
    data: Document = {"type": rtype, "ttl": entry.get("ttl", doc.get("ttl", 3600))}
    routing = entry.get("routing")
    dynamic = _dynamic(routing, doc) if routing else None
    if routing and dynamic is None:
        return None
    if dynamic is not None:
        data["dynamic"], checks = dynamic
        if not values:
            values = _catch_all_values(data["dynamic"])
        if checks:
            data["octodns"] = {"healthcheck": checks}
    if rtype in ("CNAME", "ALIAS"):
        data["value"] = values[0]
    else:
        data["values"] = values
    return data


def _dynamic(routing: Document, doc: Document) -> tuple[Document, Document] | None:
    pools: Document = {}
    checks: set[str] = set()
    for name, pool in routing.get("pools", {}).items():
        if pool.get("answer", "weighted") != "weighted":
            return None  # octoDNS pools answer one value by weight
        values = []
        for item in pool.get("values", []):
            item = item if isinstance(item, dict) else {"value": item}
            value: Document = {"value": item["value"], "weight": item.get("weight", 1)}
            if item.get("status", "obey") != "obey":
                value["status"] = item["status"]
            if item.get("healthcheck"):
                checks.add(item["healthcheck"])
            values.append(value)
        pools[name] = {"values": values}
        if pool.get("fallback"):
            pools[name]["fallback"] = pool["fallback"]
    rules: list[Document] = []
    for rule in routing.get("rules", []):
        if "nearest" in rule:
            return None  # no octoDNS rule picks by distance
        rule = {k: rule[k] for k in ("geos", "subnets", "pool") if k in rule}
        last = rules[-1] if rules else {}
        if last.get("pool") == rule["pool"] and "subnets" in last and "geos" not in last \
                and "geos" in rule:
            last["geos"] = rule["geos"]  # one octoDNS rule, split in two on import
            continue
        rules.append(rule)
    healthcheck: Document = {}
    if len(checks) == 1:
        spec = (doc.get("healthchecks") or {}).get(checks.pop()) or {}
        healthcheck = {"protocol": str(spec.get("protocol", "https")).upper(),
                       "port": spec.get("port", 443)}
        if "path" in spec:
            healthcheck["path"] = spec["path"]
        if "host" in spec:
            healthcheck["host"] = spec["host"]
    return {"pools": pools, "rules": rules}, healthcheck


def _catch_all_values(dynamic: Document) -> list[Any]:
    pool = next((r["pool"] for r in dynamic["rules"] if set(r) == {"pool"}),
                next(iter(dynamic["pools"]), None))
    return [v["value"] for v in dynamic["pools"].get(pool, {}).get("values", [])]
