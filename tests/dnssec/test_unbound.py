"""A real validating resolver (Unbound) gets AD=1 for every kind of answer of a
signed zone, with the zone's DS (from `geostream-dns dnssec ds --unbound`) as
its trust anchor; and a ZSK rollover, run end to end with short TTLs, never
breaks validation.

Unbound runs as this test's own process on a loopback port: the signed zone is
a stub zone pointing at our server, and the root is a stub pointing at a
closed loopback port, so nothing ever leaves the machine.
"""

from __future__ import annotations

import pathlib
import shutil
import stat
import subprocess
from collections.abc import Iterator

import dns.dnssec
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.dnssec.signing import check_signed
from tests.support.harness import (
    ServerProcess,
    free_port,
    run_cli,
    stop_process,
    wait_for,
    wait_until,
)
from tests.support.zones import write_zone

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"

BIG_TXT = ", ".join(f'"{"y" * 213}{i}"' for i in range(5))  # ~1,180 bytes unsigned
RECORDS = """
www: {type: A, value: 192.0.2.1}
'*.wild': {type: A, value: 192.0.2.9}
a.b.c: {type: TXT, value: deep}
big: {type: TXT, values: [BIG]}
alias: {type: CNAME, value: www.example.com.}
insecure: {type: NS, values: [ns1.insecure.example.com.]}
ns1.insecure: {type: A, value: 127.0.0.1}
geo:
  type: A
  routing:
    pools:
      near: {values: [{value: 192.0.2.10}]}
      far: {values: [{value: 192.0.2.20}]}
    rules:
      - {subnets: [10.1.0.0/16], pool: near}
      - pool: far
""".replace("BIG", BIG_TXT)


def start_unbound(base: pathlib.Path, server: ServerProcess, anchors: str) -> tuple[
        subprocess.Popen[bytes], int]:
    port = free_port(avoid={server.port})
    dead = free_port(avoid={server.port, port})  # a root that never answers
    conf = base / "unbound.conf"
    conf.write_text(f"""server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{base}"
  pidfile: ""
  use-syslog: no
  logfile: "{base}/unbound.log"
  verbosity: 1
  val-log-level: 2
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  do-ip6: no
  qname-minimisation: no
  module-config: "subnetcache validator iterator"
  send-client-subnet: 127.0.0.1
  client-subnet-always-forward: yes
  max-client-subnet-ipv4: 24
  {anchors}
stub-zone:
  name: "example.com."
  stub-addr: 127.0.0.1@{server.port}
stub-zone:
  name: "."
  stub-addr: 127.0.0.1@{dead}
remote-control:
  control-enable: no
""")
    process = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=(base / "unbound.err").open("wb"))
    probe = dns.message.make_query("www.example.com.", "A", want_dnssec=True)

    def answers() -> bool:
        try:
            dns.query.udp(probe, "127.0.0.1", port=port, timeout=0.5)
            return True
        except (OSError, dns.exception.Timeout):
            return False

    if wait_for(answers, 15) is None:
        stop_process(process)
        raise AssertionError("unbound did not start: "
                             + (base / "unbound.err").read_text()[-2000:])
    return process, port


@pytest.fixture()
def signed(tmp_path: pathlib.Path) -> Iterator[tuple[ServerProcess, pathlib.Path]]:
    zones = tmp_path / "zones"
    write_zone(zones, RECORDS, ttl=2, negative_ttl=2, dnssec="{algorithm: ecdsap256sha256}")
    server = ServerProcess.start(tmp_path, zones=zones, args=["--no-probe"])
    try:
        yield server, tmp_path
    finally:
        server.stop()


def ask(port: int, name: str, rdtype: str, ecs: str | None = None) -> dns.message.Message:
    options = []
    if ecs is not None:
        address, _, prefix = ecs.partition("/")
        options.append(dns.edns.ECSOption(address, int(prefix)))
    q = dns.message.make_query(name, rdtype, want_dnssec=True, use_edns=0,
                               options=options or None)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5)


def addresses(reply: dns.message.Message) -> set[str]:
    return {rd.to_text() for r in reply.answer if r.rdtype == dns.rdatatype.A for rd in r}


