"""BIND zone files (RFC 1035 master files) -> a GeoStream zone.

How this works: ``$INCLUDE`` files are spliced in first, relative to the file
that names them, with ``$ORIGIN`` lines around them so names inside keep
their meaning; a line map remembers which file and line each spliced line
came from. dnspython's zone file reader then does the rest (``$ORIGIN``,
``$TTL``, ``$GENERATE``, relative names, TTL units, inherited owners), with
two changes: a record it cannot read (an obsolete type such as A6, a bad
value) is skipped with a warning instead of failing the file, and every
record keeps the place it was read from, so each warning names its line.
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
import dns.tokenizer
import dns.zonefile

from geostream_dns.config.importers.draft import (
    OBSOLETE,
    ConvertError,
    Imported,
    SourceWarning,
    ZoneDraft,
    key_of,
    soa_document,
)

Where = tuple[str, int]  # (file, line)
_INCLUDE = re.compile(r"^\$INCLUDE\s+(\"[^\"]*\"|\S+)(?:\s+(\S+))?\s*(?:;.*)?$", re.IGNORECASE)
_ORIGIN = re.compile(r"^\$ORIGIN\s+(\S+)\s*(?:;.*)?$", re.IGNORECASE)
_GENERATE = re.compile(r"^\$GENERATE\s+(\d+)-(\d+)(?:/(\d+))?\s", re.IGNORECASE)
# One $GENERATE makes at most this many records: a typo in a range must not
# make the import run for hours or exhaust memory.
MAX_GENERATE = 65_536
MAX_INCLUDE_BYTES = 64 * 1024 * 1024
MAX_INCLUDE_DEPTH = 16


def import_bind(path: pathlib.Path, zone: str | None = None,
                nameservers: list[str] | None = None, text: str | None = None) -> Imported:
    """Convert one BIND zone file (``text`` when given, else read from ``path``)."""
    lines: list[str] = []
    where: list[Where] = []
    first_origin = _splice(path, text, None if zone is None else _name(zone), lines, where, 0)
    origin = _name(zone) if zone is not None else first_origin or _soa_owner(lines)
    if origin is None:
        raise ConvertError("the file has no $ORIGIN line: give the zone's name with --zone NAME")
    if origin == dns.name.root:
        raise ConvertError("the root zone cannot be served: give another zone with --zone NAME")
    draft = ZoneDraft(origin, str(path))
    records = _read(draft, "\n".join(lines) + "\n", origin, where)
    _convert(draft, records)
    return Imported(draft.document(nameservers), draft.warnings, draft.lines)


_SOA_LINE = re.compile(r"^(\S+\.)\s+(?:\S+\s+){0,2}SOA\s", re.IGNORECASE)


def _soa_owner(lines: list[str]) -> dns.name.Name | None:
    """The absolute owner of the first SOA record (a file without $ORIGIN that writes
    its names in full)."""
    for line in lines:
        if (m := _SOA_LINE.match(line)) is not None and m.group(1) != ".":
            try:
                return dns.name.from_text(m.group(1))
            except dns.exception.DNSException:
                return None
    return None


def _name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise ConvertError(f'"{text}" is not a zone name: {exc}') from None


def _splice(path: pathlib.Path, text: str | None, origin: dns.name.Name | None,
            out: list[str], where: list[Where], depth: int) -> dns.name.Name | None:
    """Append the file's lines to ``out`` with its $INCLUDEs spliced in; returns the
    first $ORIGIN seen (the zone's name when none is given)."""
    if text is None:
        try:
            # Only a regular file of sane size: `$INCLUDE /dev/zero` or a FIFO
            # must not hang the import.
            if not path.is_file():
                raise ConvertError(f"{path}: cannot read: not a regular file")
            if path.stat().st_size > MAX_INCLUDE_BYTES:
                raise ConvertError(f"{path}: cannot read: larger than "
                                   f"{MAX_INCLUDE_BYTES // (1024 * 1024)} MiB")
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the name, bad UTF-8
            if isinstance(exc, ConvertError):
                raise
            raise ConvertError(f"{path}: cannot read: {exc}") from None
    first: dns.name.Name | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if (m := _ORIGIN.match(stripped)) is not None:
            try:
                origin = dns.name.from_text(m.group(1), origin)
            except dns.exception.DNSException:
                pass  # the reader reports it
            if origin != dns.name.root:  # `$ORIGIN .` then absolute names: not the zone
                first = first or origin
        elif (m := _INCLUDE.match(stripped)) is not None:
            if depth >= MAX_INCLUDE_DEPTH:
                raise ConvertError(f"{path}:{number}: $INCLUDE nested more than "
                                   f"{MAX_INCLUDE_DEPTH} deep")
            included = path.parent / m.group(1).strip('"')
            try:
                inner = dns.name.from_text(m.group(2), origin) if m.group(2) else origin
            except dns.exception.DNSException as exc:
                raise ConvertError(f"{path}:{number}: $INCLUDE origin "
                                   f"{m.group(2)!r}: {exc}") from None
            if inner is not None:
                out.append(f"$ORIGIN {inner.to_text()}")
                where.append((str(path), number))
            found = _splice(included, None, inner, out, where, depth + 1)
            first = first or found
            if origin is not None:
                out.append(f"$ORIGIN {origin.to_text()}")
                where.append((str(path), number))
            continue
        elif (m := _GENERATE.match(stripped)) is not None:
            start, stop, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            if step > 0 and stop >= start and (stop - start) // step + 1 > MAX_GENERATE:
                raise ConvertError(f"{path}:{number}: $GENERATE {start}-{stop} makes "
                                   f"{(stop - start) // step + 1:,} records, more than "
                                   f"{MAX_GENERATE:,}")
        out.append(line)
        where.append((str(path), number))
    return first


Record = tuple[Where, dns.name.Name, int, dns.rdata.Rdata]


class _Records:
    """The transaction the zone file reader writes to: it only keeps what it is given."""

    def __init__(self, origin: dns.name.Name) -> None:
        self.origin = origin
        self.manager = self
        self.added: list[tuple[dns.name.Name, int, dns.rdata.Rdata]] = []

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return self.origin, False, self.origin

    def check_put_rdataset(self, check: Any) -> None:
        pass  # CNAME beside other data is the zone loader's to report

    def _set_origin(self, origin: dns.name.Name) -> None:
        pass

    def add_unicode(self, value: str) -> None:
        pass

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        self.added.append((name, ttl, rdata))


class _Reader(dns.zonefile.Reader):
    """dnspython's reader, keeping each record's place and skipping what it cannot read."""

    def __init__(self, tok: dns.tokenizer.Tokenizer, records: _Records, draft: ZoneDraft,
                 where: list[Where], lines: list[str]) -> None:
        super().__init__(tok, dns.rdataclass.IN, records,  # type: ignore[arg-type]
                         allow_include=False)
        self.zone_origin = dns.name.root  # every name is kept; the draft warns about strangers
        self.records = records
        self.draft = draft
        self.where = where
        self.lines = lines
        self.located: list[Record] = []

    def place(self, line: int) -> Where:
        return self.where[min(max(line, 1), len(self.where)) - 1]

    def _take(self, line: int) -> None:
        here = self.place(line)
        self.located.extend((here, *added) for added in self.records.added)
        self.records.added.clear()

    def _rr_line(self) -> None:
        line = self.tok.where()[1]
        try:
            super()._rr_line()
        except dns.exception.SyntaxError as exc:
            file, number = self.place(line)
            text = self.lines[min(max(line, 1), len(self.lines)) - 1]
            self.draft.warnings.append(_warning(file, number, str(exc), text))
            if self.tok.where()[1] == line or self.tok.multiline:
                self._eat_line()
        self._take(line)

    def _generate_line(self) -> None:
        line = self.tok.where()[1]
        super()._generate_line()
        self._take(line)


def _warning(file: str, line: int, reason: str, text: str) -> SourceWarning:
    """A record the reader could not read; its key says where it was."""
    reason = reason.removeprefix("caught exception ")
    rtype = _type_in(text)
    if rtype in OBSOLETE:
        message = f"{rtype} record skipped: obsolete type"
    elif reason.startswith("unknown rdatatype") or "generic rdata" in reason:
        message = f"{rtype} record skipped: unknown type (write it as TYPEnnn \\# ... to keep it)"
    else:
        message = f"{rtype} record skipped: cannot read it ({reason})"
    return SourceWarning(file, line, message, (("?", rtype, f"{file}:{line}"),))


def _type_in(text: str) -> str:
    """The record type named on a zone file line (the first word that is a type)."""
    for word in text.split()[1 if text[:1].strip() else 0:]:
        if word.upper() in ("IN", "CH", "HS") or word[:1].isdigit():
            continue
        try:
            dns.rdatatype.from_text(word)
        except dns.rdatatype.UnknownRdatatype:
            return word.upper()
        return word.upper()
    return "?"


def _read(draft: ZoneDraft, text: str, origin: dns.name.Name,
          where: list[Where]) -> list[Record]:
    records = _Records(origin)
    reader = _Reader(dns.tokenizer.Tokenizer(text, draft.file), records, draft, where,
                     text.split("\n"))
    try:
        reader.read()
    except dns.exception.DNSException as exc:
        raise ConvertError(f"not a BIND zone file: {_relocate(str(exc), draft.file, where)}") \
            from None
    return reader.located


def _relocate(message: str, file: str, where: list[Where]) -> str:
    """``FILE:N: reason`` from the reader, N being a spliced line -> the real place."""
    head, sep, rest = message.partition(": ")
    name, _, number = head.rpartition(":")
    if sep and name == file and number.isdigit():
        real = where[min(max(int(number), 1), len(where)) - 1]
        return f"{real[0]}:{real[1]}: {rest}"
    return message


def _convert(draft: ZoneDraft, records: list[Record]) -> None:
    rrsets: dict[tuple[dns.name.Name, int], list[Record]] = defaultdict(list)
    for record in records:
        _, name, _, rdata = record
        rrsets[(name, rdata.rdtype)].append(record)
    soa = rrsets.pop((draft.origin, dns.rdatatype.SOA), None)
    if soa:
        (file, line), _, ttl, rdata = soa[0]
        draft.ttl, draft.soa, draft.soa_line = ttl, soa_document(rdata), line
        for (f, ln), name, _, extra in soa[1:]:
            draft.warn(ln, "a second SOA record skipped", (key_of(name.to_text(), extra),), f)
    else:
        draft.warn(1, "the file has no SOA record at the zone apex: a default SOA is used")
    for (name, _), group in rrsets.items():
        file, line = group[0][0]
        ttls = {ttl for _, _, ttl, _ in group}
        rdatas: list[dns.rdata.Rdata] = []
        for _, _, _, rdata in group:
            if rdata not in rdatas:
                rdatas.append(rdata)
        ttl = min(ttls)
        if len(ttls) > 1:
            draft.warn(line, f"{name} {dns.rdatatype.to_text(rdatas[0].rdtype)}: the records "
                             f"have different TTLs ({', '.join(map(str, sorted(ttls)))}); one "
                             f"record set has one TTL, the lowest ({ttl}) is used", file=file)
        draft.add_rdatas(name, ttl, rdatas, line, file)
