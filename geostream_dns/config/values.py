"""Record values as written in YAML -> dnspython rdata, one shape per type.

Rdata objects are built from their classes, never by parsing zone-file text, so
a TXT value with quotes or semicolons, or a CAA value with spaces, needs no
escaping in YAML.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.CAA import CAA
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from geostream_dns.config.fields import (
    Checker,
    absolute_name,
    as_int,
    as_map,
    as_str,
    check_keys,
    describe,
    join,
)

IN = dns.rdataclass.IN
TXT_CHUNK = 255  # bytes per character-string (RFC 1035 section 3.3)

# Mapping-valued types and their keys, in the order messages list them.
STRUCTURED = {
    "MX": ("preference", "exchange"),
    "SRV": ("priority", "weight", "port", "target"),
    "CAA": ("flags", "tag", "value"),
}
_NAME_TYPES = {"CNAME": CNAME, "NS": NS, "PTR": PTR}


def txt_chunks(text: str) -> list[bytes]:
    """UTF-8 bytes cut into 255-byte character-strings; ``""`` is one empty string."""
    raw = text.encode()
    return [raw[i : i + TXT_CHUNK] for i in range(0, len(raw), TXT_CHUNK)] or [b""]


def build_rdata(
    ck: Checker, rtype: str, value: Any, line: int, path: str
) -> dns.rdata.Rdata | None:
    """The rdata for one value of ``rtype`` (not ALIAS), or None after a problem."""
    if rtype in STRUCTURED:
        return _structured(ck, rtype, value, line, path)
    if rtype == "A":
        return _address(ck, value, line, path, ipaddress.IPv4Address, "IPv4")
    if rtype == "AAAA":
        return _address(ck, value, line, path, ipaddress.IPv6Address, "IPv6")
    if rtype == "TXT":
        text = as_str(ck, value, line, path, empty=True)
        if text is None:
            return None
        return TXT(IN, dns.rdatatype.TXT, txt_chunks(text))
    name = absolute_name(ck, value, line, path)
    if name is None:
        return None
    cls = _NAME_TYPES[rtype]
    return cls(IN, dns.rdatatype.from_text(rtype), name)


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


def _structured(
    ck: Checker, rtype: str, value: Any, line: int, path: str
) -> dns.rdata.Rdata | None:
    keys = STRUCTURED[rtype]
    if not isinstance(value, dict):
        ck.add(line, path, f"expected a mapping with {', '.join(keys)}, got {describe(value)}")
        return None
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    before = len(ck.problems)
    check_keys(ck, m, path, keys, keys, line)

    def get(key: str) -> tuple[Any, int, str]:
        return m.get(key), m.line_of(key), join(path, key)

    out: dict[str, Any] = {}
    for key in keys:
        if key not in m:
            continue
        v, ln, p = get(key)
        if key in ("exchange", "target"):
            out[key] = absolute_name(ck, v, ln, p, root=True)
        elif key == "flags":
            out[key] = as_int(ck, v, ln, p, 0, 255)
        elif key == "tag":
            tag = as_str(ck, v, ln, p)
            if tag is not None and not (tag.isascii() and tag.isalnum() and len(tag) <= 255):
                ck.add(ln, p, f'"{tag}" is not a CAA tag (letters and digits, like issue)')
                tag = None
            out[key] = tag
        elif key == "value":
            out[key] = as_str(ck, v, ln, p, empty=True)
        else:
            out[key] = as_int(ck, v, ln, p, 0, 65535)
    if len(ck.problems) != before:
        return None
    if rtype == "MX":
        return MX(IN, dns.rdatatype.MX, out["preference"], out["exchange"])
    if rtype == "SRV":
        return SRV(
            IN, dns.rdatatype.SRV, out["priority"], out["weight"], out["port"], out["target"]
        )
    return CAA(IN, dns.rdatatype.CAA, out["flags"], out["tag"].encode(), out["value"].encode())
