"""Every record type answered over the wire by the real server (UDP and TCP, dnspython
and dig), and the zones real exports hold: data below a delegation (served with
the referral) and an ALIAS to a name outside every hosted zone (SERVFAIL until
resolved, no crash)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.config.helpers import records
from tests.config.test_record_types import EVERY_TYPE, PRESENTATION
from tests.support.harness import ServerProcess, running

CUT_ZONE = """\
zone: cut.example.
ttl: 300
soa: {primary: ns1.example.net., email: hostmaster@cut.example, refresh: 7200, retry: 900,
      expire: 1209600, negative_ttl: 300, serial: 2024010101}
nameservers: [ns1.cut.example., ns2.example.net.]
records:
  '@': {type: ALIAS, value: d111111abcdef8.cloudfront.example.net.}
  shop:
    - {type: NS, values: [ns1.shop.cut.example.]}
    - {type: TXT, value: beside the cut}
  www.shop: {type: A, value: 192.0.2.80}
  www: {type: A, value: 192.0.2.10}
"""


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory,
          city_mmdb: pathlib.Path) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("types")
    zones = base / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(records(EVERY_TYPE))
    (zones / "cut.example.yaml").write_text(CUT_ZONE)
    with running(base, zones=zones, geoip=city_mmdb, http=False, args=["--no-probe"]) as srv:
        yield srv


def ask(server: ServerProcess, name: str, rtype: str, tcp: bool = False) -> dns.message.Message:
    return server.query(name, rtype, tcp=tcp, timeout=3, use_edns=True, payload=1232)


def texts(reply: dns.message.Message, rtype: str) -> list[str]:
    want = dns.rdatatype.from_text(rtype)
    return sorted(r.to_text() for rrset in reply.answer if rrset.rdtype == want for r in rrset)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_every_type_is_answered(typed: ServerProcess, tcp: bool) -> None:
    for (name, rtype), data in PRESENTATION.items():
        if name.startswith("sub.") and rtype != "DS":
            continue  # the delegation's NS: a referral
        reply = ask(typed, name, rtype, tcp)
        assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA, (name, rtype)
        assert texts(reply, rtype) == sorted(data), (name, rtype)
        assert {rrset.ttl for rrset in reply.answer} == {300}


def test_dig_reads_the_new_types(typed: ServerProcess, tmp_path: pathlib.Path) -> None:
    dig = shutil.which("dig")
    assert dig, "dig is not installed (make tools)"

    def short(name: str, rtype: str) -> list[str]:
        out = subprocess.run([dig, "@127.0.0.1", "-p", str(typed.port), "+short", "+time=2",
                              "+tries=1", name, rtype],
                             capture_output=True, text=True, timeout=10, check=True)
        return sorted(out.stdout.splitlines())

    assert short("example.com", "TXT")[0] == '"a" "b"'  # one record, two strings
    assert short("example.com", "TYPE49") == ["wAACAQ=="]  # dig knows 49 as DHCID
    assert [t.replace(" ", "") for t in short("_443._tcp.www.example.com", "TLSA")] == [
        "311" + "0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6"]
    assert short("sip.example.com", "NAPTR") == ['100 10 "S" "SIP+D2U" "" _sip._udp.example.com.']


def test_data_below_a_delegation_gets_the_referral(typed: ServerProcess) -> None:
    for name, rtype in (("shop.cut.example.", "TXT"), ("www.shop.cut.example.", "A")):
        reply = ask(typed, name, rtype)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.flags & dns.flags.AA
        assert reply.answer == []
        assert [r.to_text() for rrset in reply.authority for r in rrset] == [
            "ns1.shop.cut.example."]
    assert texts(ask(typed, "www.cut.example.", "A"), "A") == ["192.0.2.10"]


def test_alias_outside_every_zone_is_servfail_until_resolved(typed: ServerProcess) -> None:
    # the harness's ALIAS resolver is a loopback port nobody answers on: never resolved
    reply = ask(typed, "cut.example.", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.answer == []
    assert texts(ask(typed, "cut.example.", "SOA"), "SOA")[0].endswith(
        "2024010101 7200 900 1209600 300")  # the zone's own serial, served first
    assert typed.alive()
