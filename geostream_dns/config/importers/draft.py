"""The zone an importer builds, record by record, and the warnings it owes.

How this works: an importer reads its source and hands each record set to a
:class:`ZoneDraft` with the place it came from (file and line). The draft
checks every value with the zone format's own validation
(``config.values.build_rdata``), so a value GeoStream cannot hold is skipped
with a warning naming that place instead of failing the whole file, and
keeps what it took. ``document()`` then gives the zone in the zone file shape;
the caller validates it with the zone loader before writing anything.

Every warning says which source records it skipped (``SourceWarning.skipped``,
as ``(owner, type, data)``), so a test can check that each record of a source
was either imported or named in a warning: nothing is lost silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rdata
import dns.rdatatype

from geostream_dns.config.document import APEX, Document
from geostream_dns.config.fields import Checker
from geostream_dns.config.values import build_rdata, rdata_value
from geostream_dns.config.yamlpos import positioned
from geostream_dns.core.model import RECORD_TYPES

RecordKey = tuple[str, str, str]  # (absolute owner, type, data as presentation text)

DEFAULT_SOA = {"refresh": 7200, "retry": 900, "expire": 1209600, "negative_ttl": 300}

# Types a zone cannot hold, and why (skipped with a warning when a source has them).
OBSOLETE = ("A6", "MD", "MF", "MB", "MG", "MR", "MINFO", "NULL", "WKS", "NXT", "SIG", "KEY",
            "GPOS", "NSAP-PTR", "MAILA", "MAILB")
DNSSEC = ("RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY")


class ConvertError(ValueError):
    """The source cannot be read (or lacks what every zone needs)."""


@dataclass(frozen=True)
class SourceWarning:
    """Something the import could not carry over as it was: ``file:line: message``."""

    file: str
    line: int
    message: str
    skipped: tuple[RecordKey, ...] = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass
class Imported:
    """A converted zone: the document (zone file shape) and the warnings."""

    document: Document
    warnings: list[SourceWarning]
    # zone label (and "(soa)", "(nameservers)") -> the source line it came from
    lines: dict[str, int] = field(default_factory=dict)


def key_of(owner: str, rdata: dns.rdata.Rdata) -> RecordKey:
    return (owner, dns.rdatatype.to_text(rdata.rdtype), rdata.to_text())


def zone_type(rdata: dns.rdata.Rdata) -> str | None:
    """The type a zone writes for this rdata (``TYPEnnn`` for a type without a name here),
    or None for a type no zone holds (see :func:`unsupported`)."""
    name = dns.rdatatype.to_text(rdata.rdtype)
    if name in RECORD_TYPES:
        return name
    if name in OBSOLETE or name in DNSSEC or name == "SOA":
        return None
    return f"TYPE{int(rdata.rdtype)}"


def unsupported(rtype: str) -> str:
    """Why records of ``rtype`` are skipped."""
    if rtype in DNSSEC:
        return (f"{rtype} records skipped: signatures and keys are made by the server when the "
                "zone is signed (dnssec:)")
    if rtype in OBSOLETE:
        return f"{rtype} record skipped: obsolete type"
    return f"{rtype} record skipped: GeoStream does not serve this type"


class ZoneDraft:
    """Record sets by zone label, with the zone's settings and the import's warnings."""

    def __init__(self, origin: dns.name.Name, file: str) -> None:
        self.origin = origin
        self.origin_text = origin.to_text().lower()
        self.file = file
        self.records: dict[str, list[Document]] = {}
        self.lines: dict[str, int] = {}
        self.warnings: list[SourceWarning] = []
        self.ttl: int | None = None
        self.soa: Document | None = None
        self.soa_line = 1
        self.nameservers: list[str] = []
        self.nameserver_keys: list[RecordKey] = []
        self.nameserver_line = 1
        self.regions: dict[str, Document] = {}
        self.healthchecks: dict[str, Document] = {}
        # id(entry) -> (owner, line, file, keys) of the record set it came from
        self.sources: dict[int, tuple[str, int, str | None, tuple[RecordKey, ...]]] = {}

    # -- what goes in -------------------------------------------------------

    def warn(self, line: int, message: str, skipped: tuple[RecordKey, ...] = (),
             file: str | None = None) -> None:
        self.warnings.append(SourceWarning(file or self.file, line, message, skipped))

    def label(self, name: dns.name.Name) -> str | None:
        """The zone label of an owner name, or None when it is outside the zone."""
        if not name.is_subdomain(self.origin):
            return None
        return APEX if name == self.origin else name.relativize(self.origin).to_text()

    def has(self, label: str, rtype: str) -> bool:
        return any(e["type"] == rtype for e in self.records.get(label, []))

    def types_at(self, label: str) -> set[str]:
        return {str(e["type"]) for e in self.records.get(label, [])}

    def add_entry(self, label: str, entry: Document, line: int) -> None:
        entries = self.records.setdefault(label, [])
        entries.append(entry)
        self.lines.setdefault(label, line)
        self.lines[f"{label}[{len(entries) - 1}]"] = line

    def add_rdatas(self, name: dns.name.Name, ttl: int, rdatas: list[dns.rdata.Rdata],
                   line: int, file: str | None = None) -> None:
        """One RRset read from a source as dnspython rdata: the apex NS become the
        nameservers, and each value that a zone can hold is kept (else warned about)."""
        owner = name.to_text().lower()
        keys = tuple(key_of(owner, r) for r in rdatas)
        label = self.label(name)
        rtype = dns.rdatatype.to_text(rdatas[0].rdtype)
        if label is None:
            self.warn(line, f"{owner} {rtype} skipped: outside the zone {self.origin_text}", keys,
                      file)
            return
        written = zone_type(rdatas[0])
        if written is None:
            self.warn(line, f"{owner} {unsupported(rtype)}", keys, file)
            return
        if written == "NS" and label == APEX:
            self.nameservers = [r.to_text().lower() for r in rdatas]
            self.nameserver_keys, self.nameserver_line = list(keys), line
            return
        values: list[Any] = []
        for rdata, key in zip(rdatas, keys, strict=True):
            try:
                values.append(rdata_value(rdata, written))
            except UnicodeDecodeError:
                self.warn(line, f"{owner} {rtype} record skipped: its text is not UTF-8", (key,),
                          file)
        self.add_values(label, owner, written, ttl, values, line, keys, file)

    def add_values(self, label: str, owner: str, rtype: str, ttl: int | None,
                   values: list[Any], line: int, keys: tuple[RecordKey, ...] = (),
                   file: str | None = None) -> None:
        """A record set in the zone format; values the format refuses are warned about."""
        ck = Checker(self.file)
        kept: list[Any] = []
        for i, value in enumerate(values):
            before = len(ck.problems)
            if build_rdata(ck, rtype, positioned(value, line), line, "value") is None:
                key = keys[i:i + 1] if len(keys) == len(values) else ()
                why = "; ".join(f"{p.path}: {p.message}" if p.path != "value" else p.message
                                for p in ck.problems[before:])
                self.warn(line, f"{owner} {rtype} record skipped: {why}", key, file)
                continue
            if value not in kept:
                kept.append(value)
        if not kept:
            return
        entry: Document = {"type": rtype}
        if ttl is not None:
            entry["ttl"] = ttl
        entry.update(one_or_many(kept))
        self.add_entry(label, entry, line)
        self.sources[id(entry)] = (owner, line, file, keys)

    # -- what comes out -----------------------------------------------------

    def document(self, nameservers: list[str] | None = None) -> Document:
        """The zone in the zone file shape; ``nameservers`` (from the command line)
        replaces or supplies the apex NS set."""
        if nameservers:
            given = [absolute(n) for n in nameservers]
            if self.nameservers and set(given) != set(self.nameservers):
                self.warn(self.nameserver_line, "the apex NS records of the source are replaced "
                          f"by --nameservers ({', '.join(given)})", tuple(self.nameserver_keys))
            self.nameservers = given
        if not self.nameservers:
            raise ConvertError("the source has no apex NS records: give the zone's name servers "
                               "with --nameservers NAME[,NAME...]")
        self._drop_misplaced_ds()
        ttl = self.ttl if self.ttl is not None else self._common_ttl()
        for entries in self.records.values():
            for entry in entries:
                if entry.get("ttl") == ttl:
                    del entry["ttl"]
        self.lines["(nameservers)"] = self.nameserver_line
        self.lines["(soa)"] = self.soa_line
        soa = self.soa or {"primary": self.nameservers[0],
                           "email": f"hostmaster@{self.origin_text.rstrip('.')}", **DEFAULT_SOA}
        doc: Document = {"zone": self.origin_text, "ttl": ttl, "soa": soa,
                         "nameservers": self.nameservers}
        if self.regions:
            doc["regions"] = self.regions
        if self.healthchecks:
            doc["healthchecks"] = self.healthchecks
        doc["records"] = {label: entries[0] if len(entries) == 1 else entries
                          for label, entries in self.records.items()}
        return doc

    def _drop_misplaced_ds(self) -> None:
        """DS records belong at a delegation; elsewhere (BIND keeps them) they are skipped."""
        for label, entries in list(self.records.items()):
            if label != APEX and any(e["type"] == "NS" for e in entries):
                continue
            for entry in [e for e in entries if e["type"] == "DS"]:
                owner, line, file, keys = self.sources.get(id(entry), (label, 1, None, ()))
                self.warn(line, f"{owner} DS records skipped: a DS record belongs at a "
                                "delegation (a name with NS records below the apex)", keys, file)
                entries.remove(entry)
            if not entries:
                del self.records[label]

    def _common_ttl(self) -> int:
        ttls = Counter(e["ttl"] for es in self.records.values() for e in es if "ttl" in e)
        return ttls.most_common(1)[0][0] if ttls else 3600


def one_or_many(values: list[Any]) -> Document:
    return {"value": values[0]} if len(values) == 1 else {"values": values}


def absolute(name: str) -> str:
    return name.lower() if name.endswith(".") else name.lower() + "."


def soa_document(rdata: Any) -> Document:
    """An SOA rdata as the ``soa`` block, the source's serial kept."""
    return {"primary": rdata.mname.to_text().lower(), "email": email(rdata.rname.to_text()),
            "refresh": rdata.refresh, "retry": rdata.retry, "expire": rdata.expire,
            "negative_ttl": rdata.minimum, **({"serial": rdata.serial} if rdata.serial else {})}


def email(rname: str) -> str:
    """An SOA RNAME (``host\\.master.example.com.``) as an address (host.master@example.com)."""
    local, _, domain = rname.rstrip(".").replace("\\.", "\0").partition(".")
    return f"{local.replace(chr(0), '.')}@{domain}".lower()
