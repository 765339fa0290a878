"""Shared fixtures for the HTTP endpoint tests: a small static zone on disk."""

from __future__ import annotations

import pathlib

import pytest

from tests.support.zones import write_zone

RECORDS = """\
'': {type: TXT, value: "v=spf1 -all"}
ns1: {type: A, value: 192.0.2.53}
ns2: {type: A, value: 198.51.100.53}
www: {type: A, values: [192.0.2.10, 192.0.2.11]}
"""


@pytest.fixture
def zones_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    """A zones folder with example.com. (six record sets with the SOA and NS)."""
    folder = tmp_path / "zones"
    write_zone(folder, RECORDS)
    return folder
