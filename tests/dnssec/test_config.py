"""`dnssec:` in a zone file: the accepted forms and located errors."""

from __future__ import annotations

import pytest

from geostream_dns.config.loader import load_zone_text
from geostream_dns.core.model import Dnssec
from geostream_dns.errors import ConfigError
from tests.support.zones import records_line, zone_text


@pytest.mark.parametrize(("written", "expected"), [
    ("true", Dnssec()),
    ("{}", Dnssec()),
    ("{algorithm: ed25519}", Dnssec("ed25519")),
    ("{algorithm: ECDSAP256SHA256, keys: csk}", Dnssec("ecdsap256sha256", "csk")),
    ("{algorithm: 15}", Dnssec("ed25519")),
])
def test_accepted_forms(written: str, expected: Dnssec) -> None:
    zone = load_zone_text(zone_text("", dnssec=written), "zones/example.com.yaml")
    assert zone.dnssec == expected


def test_no_dnssec_means_unsigned() -> None:
    assert load_zone_text(zone_text(""), "zones/example.com.yaml").dnssec is None


@pytest.mark.parametrize(("written", "message"), [
    ("{algorithm: rsasha256}", "dnssec.algorithm: expected one of ecdsap256sha256, ed25519"),
    ("{keys: three}", "dnssec.keys: expected one of ksk-zsk, csk"),
    ("{algoritm: ed25519}", "dnssec.algoritm: unknown key"),
    ("yes please", "dnssec: expected a mapping"),
])
def test_errors_are_located(written: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_zone_text(zone_text("", dnssec=written), "zones/example.com.yaml")
    text = str(caught.value)
    assert message in text
    assert f"zones/example.com.yaml:{records_line(dnssec=written) - 1}:" in text  # dnssec:
