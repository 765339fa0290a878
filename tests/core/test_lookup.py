"""core/lookup.py through the resolver: (zone, qname, qtype) -> the response's sections.

Each case names a zone snippet below, the question, and what the reply holds:
rcode, AA, the answer records ("owner ttl TYPE data", sorted within an RRset),
the authority RRsets ("owner ttl TYPE") and the additional records. Queries
carry no EDNS, so the additional section is exactly what lookup put there.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from geostream_dns.core.lookup import MAX_CHAIN, lookup
from geostream_dns.core.model import Zone
from geostream_dns.core.outcome import STATIC
from geostream_dns.core.resolve import resolve
from geostream_dns.core.world import World
from tests.core.helpers import AA, ask, heads, lines, load, make_world, query

# SOA TTL 300, negative_ttl 60: negative answers carry the SOA with TTL 60.
EXAMPLE_COM = """\
'':
  - {type: ALIAS, value: www.example.com.}
  - {type: MX, values: [{preference: 10, exchange: mail.example.com.}]}
  - {type: TXT, value: "v=spf1 -all"}
www:
  - {type: A, ttl: 120, values: [192.0.2.10, 192.0.2.11]}
  - {type: AAAA, ttl: 120, value: "2001:db8::10"}
mail: {type: A, value: 192.0.2.25}
api: {type: CNAME, value: www.example.com.}
chain1: {type: CNAME, ttl: 30, value: chain2.example.com.}
chain2: {type: CNAME, ttl: 40, value: www.example.org.}
loop-a: {type: CNAME, value: loop-b.example.com.}
loop-b: {type: CNAME, value: loop-a.example.com.}
dangling: {type: CNAME, value: nothing.example.com.}
dangling-org: {type: CNAME, value: nothing.example.org.}
outside: {type: CNAME, value: www.example.net.}
into-cut: {type: CNAME, value: www.shop.example.com.}
'*.cn': {type: CNAME, value: www.example.com.}
'*.ent': {type: A, value: 192.0.2.77}
deep.x.ent: {type: TXT, value: below an empty non-terminal}
shop: {type: NS, values: [ns1.shop.example.com., ns.example.org.]}
ns1.shop: {type: A, value: 192.0.2.200}
"""

# SOA TTL 30, negative_ttl 600: the SOA TTL (30) is the smaller one.
EXAMPLE_ORG = """\
'': {type: ALIAS, value: x.wild.example.org.}
'*.wild': {type: A, value: 198.51.100.99}
www: {type: A, value: 198.51.100.10}
back: {type: CNAME, value: www.example.com.}
"""

# RFC 4592 §2.2.1, with the SRV data filled in. `sub.*` is left out: the loader
# refuses an asterisk that is not the leftmost label (legal in DNS, RFC 4592 §2.1.3).
RFC4592 = """\
'*':
  - {type: TXT, value: this is a wildcard}
  - {type: MX, values: [{preference: 10, exchange: host1.example.}]}
