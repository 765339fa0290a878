"""The DNS wire format, by hand: header, question, OPT and Client Subnet.

How this works: a query is parsed into a flat `Query` (no per-record object
trees). `parse_query` raises `WireError` for anything malformed; the error says
whether the 12-byte header was readable (`header_ok`), because a readable
header earns FORMERR and an unreadable one is dropped. The resolver
has its own inline fast path for the common query shape and falls back to this
parser for everything else, so both agree by construction: the fast path only
accepts what this parser would produce the same result for.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from geostream_dns.errors import WireError

# Header flags (16-bit word).
QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010

# Response codes.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16  # extended rcode, carried in OPT
BADCOOKIE = 23  # extended rcode (RFC 7873): a fresh server cookie is in the reply

OPT = 41
CO_FLAG = 0x4000  # EDNS header flag after DO: Compact Answers OK (RFC 9824)
OPTION_ECS = 8
CLASS_IN = 1
CLASS_CH = 3

MAX_UDP_PAYLOAD = 1232  # RFC 9715 / DNS flag day 2020
MIN_UDP_PAYLOAD = 512

# Lower-cases ASCII A-Z only, byte for byte, so a wire name keeps its length
# and label structure (used on whole questions; see resolve.py for why the
# type and class bytes are safe).
LOWER = bytes(c + 32 if 65 <= c <= 90 else c for c in range(256))

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_TYPE_CLASS = struct.Struct("!HH")


class MalformedQuery(WireError):
    """Malformed DNS query."""

    def __init__(self, reason: str, header_ok: bool, msg_id: int = 0, flags: int = 0,
                 question: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.header_ok = header_ok
        self.msg_id = msg_id
        self.flags = flags
        self.question = question  # the question's wire bytes when they were readable


# Parsed parts are NamedTuples: immutable like frozen dataclasses, but built
# by C code, which matters on the per-query slow path.
class ClientSubnet(NamedTuple):
    """An EDNS Client Subnet option (RFC 7871)."""

    family: int  # 1 = IPv4, 2 = IPv6
    source_prefix: int
    scope_prefix: int
    address: bytes  # exactly ceil(source_prefix / 8) bytes, as on the wire

    def to_option(self, scope: int) -> bytes:
        """This option as a response carries it, with the given scope prefix."""
        body = struct.pack("!HBB", self.family, self.source_prefix, scope) + self.address
        return struct.pack("!HH", OPTION_ECS, len(body)) + body

    def address_bytes(self) -> bytes:
        """The address padded to its family's full length (4 or 16 bytes)."""
        full = 4 if self.family == 1 else 16
        return self.address + b"\x00" * (full - len(self.address))


class Edns(NamedTuple):
    payload: int  # the client's advertised UDP payload size
    version: int
    do: bool
    ecs: ClientSubnet | None
    options: tuple[tuple[int, bytes], ...]  # every option, in order, as (code, data)
    co: bool = False  # Compact Answers OK (RFC 9824): NXDOMAIN kept with compact denial


class Query(NamedTuple):
    msg_id: int
    flags: int
    qname: bytes  # wire-format name exactly as sent (case preserved)
    qtype: int
    qclass: int
    question: bytes  # the whole question section as sent: qname + type + class
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def key(self) -> bytes:
        """The question lower-cased: the snapshot's answer key."""
        return self.question.translate(LOWER)


def read_name(data: bytes, offset: int) -> tuple[bytes, int]:
    """Read an uncompressed wire name at `offset`; return (name bytes, end offset).

    Compression pointers are refused: a query's question has nothing earlier
    to point at, and OPT's owner must be the root.
    """
    start = offset
    total = 0
    try:
        length = data[offset]
        while length:
            if length > 63:
                raise WireError("compressed or invalid label in name")
            offset += length + 1
            total += length + 1
            if total > 254:
                raise WireError("name longer than 255 octets")
            length = data[offset]
    except IndexError:
        raise WireError("name runs past the end of the message") from None
    offset += 1
    return data[start:offset], offset


