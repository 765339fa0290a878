"""Shared fixtures for the HTTP endpoint tests: a small static zone on disk."""

from __future__ import annotations

import pathlib

import pytest

ZONE = """\
zone: example.com.
ttl: 300
soa:
  primary: ns1.example.com.
  email: hostmaster@example.com
  refresh: 7200
  retry: 900
  expire: 1209600
  negative_ttl: 300
nameservers: [ns1.example.com., ns2.example.com.]
records:
  '': {type: TXT, value: "v=spf1 -all"}
  ns1: {type: A, value: 192.0.2.53}
  ns2: {type: A, value: 198.51.100.53}
  www: {type: A, values: [192.0.2.10, 192.0.2.11]}
"""


@pytest.fixture
def zones_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "zones"
    folder.mkdir()
    (folder / "example.com.yaml").write_text(ZONE)
    return folder
