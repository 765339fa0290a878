"""Render DNS responses to wire bytes, once, at snapshot build time.

A rendered body is everything after the question section. Because the
response echoes the query's question at offset 12 with the same length,
compression pointers into the question stay valid whatever letter case the
client used, so one rendering serves every query for that name and type.

Each resource record is rendered on its own (`RRChunk`) and only then joined,
so the routing layer can shuffle multivalue answers per query by reordering
chunks: an A/AAAA/TXT record's bytes never depend on the records before it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass

_RR_FIXED = struct.Struct("!HHIH")


@dataclass(frozen=True, slots=True)
class RRs:
    """Records of one RRset, to be rendered with the given owner and TTL."""

    owner: dns.name.Name
    rdtype: int
    ttl: int
    rdatas: tuple[dns.rdata.Rdata, ...]


@dataclass(frozen=True, slots=True)
class Rendered:
    """A response body after the question, with its section counts."""

    body: bytes
    ancount: int
    nscount: int
    arcount: int
    answer_chunks: tuple[bytes, ...]  # the answer section record by record


def render_sections(
    qname: dns.name.Name,
    qtype: int,
    answer: Iterable[RRs],
    authority: Iterable[RRs] = (),
    additional: Iterable[RRs] = (),
    keep_chunks: bool = False,
) -> Rendered:
    """Render the three sections as they follow a question for `qname`;
    `keep_chunks` also keeps the answer section record by record."""
    out = io.BytesIO()
    out.write(b"\x00" * 12)
    compress: dict[dns.name.Name, int] = {}
    qname.to_wire(out, compress)
    out.write(struct.pack("!HH", qtype, dns.rdataclass.IN))
    start = out.tell()
    chunks: list[bytes] = []
    counts = []
    for section_index, section in enumerate((answer, authority, additional)):
        n = 0
        for rrs in section:
            for rdata in rrs.rdatas:
                rr_start = out.tell()
                _write_rr(out, compress, rrs.owner, rrs.rdtype, rrs.ttl, rdata)
                if keep_chunks and section_index == 0:
                    chunks.append(out.getvalue()[rr_start:])
                n += 1
        counts.append(n)
    body = out.getvalue()[start:]
    return Rendered(body, counts[0], counts[1], counts[2], tuple(chunks))


def _write_rr(
    out: io.BytesIO,
    compress: dict[dns.name.Name, int],
    owner: dns.name.Name,
    rdtype: int,
    ttl: int,
    rdata: dns.rdata.Rdata,
) -> None:
    owner.to_wire(out, compress)
    fixed_at = out.tell()
    out.write(_RR_FIXED.pack(rdtype, dns.rdataclass.IN, ttl, 0))
    rdata_start = out.tell()
    rdata.to_wire(out, compress, None)
    rdlen = out.tell() - rdata_start
    out.seek(fixed_at + 8)
    out.write(struct.pack("!H", rdlen))
    out.seek(0, io.SEEK_END)