def parse_query(data: bytes) -> Query:
    """Parse a query; raise `MalformedQuery` (a `WireError`) when it is not one.

    QR=1 packets raise with ``header_ok=False`` so that they are dropped.
    """
    if len(data) < 12:
        raise MalformedQuery("message shorter than a header", header_ok=False)
    msg_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & QR:
        raise MalformedQuery("QR set in a query", header_ok=False)
    if qdcount != 1:
        raise MalformedQuery(f"QDCOUNT is {qdcount}, not 1", True, msg_id, flags)
    try:
        qname, offset = read_name(data, 12)
    except WireError as exc:
        raise MalformedQuery(str(exc), True, msg_id, flags) from None
    if offset + 4 > len(data):
        raise MalformedQuery("question runs past the end of the message", True, msg_id, flags)
    qtype, qclass = _TYPE_CLASS.unpack_from(data, offset)
    offset += 4
    question = data[12:offset]
    edns: Edns | None = None
    try:
        # Skip answer and authority RRs (a query normally has none).
        for _ in range(ancount + nscount):
            offset = _skip_rr(data, offset)
        for _ in range(arcount):
            rr_start = offset
            name_end = _skip_name(data, offset)
            if name_end + 10 > len(data):
                raise WireError("resource record runs past the end of the message")
            rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, name_end)
            offset = name_end + 10 + rdlen
            if offset > len(data):
                raise WireError("RDATA runs past the end of the message")
            if rtype == OPT:
                if edns is not None:
                    raise WireError("more than one OPT record")
                if name_end - rr_start != 1 or data[rr_start] != 0:
                    raise WireError("OPT owner is not the root")
                edns = _parse_opt(rclass, ttl, data[name_end + 10:offset])
        if offset != len(data):
            raise WireError("trailing bytes after the last record")
    except WireError as exc:
        raise MalformedQuery(str(exc), True, msg_id, flags, question) from None
    return Query(msg_id, flags, qname, qtype, qclass, question, edns)


def _skip_name(data: bytes, offset: int) -> int:
    """Skip a possibly compressed name; return the offset after it."""
    try:
        while True:
            length = data[offset]
            if length == 0:
                return offset + 1
            if length & 0xC0 == 0xC0:
                data[offset + 1]  # the pointer's second byte must exist
                return offset + 2
            if length > 63:
                raise WireError("invalid label type")
            offset += length + 1
    except IndexError:
        raise WireError("name runs past the end of the message") from None


def _skip_rr(data: bytes, offset: int) -> int:
    offset = _skip_name(data, offset)
    if offset + 10 > len(data):
        raise WireError("resource record runs past the end of the message")
    rdlen = struct.unpack_from("!H", data, offset + 8)[0]
    offset += 10 + rdlen
    if offset > len(data):
        raise WireError("RDATA runs past the end of the message")
    return offset


def _parse_opt(payload: int, ttl: int, rdata: bytes) -> Edns:
    version = (ttl >> 16) & 0xFF
    do = bool(ttl & 0x8000)
    co = bool(ttl & CO_FLAG)
    options: list[tuple[int, bytes]] = []
    ecs: ClientSubnet | None = None
    i = 0
    while i < len(rdata):
        if i + 4 > len(rdata):
            raise WireError("truncated EDNS option header")
        code, length = struct.unpack_from("!HH", rdata, i)
        i += 4
        if i + length > len(rdata):
            raise WireError("truncated EDNS option")
        value = rdata[i:i + length]
        i += length
        options.append((code, value))
        if code == OPTION_ECS and version == 0:
            if ecs is not None:
                raise WireError("more than one Client Subnet option")
            ecs = parse_ecs(value)
    return Edns(payload, version, do, ecs, tuple(options), co)


def parse_ecs(value: bytes) -> ClientSubnet:
    """Parse and check an ECS option body (RFC 7871 §6); FORMERR cases raise."""
    if len(value) < 4:
        raise WireError("Client Subnet option shorter than 4 bytes")
    family, source, scope = struct.unpack_from("!HBB", value)
    address = value[4:]
    if family == 1:
        max_prefix = 32
    elif family == 2:
        max_prefix = 128
    else:
        raise WireError(f"Client Subnet family {family} is not IPv4 or IPv6")
    if source > max_prefix:
        raise WireError(f"Client Subnet source prefix {source} exceeds {max_prefix}")
    if scope != 0:
        raise WireError("Client Subnet scope prefix must be 0 in a query")
    if len(address) != (source + 7) // 8:
        raise WireError("Client Subnet address length does not match its source prefix")
    if source % 8 and address and address[-1] & (0xFF >> (source % 8)):
        raise WireError("Client Subnet address has bits set past its source prefix")
    return ClientSubnet(family, source, scope, address)


def opt_record(do: bool, options: bytes = b"", ext_rcode: int = 0, co: bool = False) -> bytes:
    """Our OPT RR: payload 1232, version 0, DO echoed (RFC 3225), CO when the
    answer is a compact denial with its NXDOMAIN restored (RFC 9824)."""
    flags = (0x8000 if do else 0) | (CO_FLAG if co else 0)
    return struct.pack(
        "!BHHBBHH", 0, OPT, MAX_UDP_PAYLOAD, ext_rcode, 0, flags, len(options)
    ) + options


OPT_PLAIN = opt_record(False)
OPT_DO = opt_record(True)


def udp_limit(edns: Edns | None) -> int:
    """The largest UDP reply the client accepts."""
    if edns is None:
        return MIN_UDP_PAYLOAD
    return min(max(edns.payload, MIN_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