host1: {type: A, value: 192.0.2.1}
_ssh._tcp.host1: {type: SRV, values: [{priority: 0, weight: 0, port: 22, target: host1.example.}]}
_ssh._tcp.host2: {type: SRV, values: [{priority: 0, weight: 0, port: 22, target: host1.example.}]}
subdel: {type: NS, values: [ns.example.com., ns.example.net.]}
"""


def zones() -> list[Zone]:
    return [
        load(EXAMPLE_COM, "example.com.", ttl=300, negative_ttl=60),
        load(EXAMPLE_ORG, "example.org.", ttl=30, negative_ttl=600),
        load(RFC4592, "example.", ttl=3600, negative_ttl=3600),
    ]


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(zones())


@dataclass(frozen=True)
class Want:
    rcode: str = "NOERROR"
    aa: bool = True
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()


WWW_A = ("www.example.com. 120 A 192.0.2.10", "www.example.com. 120 A 192.0.2.11")
COM_SOA = ("example.com. 60 SOA",)
ORG_SOA = ("example.org. 30 SOA",)
EX_SOA = ("example. 3600 SOA",)
SHOP_REFERRAL = Want(aa=False, authority=("shop.example.com. 300 NS",),
                     additional=("ns1.shop.example.com. 300 A 192.0.2.200",))

CASES: list[tuple[str, str, str, Want]] = [
    # plain answers, NODATA and NXDOMAIN with the RFC 2308 SOA TTL min(SOA TTL, minimum)
    ("answer", "www.example.com.", "A", Want(answer=WWW_A)),
    ("apex-soa", "example.com.", "SOA", Want(answer=(
        "example.com. 300 SOA ns1.example.net. hostmaster.example.com. 1 7200 900 1209600 60",
    ))),
    ("apex-ns", "example.com.", "NS", Want(answer=(
        "example.com. 300 NS ns1.example.net.", "example.com. 300 NS ns2.example.net."))),
    ("nodata", "www.example.com.", "MX", Want(authority=COM_SOA)),
    ("nxdomain", "nothing.example.com.", "A", Want("NXDOMAIN", authority=COM_SOA)),
    ("nodata-soa-ttl-smaller", "www.example.org.", "MX", Want(authority=ORG_SOA)),
    ("nxdomain-soa-ttl-smaller", "nothing.example.org.", "A",
     Want("NXDOMAIN", authority=ORG_SOA)),
    # ALIAS at the apex is answered as its target's A/AAAA, with the target's TTL
    # (www's 120, not the ALIAS's own 300), as a Route 53 alias is
    ("alias-a", "example.com.", "A", Want(answer=(
        "example.com. 120 A 192.0.2.10", "example.com. 120 A 192.0.2.11"))),
    ("alias-aaaa", "example.com.", "AAAA", Want(answer=("example.com. 120 AAAA 2001:db8::10",))),
    ("alias-target-covered-by-a-wildcard", "example.org.", "A", Want(answer=(
        "example.org. 30 A 198.51.100.99",))),
    ("alias-target-covered-by-a-wildcard-nodata", "example.org.", "AAAA",
     Want(authority=ORG_SOA)),
    ("alias-beside-mx", "example.com.", "MX", Want(answer=(
        "example.com. 300 MX 10 mail.example.com.",))),
    # ANY: one RRset (RFC 8482)
    ("any-apex", "example.com.", "ANY", Want(answer=(
        "example.com. 300 MX 10 mail.example.com.",))),
    ("any-www", "www.example.com.", "ANY", Want(answer=WWW_A)),
    ("any-cname", "api.example.com.", "ANY", Want(answer=(
        "api.example.com. 300 CNAME www.example.com.",))),
    ("any-nxdomain", "nothing.example.com.", "ANY", Want("NXDOMAIN", authority=COM_SOA)),
    # CNAME chains
    ("cname", "api.example.com.", "A", Want(answer=(
        "api.example.com. 300 CNAME www.example.com.", *WWW_A))),
    ("cname-asked", "api.example.com.", "CNAME", Want(answer=(
        "api.example.com. 300 CNAME www.example.com.",))),
    ("cname-aaaa", "api.example.com.", "AAAA", Want(answer=(
        "api.example.com. 300 CNAME www.example.com.", "www.example.com. 120 AAAA 2001:db8::10"))),
    ("cname-nodata", "api.example.com.", "MX", Want(answer=(
        "api.example.com. 300 CNAME www.example.com.",), authority=COM_SOA)),
    ("chain-into-other-zone", "chain1.example.com.", "A", Want(answer=(
        "chain1.example.com. 30 CNAME chain2.example.com.",
        "chain2.example.com. 40 CNAME www.example.org.",
        "www.example.org. 30 A 198.51.100.10"))),
    ("chain-into-other-zone-nodata", "chain1.example.com.", "MX", Want(answer=(
        "chain1.example.com. 30 CNAME chain2.example.com.",
        "chain2.example.com. 40 CNAME www.example.org."), authority=ORG_SOA)),
    ("chain-back", "back.example.org.", "A", Want(answer=(
        "back.example.org. 30 CNAME www.example.com.", *WWW_A))),
    ("cname-loop-terminates", "loop-a.example.com.", "A", Want(answer=(
        "loop-a.example.com. 300 CNAME loop-b.example.com.",
        "loop-b.example.com. 300 CNAME loop-a.example.com."))),
    ("chain-ends-nxdomain", "dangling.example.com.", "A", Want("NXDOMAIN", answer=(
        "dangling.example.com. 300 CNAME nothing.example.com.",), authority=COM_SOA)),
    ("chain-ends-nxdomain-other-zone", "dangling-org.example.com.", "A", Want("NXDOMAIN", answer=(
        "dangling-org.example.com. 300 CNAME nothing.example.org.",), authority=ORG_SOA)),
    ("chain-leaves-hosted-zones", "outside.example.com.", "A", Want(answer=(
        "outside.example.com. 300 CNAME www.example.net.",))),
    ("chain-into-delegation", "into-cut.example.com.", "A", Want(answer=(
        "into-cut.example.com. 300 CNAME www.shop.example.com.",))),
    # wildcards in example.com
    ("wildcard-cname", "x.cn.example.com.", "A", Want(answer=(
        "x.cn.example.com. 300 CNAME www.example.com.", *WWW_A))),
    ("wildcard", "z.ent.example.com.", "A", Want(answer=("z.ent.example.com. 300 A 192.0.2.77",))),
    ("wildcard-two-labels", "a.b.ent.example.com.", "A", Want(answer=(
        "a.b.ent.example.com. 300 A 192.0.2.77",))),
    ("wildcard-nodata", "z.ent.example.com.", "TXT", Want(authority=COM_SOA)),
    ("ent-is-nodata-not-wildcard", "x.ent.example.com.", "A", Want(authority=COM_SOA)),
    ("ent-blocks-wildcard", "y.x.ent.example.com.", "A", Want("NXDOMAIN", authority=COM_SOA)),
    ("below-ent", "deep.x.ent.example.com.", "TXT", Want(answer=(
        'deep.x.ent.example.com. 300 TXT "below an empty non-terminal"',))),
    ("wildcard-owner-asked-literally", "*.ent.example.com.", "A", Want(answer=(
        "*.ent.example.com. 300 A 192.0.2.77",))),
    # RFC 4592 §2.2.1 examples
    ("rfc4592-host3-mx", "host3.example.", "MX", Want(answer=(
        "host3.example. 3600 MX 10 host1.example.",))),
    ("rfc4592-host3-a", "host3.example.", "A", Want(authority=EX_SOA)),
    ("rfc4592-foo.bar-txt", "foo.bar.example.", "TXT", Want(answer=(
        'foo.bar.example. 3600 TXT "this is a wildcard"',))),
    ("rfc4592-host1-mx", "host1.example.", "MX", Want(authority=EX_SOA)),
    ("rfc4592-_telnet._tcp.host1-srv", "_telnet._tcp.host1.example.", "SRV",
     Want("NXDOMAIN", authority=EX_SOA)),
    ("rfc4592-host2-ent", "host2.example.", "A", Want(authority=EX_SOA)),
    ("rfc4592-host.subdel-a", "host.subdel.example.", "A", Want(
        aa=False, authority=("subdel.example. 3600 NS",))),
    ("rfc4592-ghost.*-mx", "ghost.*.example.", "MX", Want("NXDOMAIN", authority=EX_SOA)),
    # delegations: referral without AA, NS in authority, in-zone glue in additional
    ("referral", "www.shop.example.com.", "A", SHOP_REFERRAL),
    ("referral-at-cut", "shop.example.com.", "A", SHOP_REFERRAL),
    ("referral-ns-at-cut", "shop.example.com.", "NS", SHOP_REFERRAL),
    ("referral-for-glue-name", "ns1.shop.example.com.", "A", SHOP_REFERRAL),
    ("ds-at-cut-parent-answers", "shop.example.com.", "DS", Want(authority=COM_SOA)),
    ("ds-below-cut-referral", "a.b.shop.example.com.", "DS", SHOP_REFERRAL),
    # outside every hosted zone
    ("refused", "www.example.net.", "A", Want("REFUSED", aa=False)),
    ("refused-parent-of-zone", "com.", "A", Want("REFUSED", aa=False)),
    # letter case does not matter
    ("case-insensitive", "WWW.EXAMPLE.COM.", "A", Want(answer=WWW_A)),
    ("case-insensitive-nxdomain", "NoThInG.ExAmPlE.CoM.", "A",
     Want("NXDOMAIN", authority=COM_SOA)),
    ("case-insensitive-wildcard", "Z.ENT.example.COM.", "A", Want(answer=(
        "z.ent.example.com. 300 A 192.0.2.77",))),
]


@pytest.mark.parametrize(("case", "qname", "qtype", "want"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_lookup(world: World, case: str, qname: str, qtype: str, want: Want,
                tcp: bool) -> None:
    reply = ask(world, query(qname, qtype), tcp=tcp)
    got = Want(
        dns.rcode.to_text(reply.rcode()),
        bool(reply.flags & AA),
        tuple(lines(reply.answer)),
        tuple(heads(reply.authority)),
        tuple(lines(reply.additional)),
    )
    assert got == want


def test_every_case_twice_gives_the_same_bytes(world: World) -> None:
    # The second query is served from the pre-rendered or memoized answer.
    for _case, qname, qtype, _want in CASES:
        wire = query(qname, qtype).to_wire()
        first, _ = resolve(wire, "192.0.2.1", world)
        again, outcome = resolve(wire, "192.0.2.1", world)
        assert again == first
        assert outcome.path == STATIC


def test_a_long_cname_chain_stops_after_max_chain_hops() -> None:
    hops = MAX_CHAIN + 5
    snippet = "".join(f"c{i}: {{type: CNAME, value: c{i + 1}.example.com.}}\n"
                      for i in range(hops)) + f"c{hops}: {{type: A, value: 192.0.2.1}}\n"
    reply = ask(make_world([load(snippet)]), query("c0.example.com.", "A"), tcp=True)
    assert reply.rcode() == dns.rcode.NOERROR
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.CNAME] * MAX_CHAIN


def test_negative_answers_carry_the_soa_minimum_when_it_is_smaller() -> None:
    snapshot = make_world(zones()).snapshot
    com = snapshot.zones[dns.name.from_text("example.com.")]
    org = snapshot.zones[dns.name.from_text("example.org.")]
    assert (com.negative_ttl, org.negative_ttl) == (60, 30)
    res = lookup(snapshot, dns.name.from_text("nothing.example.com."), dns.rdatatype.A)
    (soa,) = res.authority
    assert soa.ttl == 60 and soa.rdatas[0].minimum == 60  # type: ignore[attr-defined]


def test_a_query_for_an_unhosted_name_renders_refused() -> None:
    reply, outcome = resolve(query("example.net.", "SOA").to_wire(), "192.0.2.1",
                             make_world(zones()))
    assert (outcome.qtype, outcome.rcode, outcome.zone) == (dns.rdatatype.SOA,
                                                             dns.rcode.REFUSED, "")
    assert reply is not None
    msg = dns.message.from_wire(reply)
    assert (msg.answer, msg.authority, msg.additional) == ([], [], [])

