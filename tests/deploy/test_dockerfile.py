"""The Dockerfile: checkov's Dockerfile checks, the files it copies are in the
build context, and its health check script works against a real server."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.deploy.tools import ROOT, checkov, checkov_env, output, run
from tests.support.harness import SAMPLE_ZONES, free_port, running

DOCKERFILE = (ROOT / "Dockerfile").read_text()
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_checkov_dockerfile() -> None:
    result = run([checkov(), "--file", "Dockerfile", "--framework", "dockerfile", "--compact",
                  "--quiet", "--skip-download"], env=checkov_env())
    assert result.returncode == 0, output(result)
    assert "Failed checks: 0" in result.stdout, output(result)


def test_runtime_stage() -> None:
    steps = instructions()
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(stages) == 2, "a build stage and a runtime stage"
    runtime = steps[stages[-1]:]
    assert steps[stages[-1]][1].startswith("python:3.11-slim")
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and not users[-1].startswith(("root", "0")), users
    assert ("ENTRYPOINT", '["geostream-dns"]') in runtime
    assert ("CMD", '["serve"]') in runtime
    healthchecks = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert healthchecks and "geostream-healthcheck" in healthchecks[0]
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "GEOSTREAM_HTTP=0.0.0.0:8080" in env
    assert "GEOSTREAM_MIGRATIONS=/usr/share/geostream-dns/migrations" in env
    # The package goes in as a wheel, not as a copy of the source tree.
    build = steps[:stages[-1]]
    assert any(word == "RUN" and "pip wheel" in rest for word, rest in build)
    assert not any(word == "COPY" and "geostream_dns" in rest for word, rest in runtime)


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/") \
                or fnmatch.fnmatch(path, pattern.replace("**/", "*/")):
            ignored = not negate
    return ignored


def test_copied_files_are_in_the_build_context() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for word, rest in instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _destination = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
    assert _ignored("tests", patterns) and _ignored(".venv", patterns)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real geostream-dns serving the sample zones (prober off) on free ports: its
    HTTP port."""
    with running(tmp_path_factory.mktemp("server"), zones=SAMPLE_ZONES,
                 args=["--no-probe"]) as srv:
        yield srv.http_port


def healthcheck(http: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GEOSTREAM_HTTP=http)
    return run([sys.executable, str(HEALTHCHECK)], env=env, timeout=30)


def test_healthcheck_passes_on_a_live_server(server: int) -> None:
    # The container listens on 0.0.0.0; the check reaches it through loopback.
    for address in (f"0.0.0.0:{server}", f"127.0.0.1:{server}"):
        result = healthcheck(address)
        assert result.returncode == 0, output(result)


def test_healthcheck_fails_without_a_server() -> None:
    result = healthcheck(f"0.0.0.0:{free_port()}")
    assert result.returncode == 1, output(result)
    assert "unhealthy" in result.stderr
    assert healthcheck("off").returncode == 1
