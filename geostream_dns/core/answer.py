"""Rendered answers, the entries built on them, and the one reply assembler.

How this works: an `Answer` is a response minus its ID, question and OPT
record, rendered once (when the snapshot is built, or on the first query that
needs it) and shared by every query for that name and type. Every entry the
resolver can look up answers the same few attributes (`flags`, `heads`,
`heads_edns`, `body`, `size`, `outcome`), so one function, `assemble`, turns
any of them into the reply:

* `Answer`: a static answer, for a query without EDNS;
* `Tailored`: an answer as one query shape or client network gets it — found
  by the question and the query's OPT record as sent, it carries the OPT
  record to send (DO echoed, ECS with its scope) and the UDP size limit;
* `Weighted` and `Shuffled` *vary* per query: `vary(rng)` gives this query's
  `Tailored` entry (one value picked by weight, or multivalue records sampled
  and shuffled by reordering pre-rendered record chunks);
* `ByAddress` stands, under a question and OPT record, for a routed name
  asked without ECS: the answer is the source address's entry, the OPT record
  to send is this one's;
* `RoutedName` is a routed (name, type) with what `lookup` found for it.

`assemble` applies the size rule for every path: a UDP reply never exceeds
the client's limit; when the answer does not fit, the reply is the question
alone with TC=1, and the client retries over TCP.
"""

from __future__ import annotations

import random
import struct
from bisect import bisect_right
from typing import TYPE_CHECKING

import dns.name

from geostream_dns.core.dnssec import RRSIG, ZoneFinder, signed_sections
from geostream_dns.core.outcome import Outcome
from geostream_dns.core.render import RRs, render_sections
from geostream_dns.core.wire import AA, CD, QR, RD, TC

if TYPE_CHECKING:
    from geostream_dns.core.lookup import Resolution
    from geostream_dns.core.route.router import Router

_COUNTS = struct.Struct("!HHHH")
_FLAGS = struct.Struct("!H")
_ECHOED = RD | CD  # query flags every reply echoes
_TRUNCATED = _COUNTS.pack(1, 0, 0, 0)
_TRUNCATED_EDNS = _COUNTS.pack(1, 0, 0, 1)
TCP_LIMIT = 0xFFFF  # the size "limit" of a TCP reply: anything that can be framed

# Header bytes 2..11 (flags and counts) for each combination of the query's RD
# and CD bits, indexed by `rd_cd(data)`; interned, since few combinations exist.
Heads = tuple[bytes, bytes, bytes, bytes]
_HEADS: dict[tuple[int, int, int, int, int], Heads] = {}


def heads(flags: int, qdcount: int, ancount: int, nscount: int, arcount: int) -> Heads:
    key = (flags, qdcount, ancount, nscount, arcount)
    found = _HEADS.get(key)
    if found is None:
        counts = _COUNTS.pack(qdcount, ancount, nscount, arcount)
        found = tuple(_FLAGS.pack(flags | (RD if i & 1 else 0) | (CD if i & 2 else 0)) + counts
                      for i in range(4))  # type: ignore[assignment]
        if len(_HEADS) < 100_000:
            _HEADS[key] = found  # type: ignore[assignment]
    return found  # type: ignore[return-value]


def rd_cd(data: bytes) -> int:
    """The index into `Heads` for a query's RD (byte 2, bit 0) and CD (byte 3, 0x10) bits."""
    return data[2] & 1 | data[3] >> 3 & 2


class Answer:
    """A pre-rendered response minus ID, question and OPT.

    `flags` holds QR, AA and the rcode; `heads`/`heads_edns` are the header's
    flags and counts (QD/AN/NS/AR, the latter with one more additional record
    for our OPT) for each combination of the query's RD and CD bits. `chunks`
    keeps the answer section record by record, for routed renderings that vary
    per query.
    """

    __slots__ = ("flags", "heads", "heads_edns", "body", "size", "rcode", "chunks",
                 "ancount", "nscount", "arcount", "zone", "qtype", "outcome", "signed",
                 "sign_later", "after")

    varies = False

    def __init__(self, rcode: int, aa: bool, ancount: int, nscount: int, arcount: int,
                 body: bytes, outcome: Outcome, chunks: tuple[bytes, ...] = (),
                 zone: str = "", qtype: int = 0, extra_flags: int = 0,
                 qdcount: int = 1) -> None:
        self.qtype = qtype
        self.rcode = rcode
        self.flags = QR | (AA if aa else 0) | (rcode & 0xF) | extra_flags
        self.ancount = ancount
        self.nscount = nscount
        self.arcount = arcount
        self.heads = heads(self.flags, qdcount, ancount, nscount, arcount)
        self.heads_edns = heads(self.flags, qdcount, ancount, nscount, arcount + 1)
        self.body = body
        self.size = 12 + len(body)
        self.chunks = chunks
        self.zone = zone
        self.outcome = outcome
        # The DO=1 rendering of a signed zone's answer (RRSIGs, compact denial);
        # `sign_later`: the zone is signed but this rendering is not made yet.
        self.signed: Answer | None = None
        self.sign_later = False
        self.after = 0  # signed routed renderings: RRSIG records after the routed ones


