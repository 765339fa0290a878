"""Mapping-valued record types: their fields, as octoDNS names them, <-> rdata.

How this works: ``STRUCTURED`` lists each type's fields in the order
messages name them, each with the kind of value it takes (a 16-bit number,
an absolute name, hex, ...). ``build_structured`` checks a mapping against
that list, collecting a located problem per bad field, and only then builds
the dnspython rdata; ``structured_value`` reads the same fields back out of
rdata, so a value written out reads in again as the same rdata.

LOC keeps octoDNS's fields (degrees, minutes, seconds and a direction per
coordinate; altitude, size and precisions in metres). SVCB and HTTPS take
``svcpriority``, ``targetname`` and ``svcparams``: a mapping of parameter
names (``alpn``, ``port``, ``ipv4hint``, ``ech``, ``keyNNN``...) to a value,
a list of values (``alpn``, ``ipv4hint``, ``ipv6hint``, ``mandatory``) or
nothing (``no-default-alpn``).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase as svcb
from dns.rdtypes.ANY.CAA import CAA
from dns.rdtypes.ANY.DS import DS
from dns.rdtypes.ANY.LOC import LOC
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.SMIMEA import SMIMEA
from dns.rdtypes.ANY.SSHFP import SSHFP
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.URI import URI
from dns.rdtypes.IN.HTTPS import HTTPS
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV
from dns.rdtypes.IN.SVCB import SVCB

from geostream_dns.config.fields import (
    Checker,
    absolute_name,
    as_int,
    as_map,
    as_number,
    as_str,
    check_keys,
    choice,
    describe,
    join,
)

IN = dns.rdataclass.IN


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # a key of _READERS
    default: Any = None  # None: required


def _fields(*specs: tuple[str, str] | tuple[str, str, Any]) -> tuple[Field, ...]:
    return tuple(Field(*spec) for spec in specs)


_TLSA = _fields(("certificate_usage", "u8"), ("selector", "u8"), ("matching_type", "u8"),
                ("certificate_association_data", "hex"))
_SVCB = _fields(("svcpriority", "u16"), ("targetname", "target"), ("svcparams", "svcparams", {}))
_LOC = _fields(
    ("lat_degrees", "lat"), ("lat_minutes", "minutes", 0), ("lat_seconds", "seconds", 0),
    ("lat_direction", "ns"), ("long_degrees", "long"), ("long_minutes", "minutes", 0),
    ("long_seconds", "seconds", 0), ("long_direction", "ew"), ("altitude", "altitude", 0),
    ("size", "metres", 1), ("precision_horz", "metres", 10000), ("precision_vert", "metres", 10),
)

STRUCTURED: dict[str, tuple[Field, ...]] = {
    "MX": _fields(("preference", "u16"), ("exchange", "target")),
    "SRV": _fields(("priority", "u16"), ("weight", "u16"), ("port", "u16"), ("target", "target")),
    "CAA": _fields(("flags", "u8", 0), ("tag", "caa_tag"), ("value", "text")),
    "SSHFP": _fields(("algorithm", "u8"), ("fingerprint_type", "u8"), ("fingerprint", "hex")),
    "TLSA": _TLSA,
    "SMIMEA": _TLSA,
    "NAPTR": _fields(("order", "u16"), ("preference", "u16"), ("flags", "string"),
                     ("service", "string"), ("regexp", "string"), ("replacement", "target")),
    "DS": _fields(("key_tag", "u16"), ("algorithm", "u8"), ("digest_type", "u8"),
                  ("digest", "hex")),
    "URI": _fields(("priority", "u16"), ("weight", "u16"), ("target", "uri")),
    "LOC": _LOC,
    "SVCB": _SVCB,
    "HTTPS": _SVCB,
}

Reader = Callable[[Checker, Any, int, str], Any]
SVC_PARAMS = tuple(svcb.key_to_text(k) for k in svcb.ParamKey)
_SVC_KEY = re.compile(r"^key(0|[1-9][0-9]{0,4})$")


def _hex(ck: Checker, value: Any, line: int, path: str) -> bytes | None:
    text = as_str(ck, value, line, path)
    if text is None:
        return None
    try:
        return binascii.unhexlify(text.replace(" ", ""))
    except (binascii.Error, ValueError):
        ck.add(line, path, f'"{text}" is not hexadecimal (an even number of 0-9, a-f)')
        return None


def _caa_tag(ck: Checker, value: Any, line: int, path: str) -> str | None:
    tag = as_str(ck, value, line, path)
    if tag is not None and not (tag.isascii() and tag.isalnum() and len(tag) <= 255):
        ck.add(line, path, f'"{tag}" is not a CAA tag (letters and digits, like issue)')
        return None
    return tag


def _string(ck: Checker, value: Any, line: int, path: str) -> str | None:
    """A character-string: at most 255 bytes, may be empty."""
    text = as_str(ck, value, line, path, empty=True)
    if text is not None and len(text.encode()) > 255:
        ck.add(line, path, f"at most 255 bytes, got {len(text.encode())}")
        return None
    return text


def _svcparams(ck: Checker, value: Any, line: int, path: str) -> dict[str, str | None] | None:
    """svcparams as presentation values by key (lists joined with commas)."""
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    check_keys(ck, m, path, m.keys())  # duplicates only
    out: dict[str, str | None] = {}
    for key, item in m.items():
        kline, kpath = m.line_of(key), join(path, key)
        if not (key in SVC_PARAMS or (isinstance(key, str) and _SVC_KEY.match(key))):
            ck.add(kline, kpath, f"unknown svcparam {describe(key)} (expected one of "
                                 f"{', '.join(SVC_PARAMS)}, or keyNNN)")
            continue
        if item is None:
            out[str(key)] = None
        elif isinstance(item, list):
            parts = [_svc_item(ck, v, kline, f"{kpath}[{i}]", True) for i, v in enumerate(item)]
            if all(p is not None for p in parts) and parts:
                out[str(key)] = ",".join(p for p in parts if p is not None)
            elif not parts:
                ck.add(kline, kpath, "must not be empty")
        else:
            text = _svc_item(ck, item, kline, kpath, False)
            if text is not None:
                out[str(key)] = text
    return out


def _svc_item(ck: Checker, value: Any, line: int, path: str, listed: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        ck.add(line, path, f"expected a string or a number, got {describe(value)}")
        return None
    text = str(value)
    if listed and ("," in text or "\\" in text):
        ck.add(line, path, f'"{text}": a list item cannot hold "," or "\\"')
        return None
    return text


def _ranged(lo: float, hi: float) -> Reader:
    def read(ck: Checker, value: Any, line: int, path: str) -> float | None:
        return as_number(ck, value, line, path, lo, hi)
    return read


def _ints(lo: int, hi: int) -> Reader:
    def read(ck: Checker, value: Any, line: int, path: str) -> int | None:
        return as_int(ck, value, line, path, lo, hi)
    return read


def _choice(*options: str) -> Reader:
    def read(ck: Checker, value: Any, line: int, path: str) -> str | None:
        return choice(ck, value, line, path, options)
    return read


_READERS: dict[str, Reader] = {
    "u8": _ints(0, 255),
    "u16": _ints(0, 65535),
    "target": lambda ck, v, ln, p: absolute_name(ck, v, ln, p, root=True),
    "hex": _hex,
    "caa_tag": _caa_tag,
    "text": lambda ck, v, ln, p: as_str(ck, v, ln, p, empty=True),
    "uri": lambda ck, v, ln, p: as_str(ck, v, ln, p),
    "string": _string,
    "svcparams": _svcparams,
    "lat": _ints(0, 90),
    "long": _ints(0, 180),
    "minutes": _ints(0, 59),
    "seconds": _ranged(0, 59.999),
    "ns": _choice("N", "S"),
    "ew": _choice("E", "W"),
    "altitude": _ranged(-100000, 42849672.95),
    "metres": _ranged(0, 90000000),
}


def build_structured(
    ck: Checker, rtype: str, value: Any, line: int, path: str
) -> dns.rdata.Rdata | None:
    """The rdata of one mapping value of ``rtype``, or None after recording problems."""
    fields = STRUCTURED[rtype]
    names = [f.name for f in fields]
    required = [f.name for f in fields if f.default is None]
    if not isinstance(value, dict):
        ck.add(line, path, f"expected a mapping with {', '.join(names)}, got {describe(value)}")
        return None
    m = as_map(ck, value, line, path)
    if m is None:
        return None
    before = len(ck.problems)
    check_keys(ck, m, path, names, required, line)
    out: dict[str, Any] = {}
    for f in fields:
        if f.name in m:
            out[f.name] = _READERS[f.kind](ck, m[f.name], m.line_of(f.name), join(path, f.name))
        else:
            out[f.name] = f.default
    if len(ck.problems) != before:
        return None
    try:
        return _construct(rtype, out)
    except (dns.exception.DNSException, ValueError, TypeError) as exc:
        # What only the whole value can tell: a fingerprint's length for its type,
        # a mandatory svcparam that is missing, a latitude past 90 degrees...
        reason = str(exc) or type(exc).__name__
        ck.add(line, path, f"not a valid {rtype} value: {reason[:1].lower()}{reason[1:]}")
        return None


def _construct(rtype: str, v: dict[str, Any]) -> dns.rdata.Rdata:
    t = dns.rdatatype.from_text(rtype)
    if rtype == "MX":
        return MX(IN, t, v["preference"], v["exchange"])
    if rtype == "SRV":
        return SRV(IN, t, v["priority"], v["weight"], v["port"], v["target"])
    if rtype == "CAA":
        return CAA(IN, t, v["flags"], v["tag"].encode(), v["value"].encode())
    if rtype == "SSHFP":
        return SSHFP(IN, t, v["algorithm"], v["fingerprint_type"], v["fingerprint"])
    if rtype in ("TLSA", "SMIMEA"):
        tlsa = TLSA if rtype == "TLSA" else SMIMEA
        return tlsa(IN, t, v["certificate_usage"], v["selector"], v["matching_type"],
                   v["certificate_association_data"])
    if rtype == "NAPTR":
        return NAPTR(IN, t, v["order"], v["preference"], v["flags"].encode(),
                     v["service"].encode(), v["regexp"].encode(), v["replacement"])
    if rtype == "DS":
        return DS(IN, t, v["key_tag"], v["algorithm"], v["digest_type"], v["digest"])
    if rtype == "URI":
        return URI(IN, t, v["priority"], v["weight"], v["target"].encode())
    if rtype == "LOC":
        return LOC(IN, t, _coordinate(v, "lat", "S"), _coordinate(v, "long", "W"),
                   round(v["altitude"] * 100), round(v["size"] * 100),
                   round(v["precision_horz"] * 100), round(v["precision_vert"] * 100))
    params: dict[Any, Any] = {}
    for key, text in v["svcparams"].items():
        svcb._validate_and_define(params, key, text)
    svcb_type = SVCB if rtype == "SVCB" else HTTPS
    return svcb_type(IN, t, v["svcpriority"], v["targetname"], params)


def _coordinate(v: dict[str, Any], axis: str, negative: str) -> tuple[int, int, int, int, int]:
    millis = round(v[f"{axis}_seconds"] * 1000)
    sign = -1 if v[f"{axis}_direction"] == negative else 1
    return (v[f"{axis}_degrees"], v[f"{axis}_minutes"], millis // 1000, millis % 1000, sign)


def structured_value(rtype: str, rdata: dns.rdata.Rdata) -> dict[str, Any]:
    """The mapping ``build_structured`` reads back as ``rdata``, every field written."""
    r: Any = rdata
    if rtype == "MX":
        return {"preference": r.preference, "exchange": r.exchange.to_text()}
    if rtype == "SRV":
        return {"priority": r.priority, "weight": r.weight, "port": r.port,
                "target": r.target.to_text()}
    if rtype == "CAA":
        return {"flags": r.flags, "tag": r.tag.decode(), "value": r.value.decode()}
    if rtype == "SSHFP":
        return {"algorithm": r.algorithm, "fingerprint_type": r.fp_type,
                "fingerprint": r.fingerprint.hex()}
    if rtype in ("TLSA", "SMIMEA"):
        return {"certificate_usage": r.usage, "selector": r.selector,
                "matching_type": r.mtype, "certificate_association_data": r.cert.hex()}
    if rtype == "NAPTR":
        return {"order": r.order, "preference": r.preference, "flags": r.flags.decode(),
                "service": r.service.decode(), "regexp": r.regexp.decode(),
                "replacement": r.replacement.to_text()}
    if rtype == "DS":
        return {"key_tag": r.key_tag, "algorithm": int(r.algorithm),
                "digest_type": int(r.digest_type), "digest": r.digest.hex()}
    if rtype == "URI":
        return {"priority": r.priority, "weight": r.weight, "target": r.target.decode()}
    if rtype == "LOC":
        out: dict[str, Any] = {}
        for axis, (pos, neg), value in (("lat", "NS", r.latitude), ("long", "EW", r.longitude)):
            degrees, minutes, seconds, millis, sign = value
            out.update({f"{axis}_degrees": degrees, f"{axis}_minutes": minutes,
                        f"{axis}_seconds": _number((seconds * 1000 + millis) / 1000),
                        f"{axis}_direction": pos if sign > 0 else neg})
        out.update(altitude=_number(r.altitude / 100), size=_number(r.size / 100),
                   precision_horz=_number(r.horizontal_precision / 100),
                   precision_vert=_number(r.vertical_precision / 100))
        return out
    out = {"svcpriority": r.priority, "targetname": r.target.to_text()}
    if r.params:
        out["svcparams"] = {svcb.key_to_text(k): _svc_value(p) for k, p in sorted(r.params.items())}
    return out


def _svc_value(param: Any) -> Any:
    if param is None:
        return None
    if isinstance(param, svcb.MandatoryParam):
        return [svcb.key_to_text(k) for k in param.keys]
    if isinstance(param, svcb.IPv4HintParam | svcb.IPv6HintParam):
        return list(param.addresses)
    if isinstance(param, svcb._StringList):  # alpn, docpath
        return [i.decode() for i in param.ids]
    if isinstance(param, svcb.PortParam):
        return param.port
    text: str = param.to_text()
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)
