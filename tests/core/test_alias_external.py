"""ALIAS targets outside the hosted zones in the core: SERVFAIL until resolved, then the
resolved records with the target's TTL, rendered again only when they change."""

from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from geostream_dns.core.build import build_snapshot, question_key, with_externals
from geostream_dns.core.snapshot import ExternalTarget, Snapshot
from geostream_dns.core.world import World
from tests.core.helpers import ask, lines, load, query

ZONE = """\
'':
  - {type: ALIAS, ttl: 3600, value: edge.cdn.example.net.}
  - {type: TXT, value: apex}
api: {type: CNAME, value: example.com.}
www: {type: A, ttl: 45, value: 192.0.2.10}
local: {type: ALIAS, value: www.example.com.}
below: {type: ALIAS, value: host.shop.example.com.}
shop: {type: NS, values: [ns1.example.net.]}
'*.w': {type: ALIAS, value: edge.cdn.example.net.}
"""

EDGE = dns.name.from_text("edge.cdn.example.net.")
SHOP = dns.name.from_text("host.shop.example.com.")


def rdatas(rdtype: str, *texts: str) -> tuple[dns.rdata.Rdata, ...]:
    return tuple(dns.rdata.from_text(dns.rdataclass.IN, rdtype, t) for t in texts)


def snapshot() -> Snapshot:
    return build_snapshot([load(ZONE)], 1)


def test_external_targets_are_noted_with_the_questions_they_answer() -> None:
    snap = snapshot()
    assert snap.alias_targets == {EDGE, SHOP}  # below a delegation: not ours to answer
    questions = {(n.to_text(), dns.rdatatype.to_text(t)) for n, t in snap.alias_questions[EDGE]}
    # (names reached through a CNAME or a wildcard are looked up by the slow path,
    # whose memo belongs to the snapshot: a new snapshot starts it afresh)
    assert questions == {("example.com.", "A"), ("example.com.", "AAAA"),
                         ("*.w.example.com.", "A"), ("*.w.example.com.", "AAAA")}


def test_servfail_until_resolved() -> None:
    world = World.create(snapshot())
    for name in ("example.com.", "api.example.com.", "x.w.example.com.", "below.example.com."):
        for rdtype in ("A", "AAAA"):
            assert ask(world, query(name, rdtype)).rcode() == dns.rcode.SERVFAIL, name
    assert ask(world, query("example.com.", "TXT")).rcode() == dns.rcode.NOERROR
    assert lines(ask(world, query("local.example.com.")).answer) == [
        "local.example.com. 45 A 192.0.2.10"]  # in-zone: the target's TTL


def test_resolved_records_answer_with_the_targets_ttl() -> None:
    resolved = ExternalTarget(rdatas("A", "198.51.100.1", "198.51.100.2"), 20)
    world = World.create(with_externals(snapshot(), {EDGE: resolved}))
    assert lines(ask(world, query("example.com.")).answer) == [
        "example.com. 20 A 198.51.100.1", "example.com. 20 A 198.51.100.2"]
    assert lines(ask(world, query("x.w.example.com.")).answer) == [
        "x.w.example.com. 20 A 198.51.100.1", "x.w.example.com. 20 A 198.51.100.2"]
    api = ask(world, query("api.example.com."))
    assert lines(api.answer)[0] == "api.example.com. 300 CNAME example.com."
    nodata = ask(world, query("example.com.", "AAAA"))  # the target has no AAAA
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert [r.rdtype for r in nodata.authority] == [dns.rdatatype.SOA]
    assert ask(world, query("below.example.com.")).rcode() == dns.rcode.SERVFAIL


def test_only_the_answers_of_changed_targets_are_rendered_again() -> None:
    base = snapshot()
    one = ExternalTarget(rdatas("A", "198.51.100.1"), 20)
    first = with_externals(base, {EDGE: one})
    assert with_externals(first, {EDGE: ExternalTarget(rdatas("A", "198.51.100.1"), 20)}) \
        is first  # nothing changed: the same snapshot
    apex = question_key(dns.name.from_text("example.com."), dns.rdatatype.A)
    txt = question_key(dns.name.from_text("example.com."), dns.rdatatype.TXT)
    below = question_key(dns.name.from_text("below.example.com."), dns.rdatatype.A)
    second = with_externals(first, {EDGE: ExternalTarget(rdatas("A", "198.51.100.9"), 20)})
    assert second.answers[apex] is not first.answers[apex]
    assert second.answers[txt] is first.answers[txt]
    assert second.answers[below] is first.answers[below]
    assert lines(ask(World.create(second), query("example.com.")).answer) == [
        "example.com. 20 A 198.51.100.9"]
    # a target no longer resolved (dropped) goes back to SERVFAIL
    assert ask(World.create(with_externals(second, {})),
               query("example.com.")).rcode() == dns.rcode.SERVFAIL


def test_a_rebuild_keeps_what_targets_resolved_to() -> None:
    first = with_externals(snapshot(), {EDGE: ExternalTarget(rdatas("A", "198.51.100.1"), 20)})
    rebuilt = build_snapshot([load(ZONE.replace("apex", "changed"))], 2, previous=first)
    assert lines(ask(World.create(rebuilt), query("example.com.")).answer) == [
        "example.com. 20 A 198.51.100.1"]
