"""Record values as written in YAML <-> dnspython rdata, one shape per type.

How this works: every type has one shape. Addresses and names are strings;
TXT and SPF are a string or a list of strings; the types octoDNS knows take a
mapping with octoDNS's field names (``config.rdata_fields`` lists them);
CERT, HINFO and RP are their presentation text, as a zone file writes it; a
type without a name is ``TYPEnnn`` with RFC 3597 generic data (``\\# 4
c0000201``). ``build_rdata`` turns a value into rdata (or records a located
problem) and ``rdata_value`` is its inverse, so a validated zone written back
out (``config.document``) reads in again as the same rdata.

Rdata objects are built from their classes, never by parsing zone-file text
(presentation-text types aside), so a TXT value with quotes or semicolons,
or a CAA value with spaces, needs no escaping in YAML.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SPF import SPF
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from geostream_dns.config.fields import (
    Checker,
    absolute_name,
    as_list,
    as_str,
    describe,
    index,
)
from geostream_dns.config.rdata_fields import STRUCTURED, build_structured, structured_value

IN = dns.rdataclass.IN
TXT_CHUNK = 255  # bytes per character-string (RFC 1035 section 3.3)

_NAME_TYPES = {"CNAME": CNAME, "NS": NS, "PTR": PTR}
_STRINGS_TYPES = {"TXT": TXT, "SPF": SPF}
# Types written as their presentation text (octoDNS has no fields for them).
PRESENTATION_TYPES = ("CERT", "HINFO", "RP", "OPENPGPKEY")


def txt_chunks(text: str) -> list[bytes]:
    """UTF-8 bytes cut into 255-byte character-strings; ``""`` is one empty string."""
    raw = text.encode()
    return [raw[i : i + TXT_CHUNK] for i in range(0, len(raw), TXT_CHUNK)] or [b""]


def is_generic_type(rtype: str) -> bool:
    """True for ``TYPEnnn`` (a type written by number, RFC 3597)."""
    return rtype.startswith("TYPE") and rtype[4:].isdigit()


def build_rdata(
    ck: Checker, rtype: str, value: Any, line: int, path: str
) -> dns.rdata.Rdata | None:
    """The rdata for one value of ``rtype`` (not ALIAS), or None after a problem."""
    if rtype in STRUCTURED:
        return build_structured(ck, rtype, value, line, path)
    if rtype == "A":
        return _address(ck, value, line, path, ipaddress.IPv4Address, "IPv4")
    if rtype == "AAAA":
        return _address(ck, value, line, path, ipaddress.IPv6Address, "IPv6")
    if rtype in _STRINGS_TYPES:
        return _strings(ck, rtype, value, line, path)
    if rtype in PRESENTATION_TYPES or is_generic_type(rtype):
        return _presentation(ck, rtype, value, line, path)
    name = absolute_name(ck, value, line, path)
    if name is None:
        return None
    cls = _NAME_TYPES[rtype]
    return cls(IN, dns.rdatatype.from_text(rtype), name)


def rdata_value(rdata: dns.rdata.Rdata, rtype: str | None = None) -> Any:
    """One rdata as its zone file value (the inverse of :func:`build_rdata`); ``rtype``
    is the type as the zone writes it (``TYPE49`` for a type written by number)."""
    rtype = rtype or dns.rdatatype.to_text(rdata.rdtype)
    r: Any = rdata
    if rtype in STRUCTURED:
        return structured_value(rtype, rdata)
    if rtype in ("A", "AAAA"):
        return r.address
    if rtype in _STRINGS_TYPES:
        return strings_value(r.strings)
    if is_generic_type(rtype):
        return r.to_generic().to_text()
    if rtype in PRESENTATION_TYPES:
        return r.to_text()
    return r.target.to_text()  # CNAME, NS, PTR


def strings_value(strings: tuple[bytes, ...]) -> str | list[str]:
    """TXT character-strings as written: one string when they are what ``txt_chunks``
    makes of one string (every piece but the last 255 bytes), else the list."""
    if all(len(s) == TXT_CHUNK for s in strings[:-1]):
        return b"".join(strings).decode()
    return [s.decode() for s in strings]


def _strings(
    ck: Checker, rtype: str, value: Any, line: int, path: str
) -> dns.rdata.Rdata | None:
    cls = _STRINGS_TYPES[rtype]
    if isinstance(value, list):
        items = as_list(ck, value, line, path)
        if items is None:
            return None
        strings: list[bytes] = []
        for i, item in enumerate(items):
            ipath, iline = index(path, i), items.lines[i]
            text = as_str(ck, item, iline, ipath, empty=True)
            if text is None:
                continue
            raw = text.encode()
            if len(raw) > TXT_CHUNK:
                ck.add(iline, ipath, f"a string in a list is at most {TXT_CHUNK} bytes, this "
                                     f"one has {len(raw)} (a single string is split for you)")
                continue
            strings.append(raw)
        if len(strings) != len(items):
            return None
        return cls(IN, dns.rdatatype.from_text(rtype), strings)
    if not isinstance(value, str):
        ck.add(line, path, f"expected a string or a list of strings, got {describe(value)}")
        return None
    return cls(IN, dns.rdatatype.from_text(rtype), txt_chunks(value))


def _presentation(
    ck: Checker, rtype: str, value: Any, line: int, path: str
) -> dns.rdata.Rdata | None:
    """CERT, HINFO, RP, OPENPGPKEY and TYPEnnn: the record data as a zone file writes it."""
    text = as_str(ck, value, line, path)
    if text is None:
        return None
    generic = is_generic_type(rtype)
    if generic and not text.lstrip().startswith("\\#"):
        ck.add(line, path, f'expected RFC 3597 generic data like "\\# 4 c0000201", got "{text}"')
        return None
    try:
        rdata = dns.rdata.from_text(IN, dns.rdatatype.from_text(rtype), text)
        rdata.to_wire()  # relative names cannot be rendered
    except dns.name.NeedAbsoluteNameOrOrigin:
        ck.add(line, path, f'"{text}": names must be absolute (end with ".")')
        return None
    except (dns.exception.DNSException, ValueError, TypeError) as exc:
        what = "generic data" if generic else f"{rtype} data"
        ck.add(line, path, f'"{text}" is not valid {what}: {_reason(exc)}')
        return None
    return rdata


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _address(
    ck: Checker,
    value: Any,
    line: int,
    path: str,
    kind: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address],
    family: str,
) -> dns.rdata.Rdata | None:
    if not isinstance(value, str):
        ck.add(line, path, f"expected an {family} address, got {describe(value)}")
        return None
    try:
        address = kind(value)
    except ValueError:
        ck.add(line, path, f'"{value}" is not an {family} address')
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            ck.add(line, path, f'"{value}" has a zone index; DNS cannot carry one')
            return None
        return AAAA(IN, dns.rdatatype.AAAA, address.compressed)
    return A(IN, dns.rdatatype.A, address.compressed)
