"""`--alias-resolver ADDR[:PORT]`: parsed, or refused at start with a clear message."""

from __future__ import annotations

import pathlib

import pytest

from geostream_dns.config.settings import parse_resolver
from tests.support.harness import run_cli


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1", ("127.0.0.1", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)),
    ("[::1]:5353", ("::1", 5353)),
    ("[::1]", ("::1", 53)),
])
def test_addresses_and_ports(text: str, want: tuple[str, int]) -> None:
    assert parse_resolver(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("dns.example.net", "must be an IP address"),
    ("127.0.0.1:abc", "bad port"),
    ("127.0.0.1:0", "bad port"),
    ("[::1]x", "expected [IPv6]:PORT"),
])
def test_bad_resolvers_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_resolver(text)


def test_serve_refuses_a_bad_resolver_at_start(tmp_path: pathlib.Path) -> None:
    out = run_cli("serve", "--zones", tmp_path, "--http", "off", "--listen", "127.0.0.1:0",
                  "--alias-resolver", "resolver.example.net", timeout=30)
    assert out.returncode == 2
    assert "the ALIAS resolver must be an IP address" in out.stderr
    out = run_cli("serve", "--zones", tmp_path, "--http", "off", "--listen", "127.0.0.1:0",
                  "--alias-refresh-min", "10", "--alias-refresh-max", "5", timeout=30)
    assert out.returncode == 2 and "--alias-refresh-min" in out.stderr
