"""Production mode: two servers on one PostgreSQL (and one Redis answer cache)
sign a zone with the same keys, made once, and give identical, valid signed
answers; the private keys stay encrypted in the database."""

from __future__ import annotations

import pathlib
import uuid

import dns.dnssec
import dns.flags
import dns.name
import dns.rdatatype
import psycopg

from tests.dnssec.signing import check_signed
from tests.postgres.conftest import cli
from tests.support.harness import StartServer, remove_redis_prefix
from tests.support.zones import write_zone

REDIS_URL = "redis://127.0.0.1:6379/0"
RECORDS = """
www: {type: A, value: 192.0.2.10}
geo:
  type: A
  routing:
    pools:
      near: {values: [{value: 192.0.2.11}]}
      far: {values: [{value: 192.0.2.12}]}
    rules:
      - {subnets: [127.0.0.0/8], pool: near}
      - pool: far
"""


def test_a_fleet_signs_with_one_key_set(migrated_url: str, tmp_path: pathlib.Path,
                                        start_server: StartServer) -> None:
    db = ["--database-url", migrated_url]
    folder = tmp_path / "zones"
    write_zone(folder, RECORDS, dnssec="{algorithm: ecdsap256sha256}")
    assert cli("apply", folder, *db).code == 0
    prefix = f"gs-test-{uuid.uuid4().hex}:"
    env = {"GEOSTREAM_KEY_SECRET": "fleet-secret", "REDIS_URL": REDIS_URL,
           "GEOSTREAM_REDIS_PREFIX": prefix}
    try:
        _fleet(migrated_url, tmp_path, start_server, env)
    finally:
        remove_redis_prefix(prefix, REDIS_URL)


def _fleet(migrated_url: str, tmp_path: pathlib.Path, start_server: StartServer,
           env: dict[str, str]) -> None:
    db = ["--database-url", migrated_url]
    servers = [start_server(database_url=migrated_url, env=env, wait=False,
                            args=["--no-probe"]) for _ in range(2)]
    for server in servers:
        server.wait_ready(30)
    origin = dns.name.from_text("example.com.")
    keysets = []
    for server in servers:
        reply = server.query("example.com.", "DNSKEY", want_dnssec=True)
        keysets.append(reply.find_rrset(reply.answer, origin, dns.rdataclass.IN,
                                        dns.rdatatype.DNSKEY))
    assert keysets[0] == keysets[1] and len(keysets[0]) == 2
    keys = {origin: keysets[0]}
    for server in servers:
        for name in ("www.example.com.", "geo.example.com.", "gone.example.com."):
            reply = server.query(name, "A", want_dnssec=True)
            assert check_signed(reply, keys) >= 1, reply
    with psycopg.connect(migrated_url) as conn:
        rows = conn.execute("SELECT private, public FROM dnssec_keys").fetchall()
    assert len(rows) == 2 and all(p.startswith("aesgcm:") and "PRIVATE" not in p
                                  for p, _ in rows)
    # export never carries a key
    out = tmp_path / "export"
    assert cli("export", out, *db).code == 0
    exported = "".join(p.read_text() for p in out.glob("*.yaml"))
    assert "dnssec:" in exported and "aesgcm" not in exported and "DNSKEY" not in exported
    ds = cli("dnssec", "ds", "example.com.", *db)
    assert ds.code == 0
    tags = {int(line.split("\t")[4].split()[0]) for line in ds.out.splitlines()}
    assert tags == {dns.dnssec.key_id(k) for k in keysets[0] if k.flags & 1}