class RoutedName:
    """A routed (name, type): what `lookup` found for it. Its answer depends on the
    client, so the resolver finds it in the per-network memo."""

    __slots__ = ("qname", "resolution", "zone", "router")

    def __init__(self, qname: dns.name.Name, resolution: Resolution, zone: str) -> None:
        self.qname = qname
        self.resolution = resolution
        self.zone = zone
        # The one routed part of the answer (a CNAME chain ends at its routed record).
        self.router: Router = next(part.data.router for part in resolution.answer
                                   if part.data.router is not None)


class Tailored:
    """An answer as one query shape or client network gets it.

    `opt` is the OPT record to send (empty: none) and `limit` the UDP size limit,
    both fixed by the query's own OPT record, which is part of the memo key the
    entry is found by; entries found by source address carry none of their own
    (the query's `ByAddress` entry does)."""

    __slots__ = ("flags", "heads", "heads_edns", "body", "size", "opt", "limit", "outcome",
                 "answer")

    varies = False
    by_address = False

    def __init__(self, answer: Answer, opt: bytes, limit: int, outcome: Outcome,
                 body: bytes | None = None, ancount: int | None = None) -> None:
        self.answer = answer
        self.flags = answer.flags
        if ancount is None or ancount == answer.ancount:
            self.heads, self.heads_edns = answer.heads, answer.heads_edns
        else:
            self.heads = heads(answer.flags, 1, ancount, answer.nscount, answer.arcount)
            self.heads_edns = heads(answer.flags, 1, ancount, answer.nscount,
                                    answer.arcount + 1)
        self.body = answer.body if body is None else body
        self.size = 12 + len(self.body)
        self.opt = opt
        self.limit = limit
        self.outcome = outcome


class ByAddress:
    """Found by question and OPT record for a routed name asked without ECS: the
    answer is the source address's entry; this one holds the OPT to send."""

    __slots__ = ("opt", "limit", "do")

    varies = False
    by_address = True

    def __init__(self, opt: bytes, limit: int, do: bool = False) -> None:
        self.opt = opt
        self.limit = limit
        self.do = do  # the address's entry is found under (question, address, DO)


class Weighted:
    """A weighted pool's answer: one value picked by weight per query. The entry of
    each value is made when that value is first picked."""

    __slots__ = ("answers", "entries", "cumulative", "total", "opt", "limit", "outcome")

    varies = True
    by_address = False

    def __init__(self, answers: tuple[Answer, ...], cumulative: tuple[int, ...],
                 opt: bytes, limit: int, outcome: Outcome) -> None:
        self.answers = answers  # one rendering per healthy value, in written order
        self.entries: list[Tailored | None] = [None] * len(answers)
        self.cumulative = cumulative
        self.total = cumulative[-1]
        self.opt = opt
        self.limit = limit
        self.outcome = outcome

    def vary(self, rng: random.Random) -> Tailored:
        return self.value(bisect_right(self.cumulative, rng.random() * self.total))

    def value(self, index: int) -> Tailored:
        """The entry of the value at `index` (in written order)."""
        if index >= len(self.answers):
            index = len(self.answers) - 1
        entry = self.entries[index]
        if entry is None:
            entry = self.entries[index] = Tailored(self.answers[index], self.opt, self.limit,
                                                   self.outcome)
        return entry


