"""Convert other tools' zones to GeoStream zone documents (`geostream-dns import`).

Each converter takes the other format's text and gives a document in the
zone file shape plus warnings for what it could not carry over (record types
GeoStream does not serve, Route 53 routing policies, octoDNS dynamic rules,
aliases to names outside the zone). The caller validates the document with
the zone loader, so nothing invalid is ever written.

* BIND zone files are parsed by dnspython (`$ORIGIN`, `$TTL`, relative names);
* octoDNS zone YAML is already record-for-record our format, less the SOA and
  with `\\;`-escaped TXT values;
* Route 53 `list-resource-record-sets` JSON holds presentation-format values.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import yaml

from geostream_dns.config.document import APEX, Document, owner_label, rdata_value

SERVED = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "PTR")
DEFAULT_SOA = {"refresh": 7200, "retry": 900, "expire": 1209600, "negative_ttl": 300}


class ConvertError(ValueError):
    """The input cannot be read in the format given."""


def _entry(rtype: str, ttl: int | None, values: list[Any]) -> Document:
    entry: Document = {"type": rtype}
    if ttl is not None:
        entry["ttl"] = ttl
    if len(values) == 1:
        entry["value"] = values[0]
    else:
        entry["values"] = values
    return entry


def _add(records: dict[str, Any], label: str, entry: Document) -> None:
    previous = records.get(label)
    if previous is None:
        records[label] = entry
    elif isinstance(previous, list):
        previous.append(entry)
    else:
        records[label] = [previous, entry]


def _document(origin: str, ttl: int, soa: Document, nameservers: list[str],
              records: dict[str, Any]) -> Document:
    return {"zone": origin, "ttl": ttl, "soa": soa, "nameservers": nameservers,
            "records": records}


def _default_soa(origin: str, nameservers: list[str]) -> Document:
    primary = nameservers[0] if nameservers else f"ns1.{origin}"
    return {"primary": primary, "email": f"hostmaster@{origin.rstrip('.')}", **DEFAULT_SOA}


def _email(rname: str) -> str:
    """An SOA RNAME (hostmaster.example.com.) as an address (hostmaster@example.com)."""
    local, _, domain = rname.rstrip(".").replace("\\.", "\0").partition(".")
    return f"{local.replace(chr(0), '.')}@{domain}"


def from_bind(text: str, origin: str | None = None) -> tuple[Document, list[str]]:
    """A BIND (RFC 1035 master file) zone."""
    try:
        zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ConvertError(f"not a BIND zone file: {exc}") from None
    name = zone.origin.to_text().lower()  # type: ignore[union-attr]
    warnings: list[str] = []
    soa_rdataset = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)  # type: ignore[arg-type]
    if soa_rdataset is None:
        raise ConvertError("the zone has no SOA record")
    soa_rdata: Any = soa_rdataset[0]
    ttl = soa_rdataset.ttl
    soa = {"primary": soa_rdata.mname.to_text(), "email": _email(soa_rdata.rname.to_text()),
           "refresh": soa_rdata.refresh, "retry": soa_rdata.retry,
           "expire": soa_rdata.expire, "negative_ttl": soa_rdata.minimum}
    nameservers: list[str] = []
    records: dict[str, Any] = {}
    for owner, node in sorted(zone.nodes.items(), key=lambda item: item[0]):
        owner_text = owner.to_text().lower()
        label = owner_label(owner_text, name)
        for rdataset in node.rdatasets:
            rtype = dns.rdatatype.to_text(rdataset.rdtype)
            if rtype == "SOA":
                continue
            if rtype == "NS" and owner_text == name:
                nameservers = [rd.to_text().lower() for rd in rdataset]  # type: ignore[attr-defined]
                continue
            if rtype not in SERVED:
                warnings.append(f"{owner_text} {rtype}: not served by GeoStream, skipped")
                continue
            values = [rdata_value(rd) for rd in rdataset]
            _add(records, label, _entry(rtype, None if rdataset.ttl == ttl else rdataset.ttl,
                                        values))
    return _document(name, ttl, soa, nameservers, records), warnings


def from_octodns(text: str, origin: str) -> tuple[Document, list[str]]:
    """An octoDNS YAML zone (one file, records by label)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConvertError(f"not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConvertError("an octoDNS zone is a mapping of labels to records")
    name = dns.name.from_text(origin).to_text().lower()
    warnings: list[str] = []
    nameservers: list[str] = []
    records: dict[str, Any] = {}
    ttls: Counter[int] = Counter()
    for label, value in data.items():
        label = APEX if str(label) in ("", APEX) else str(label)
        for record in value if isinstance(value, list) else [value]:
            if not isinstance(record, dict) or "type" not in record:
                warnings.append(f"{label}: not a record, skipped")
                continue
            rtype = str(record["type"]).upper()
            if "dynamic" in record:
                warnings.append(f"{label} {rtype}: octoDNS dynamic rules not converted; the "
                                f"record's own values are kept (add a routing block)")
            values = record.get("values", [record["value"]] if "value" in record else [])
            if rtype == "TXT":
                values = [str(v).replace("\\;", ";") for v in values]
            if rtype == "MX":  # octoDNS's older spelling
                values = [{"preference": v.get("preference", v.get("priority")),
                           "exchange": v.get("exchange", v.get("value"))}
                          if isinstance(v, dict) else v for v in values]
            if rtype == "NS" and label == APEX:
                nameservers = [str(v).lower() for v in values]
                continue
            if rtype not in (*SERVED, "ALIAS"):
                warnings.append(f"{label} {rtype}: not served by GeoStream, skipped")
                continue
            ttl = record.get("ttl")
            if isinstance(ttl, int):
                ttls[ttl] += 1
            _add(records, label, _entry(rtype, ttl if isinstance(ttl, int) else None,
                                        list(values)))
    ttl = ttls.most_common(1)[0][0] if ttls else 3600
    for entries in records.values():  # the common TTL becomes the zone default
        for entry in entries if isinstance(entries, list) else [entries]:
            if entry.get("ttl") == ttl:
                del entry["ttl"]
    return _document(name, ttl, _default_soa(name, nameservers), nameservers,
                     records), warnings


def from_route53(text: str, origin: str | None = None) -> tuple[Document, list[str]]:
    """Route 53 `aws route53 list-resource-record-sets` JSON."""
    try:
        data = json.loads(text)
        sets = data["ResourceRecordSets"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConvertError(f"not list-resource-record-sets JSON: {exc!r}") from None
    soa_set = next((s for s in sets if s.get("Type") == "SOA"), None)
    if origin is None:
        if soa_set is None:
            raise ConvertError("no SOA record: give the zone name with --zone")
        origin = soa_set["Name"]
    name = dns.name.from_text(origin).to_text().lower()
    warnings: list[str] = []
    nameservers: list[str] = []
    records: dict[str, Any] = {}
    soa: Document | None = None
    ttl = 300
    for rrset in sets:
        owner = dns.name.from_text(rrset["Name"].replace("\\052", "*")).to_text().lower()
        rtype = rrset.get("Type", "")
        label = owner_label(owner, name)
        if "SetIdentifier" in rrset:
            warnings.append(f"{owner} {rtype} ({rrset['SetIdentifier']}): Route 53 routing "
                            f"policy not converted, skipped (add a routing block)")
            continue
        if "AliasTarget" in rrset:
            target = dns.name.from_text(rrset["AliasTarget"]["DNSName"]).to_text().lower()
            if rtype in ("A", "AAAA") and (target.endswith("." + name) or target == name):
                # One ALIAS answers both A and AAAA: Route 53 lists one alias per type.
                existing = records.get(label)
                present = existing if isinstance(existing, list) else [existing]
                if not any(e and e.get("type") == "ALIAS" for e in present):
                    _add(records, label, _entry("ALIAS", None, [target]))
            else:
                warnings.append(f"{owner} {rtype}: alias to {target} outside the zone, skipped")
            continue
        try:
            rdatas = [dns.rdata.from_text(dns.rdataclass.IN, rtype, r["Value"])
                      for r in rrset.get("ResourceRecords", [])]
        except (dns.exception.DNSException, KeyError, ValueError) as exc:
            warnings.append(f"{owner} {rtype}: unreadable ({exc}), skipped")
            continue
        if rtype == "SOA":
            s: Any = rdatas[0]
            ttl = int(rrset.get("TTL", ttl))
            soa = {"primary": s.mname.to_text(), "email": _email(s.rname.to_text()),
                   "refresh": s.refresh, "retry": s.retry, "expire": s.expire,
                   "negative_ttl": s.minimum}
            continue
        if rtype == "NS" and owner == name:
            nameservers = [rd.to_text().lower() for rd in rdatas]
            continue
        if rtype not in SERVED:
            warnings.append(f"{owner} {rtype}: not served by GeoStream, skipped")
            continue
        record_ttl = int(rrset["TTL"]) if "TTL" in rrset else None
        _add(records, label, _entry(rtype, record_ttl, [rdata_value(rd) for rd in rdatas]))
    for entries in records.values():  # the SOA's TTL becomes the zone default
        for entry in entries if isinstance(entries, list) else [entries]:
            if entry.get("ttl") == ttl:
                del entry["ttl"]
    return _document(name, ttl, soa or _default_soa(name, nameservers), nameservers,
                     records), warnings
