"""Fixtures every test folder shares: the test GeoIP database and running servers.

`start_server(**options)` starts `geostream-dns serve` (tests/support/harness.py,
`ServerProcess.start` options; each server in its own folder under the test's
tmp_path unless `base` is given) and returns the ready `ServerProcess`. When
the test ends, however it ends, every server it started is stopped by its
PID, and then each must have exited 0 on SIGTERM within `STOP_TIMEOUT`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.geoip import write_mmdb
from tests.support.harness import ServerProcess, StartServer, finish


@pytest.fixture(scope="session")
def city_mmdb(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The deterministic GeoIP City database (tests/support/geoip.py), on disk."""
    return write_mmdb(tmp_path_factory.mktemp("geoip") / "city.mmdb")


@pytest.fixture
def start_server(tmp_path: pathlib.Path) -> Iterator[StartServer]:
    started: list[ServerProcess] = []

    def _start(base: pathlib.Path | None = None, **options: Any) -> ServerProcess:
        server = ServerProcess.start(base or tmp_path / f"srv{len(started)}", **options)
        started.append(server)
        return server

    yield _start
    finish(*started)
