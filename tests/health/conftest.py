"""Fixtures for the health tests: the endpoint farm (tests/health/farm.py) and a
self-signed certificate for its TLS endpoints."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.health.farm import CERT_HOST, Cert, Farm


@pytest.fixture(scope="session")
def farm() -> Iterator[Farm]:
    f = Farm()
    yield f
    f.close()


@pytest.fixture
def endpoints(farm: Farm) -> Iterator[Farm]:
    """The farm; every endpoint a test creates is stopped when it ends."""
    yield farm
    farm.stop_all()


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for www.example.com, made with the openssl CLI."""
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={CERT_HOST}", "-addext", f"subjectAltName=DNS:{CERT_HOST}",
         "-keyout", str(key_path), "-out", str(cert_path)],
        check=True, capture_output=True, timeout=30)
    return Cert(cert_path, key_path)