class Shuffled:
    """A multivalue answer: the routed records sampled (up to `most`) and shuffled per
    query. The routed records are the last `count` records of the answer section."""

    __slots__ = ("answer", "count", "most", "opt", "limit", "outcome")

    varies = True
    by_address = False

    def __init__(self, answer: Answer, count: int, most: int, opt: bytes, limit: int,
                 outcome: Outcome) -> None:
        self.answer = answer
        self.count = count
        # A signed answer is shuffled whole: a sample would not match its RRSIG.
        self.most = most if not answer.after else count
        self.opt = opt
        self.limit = limit
        self.outcome = outcome

    def vary(self, rng: random.Random) -> Tailored:
        answer = self.answer
        chunks = answer.chunks
        after = answer.after  # the routed records' RRSIGs stay last
        end = len(chunks) - after
        head, tail = chunks[:end - self.count], list(chunks[end - self.count:end])
        if len(tail) > self.most:
            tail = rng.sample(tail, self.most)
        else:
            rng.shuffle(tail)
        return Tailored(answer, self.opt, self.limit, self.outcome,
                        b"".join(head) + b"".join(tail) + b"".join(chunks[end:]),
                        len(head) + len(tail) + after)


Entry = Answer | Tailored


def render_answer(qname: dns.name.Name, qtype: int, res: Resolution, outcome: Outcome,
                  answer_rrs: list[RRs] | None = None) -> Answer:
    """Render a resolution, with its routed part replaced by `answer_rrs` when given.

    Routed renderings keep their answer records one by one (for multivalue
    shuffles); static ones, by far the most, keep only the joined body.
    """
    routed = answer_rrs is not None
    if answer_rrs is None:
        answer_rrs = [p.static_rrs() for p in res.answer]
    rendered = render_sections(qname, qtype, answer_rrs, res.authority, res.additional,
                               keep_chunks=routed)
    answer = Answer(res.rcode, res.aa, rendered.ancount, rendered.nscount, rendered.arcount,
                    rendered.body, outcome, rendered.answer_chunks, outcome.zone, qtype)
    answer.sign_later = res.zone is not None and res.zone.signer is not None
    return answer


def render_signed(finder: ZoneFinder, qname: dns.name.Name, qtype: int, res: Resolution,
                  outcome: Outcome, answer_rrs: list[RRs] | None = None) -> Answer | None:
    """The DO=1 rendering of a resolution in a signed zone (None: not signed)."""
    routed = answer_rrs is not None
    if answer_rrs is None:
        answer_rrs = [p.static_rrs() for p in res.answer]
    sections = signed_sections(finder, qname, qtype, res, answer_rrs)
    if sections is None:
        return None
    rendered = render_sections(qname, qtype, sections.answer, sections.authority,
                               sections.additional, keep_chunks=routed)
    answer = Answer(sections.rcode, sections.aa, rendered.ancount, rendered.nscount,
                    rendered.arcount, rendered.body, outcome, rendered.answer_chunks,
                    outcome.zone, qtype)
    if routed and sections.answer and sections.answer[-1].rdtype == RRSIG:
        answer.after = len(sections.answer[-1].rdatas)
    return answer


def sign_now(answer: Answer, finder: ZoneFinder, qname: dns.name.Name, qtype: int,
             res: Resolution) -> Answer:
    """`answer`'s DO=1 rendering, made now and kept on it when not made yet."""
    signed = answer.signed
    if signed is None:
        signed = render_signed(finder, qname, qtype, res, answer.outcome)
        answer.sign_later = False
        answer.signed = signed = signed if signed is not None else answer
    return signed


def assemble(data: bytes, question: bytes, entry: Entry, opt: bytes, limit: int) -> bytes:
    """The reply to query `data`, whose question section is `question`, from `entry`.

    `opt` is our OPT record (empty without EDNS); `limit` the largest reply the
    client takes (TCP_LIMIT over TCP). The ID and the question are the query's
    own bytes, so the question's letter case is echoed as sent and compression
    pointers into it stay valid. This is the one size rule of every path: an
    answer that does not fit is replaced by the question alone with TC=1.
    """
    if entry.size + len(question) + len(opt) > limit:
        flags = entry.flags | TC | ((data[2] << 8 | data[3]) & _ECHOED)
        return b"".join((data[:2], _FLAGS.pack(flags),
                         _TRUNCATED_EDNS if opt else _TRUNCATED, question, opt))
    return b"".join((data[:2], (entry.heads_edns if opt else entry.heads)[
        data[2] & 1 | data[3] >> 3 & 2], question, entry.body, opt))