def trust_anchor(server: ServerProcess) -> str:
    result = run_cli("dnssec", "ds", "example.com.", "--unbound",
                     "--state-dir", str(server.state_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines and all(line.startswith('trust-anchor: "example.com. DS ') for line in lines)
    return "\n  ".join(lines)


KINDS = [  # (name, type, ECS, rcode, answer type expected or None)
    ("www.example.com.", "A", None, "NOERROR", "A"),                     # static
    ("geo.example.com.", "A", "10.1.2.0/24", "NOERROR", "A"),            # routed, ECS
    ("geo.example.com.", "A", "10.9.9.0/24", "NOERROR", "A"),            # routed, other net
    ("x.wild.example.com.", "A", None, "NOERROR", "A"),                  # wildcard
    ("alias.example.com.", "A", None, "NOERROR", "A"),                   # CNAME chain
    ("www.example.com.", "AAAA", None, "NOERROR", None),                 # NODATA
    ("b.c.example.com.", "A", None, "NOERROR", None),                    # ENT NODATA
    ("nothere.example.com.", "A", None, "NOERROR", None),                # NXDOMAIN, compact
    ("example.com.", "DNSKEY", None, "NOERROR", "DNSKEY"),               # DNSKEY
    ("insecure.example.com.", "DS", None, "NOERROR", None),              # no DS at the cut
]


def validates_every_kind(base: pathlib.Path, server: ServerProcess, anchors: str) -> None:
    """A fresh Unbound with these trust anchors validates every kind of answer (AD=1)."""
    unbound, port = start_unbound(base, server, anchors)
    try:
        for name, rdtype, ecs, _rcode, _t in KINDS:
            assert ask(port, name, rdtype, ecs).flags & dns.flags.AD, name
    finally:
        stop_process(unbound)


def test_unbound_validates_every_kind_of_answer(
        signed: tuple[ServerProcess, pathlib.Path]) -> None:
    server, base = signed
    unbound, port = start_unbound(base, server, trust_anchor(server))
    try:
        for name, rdtype, ecs, rcode, answer_type in KINDS:
            reply = ask(port, name, rdtype, ecs)
            what = f"{name} {rdtype} ecs={ecs}"
            assert dns.rcode.to_text(reply.rcode()) == rcode, f"{what}: {reply}"
            assert reply.flags & dns.flags.AD, f"{what}: not validated (AD=0): {reply}"
            types = {dns.rdatatype.to_text(r.rdtype) for r in reply.answer}
            if answer_type is None:
                assert answer_type not in types and not [
                    r for r in reply.answer if r.rdtype == dns.rdatatype.from_text(rdtype)]
            else:
                assert answer_type in types, f"{what}: {reply}"
        near = ask(port, "geo.example.com.", "A", "10.1.2.0/24")
        far = ask(port, "geo.example.com.", "A", "10.9.9.0/24")
        assert addresses(near) == {"192.0.2.10"} and addresses(far) == {"192.0.2.20"}
        # An insecure delegation: the referral proves there is no DS, and the
        # resolver treats what is below as unsigned (no bogus, no SERVFAIL).
        reply = ask(port, "insecure.example.com.", "DS")
        assert reply.flags & dns.flags.AD and not reply.answer
    finally:
        stop_process(unbound)


def test_zsk_rollover_end_to_end_keeps_validating(
        signed: tuple[ServerProcess, pathlib.Path]) -> None:
    server, base = signed
    anchors = trust_anchor(server)
    unbound, port = start_unbound(base, server, anchors)

    def zsk_tags() -> set[int]:
        reply = server.query("example.com.", "DNSKEY", want_dnssec=True)
        return {dns.dnssec.key_id(rd) for r in reply.answer if r.rdtype == dns.rdatatype.DNSKEY
                for rd in r if not rd.flags & 1}

    def signing_tags() -> set[int]:
        reply = server.query("www.example.com.", "A", want_dnssec=True)
        return {rd.key_tag for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG for rd in r}

    try:
        before = zsk_tags()
        assert len(before) == 1 and signing_tags() == before
        result = run_cli("dnssec", "rollover", "example.com.", "--zsk",
                         "--state-dir", str(server.state_dir))
        assert result.returncode == 0, result.stderr
        # Step 1: the new ZSK is published, the old one still signs.
        wait_until(lambda: len(zsk_tags()) == 2, 10)
        assert signing_tags() == before
        # Step 2 (after the DNSKEY TTL): the new key signs, the old one is still published.
        wait_until(lambda: signing_tags() != before, 15)
        new = signing_tags()
        assert new and new.isdisjoint(before) and len(zsk_tags()) == 2
        # Step 3 (after the zone's largest TTL): the old key is gone.
        wait_until(lambda: zsk_tags() == new, 15)
        # Throughout, and after, the resolver validates.
        for name, rdtype, ecs, _rcode, _t in KINDS:
            assert ask(port, name, rdtype, ecs).flags & dns.flags.AD, name
    finally:
        stop_process(unbound)
    # The keys stay private: a 0600 file in the state dir, never in the log or the API.
    key_file = server.state_dir / "dnssec" / "example.com.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and "PRIVATE KEY" in key_file.read_text()
    assert "PRIVATE KEY" not in server.log() and server.events("dnssec.rollover_step")
    status, body = server.http_json("/v1/dnssec")
    assert status == 200 and "PRIVATE" not in str(body)
    assert body["zones"][0]["zone"] == "example.com."


def test_ksk_double_ds_rollover_end_to_end(
        signed: tuple[ServerProcess, pathlib.Path]) -> None:
    """Double DS: the new KSK's DS goes to the parent first (here: the resolver's
    trust anchors, as `dnssec ds` prints them), then the keys swap, then the old DS
    goes. The resolver validates at every step; the API and metrics show the steps."""
    server, base = signed

    def ksk_tags() -> set[int]:
        reply = server.query("example.com.", "DNSKEY", want_dnssec=True)
        return {dns.dnssec.key_id(rd) for r in reply.answer if r.rdtype == dns.rdatatype.DNSKEY
                for rd in r if rd.flags & 1}

    def ds_tags() -> set[int]:
        result = run_cli("dnssec", "ds", "example.com.", "--state-dir", str(server.state_dir))
        assert result.returncode == 0, result.stderr
        return {int(line.split("\t")[4].split()[0]) for line in result.stdout.splitlines()}

    old = ksk_tags()
    assert len(old) == 1 and ds_tags() == old
    result = run_cli("dnssec", "rollover", "example.com.", "--ksk", "--ds-ttl", "3",
                     "--state-dir", str(server.state_dir))
    assert result.returncode == 0, result.stderr
    # Step 1: both DS for the parent (CDS too), the old KSK alone in DNSKEY.
    both = ds_tags()
    assert len(both) == 2 and old < both
    wait_until(lambda: {r.to_text().split()[0] for rr in server.query(
        "example.com.", "CDS", want_dnssec=True).answer if rr.rdtype == dns.rdatatype.CDS
        for r in rr} == {str(t) for t in both}, 10)
    status, view = server.http_json("/v1/zones/example.com./dnssec")
    assert status == 200 and view["rollover"] is True
    assert {k["state"] for k in view["keys"] if k["role"] == "ksk"} == {"active", "ds-published"}
    assert "PRIVATE" not in str(view) and "private" not in str(view)
    assert 'state="ds-published"' in server.metrics()
    validates_every_kind(base, server, trust_anchor(server))  # the parent now has both DS
    # Step 2 (after the DS TTL): the new KSK alone signs the keys.
    new = both - old
    wait_until(lambda: ksk_tags() == new, 15)
    validates_every_kind(base, server, trust_anchor(server))
    # Step 3 (after the DNSKEY TTL): the old DS leaves; the parent keeps the new one only.
    wait_until(lambda: ds_tags() == new, 15)
    validates_every_kind(base, server, trust_anchor(server))
    status, view = server.http_json("/v1/zones/example.com./dnssec")
    assert view["rollover"] is False and len(view["ds"]) == 1


def test_a_signed_answer_too_big_for_udp_is_truncated_and_whole_over_tcp(
        signed: tuple[ServerProcess, pathlib.Path]) -> None:
    server, _base = signed
    origin = dns.name.from_text("example.com.")
    reply = server.query("example.com.", "DNSKEY", want_dnssec=True)
    keys = {origin: reply.find_rrset(reply.answer, origin, dns.rdataclass.IN,
                                     dns.rdatatype.DNSKEY)}
    plain = server.query("big.example.com.", "TXT", use_edns=0)
    assert not plain.flags & dns.flags.TC and len(plain.to_wire()) <= 1232
    udp = server.query("big.example.com.", "TXT", want_dnssec=True, payload=4096)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = server.query("big.example.com.", "TXT", tcp=True, want_dnssec=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.to_wire()) > 1232
    assert check_signed(tcp, keys) == 1


def test_csk_rollover_end_to_end_keeps_validating(tmp_path: pathlib.Path) -> None:
    """A zone signed with one combined key rolls it: the new key's DS is listed
    from the start (the parent gets both), then the new key signs everything,
    then the old key and its DS go. Unbound validates at each step."""
    zones = tmp_path / "zones"
    write_zone(zones, RECORDS, ttl=2, negative_ttl=2, dnssec="{algorithm: ed25519, keys: csk}")
    server = ServerProcess.start(tmp_path, zones=zones, args=["--no-probe"])
    try:
        def keys() -> set[int]:
            reply = server.query("example.com.", "DNSKEY", want_dnssec=True)
            return {dns.dnssec.key_id(rd) for r in reply.answer
                    if r.rdtype == dns.rdatatype.DNSKEY for rd in r}

        def signers() -> set[int]:
            reply = server.query("www.example.com.", "A", want_dnssec=True)
            return {rd.key_tag for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG
                    for rd in r}

        old = keys()
        assert len(old) == 1 and signers() == old
        result = run_cli("dnssec", "rollover", "example.com.", "--zsk", "--ds-ttl", "3",
                         "--state-dir", str(server.state_dir))
        assert result.returncode == 0, result.stderr
        wait_until(lambda: len(keys()) == 2, 10)
        assert signers() == old and trust_anchor(server).count("trust-anchor:") == 2
        # both DS at the parent, the old key signing
        validates_every_kind(tmp_path, server, trust_anchor(server))
        new = keys() - old
        wait_until(lambda: signers() == new, 15)
        # the new key signs; the old is still published and in DS
        validates_every_kind(tmp_path, server, trust_anchor(server))
        wait_until(lambda: keys() == new, 15)
        assert trust_anchor(server).count("trust-anchor:") == 1
        validates_every_kind(tmp_path, server, trust_anchor(server))
    finally:
        server.stop()
