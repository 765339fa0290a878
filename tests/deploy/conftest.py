"""One real Prometheus for the whole session, on a free loopback port, with an
empty TSDB in a temporary folder and nothing to scrape: the tests send it
expressions to parse (GET /api/v1/query answers 400 to one that does not)."""

from __future__ import annotations

import pathlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.deploy.tools import require_tool
from tests.support.harness import free_port, stop_process

START_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_tool("prometheus")
    folder: pathlib.Path = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}: "
                            f"{(folder / 'prometheus.log').read_text()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready within {START_TIMEOUT:.0f} s: "
                            f"{(folder / 'prometheus.log').read_text()}", pytrace=False)
            time.sleep(0.2)
        yield url
    finally:
        stop_process(process, timeout=10)
        log.close()
