"""DNSSEC keys at rest and in the build: the state-dir store (mode 0600,
AES-GCM with GEOSTREAM_KEY_SECRET), PostgreSQL shared by a fleet (one key set
however many servers ask at once), signed zones through the answer cache's
format, renewal of signatures at 7 days left, and rollover steps timed by TTLs."""

from __future__ import annotations

import pathlib
import stat
import threading
import time

import dns.name
import dns.rdatatype
import pytest

from geostream_dns.adapters.builder import SnapshotBuilder
from geostream_dns.adapters.dnssec_keys import (
    FileKeyStore,
    KeyError_,
    PgKeyStore,
    advance,
    signing_of,
    start_rollover,
    zone_keys,
)
from geostream_dns.adapters.zones_folder import ZonesFolder
from geostream_dns.core import cachefmt
from geostream_dns.core.build import compile_unit, unit_key
from geostream_dns.core.dnssec import INCEPTION_BACK, RENEW_LEFT, STEP, VALIDITY, window
from geostream_dns.core.model import Dnssec
from geostream_dns.core.snapshot import EMPTY
from geostream_dns.core.world import World
from tests.core.helpers import ask, query
from tests.dnssec.signing import check_signed, dnskeys, signing_for
from tests.dnssec.test_signing import ORIGIN, signed_zone
from tests.postgres.conftest import cli
from tests.support.zones import write_zone

ZONE = "example.com."


def test_file_store_keeps_keys_private(tmp_path: pathlib.Path) -> None:
    store = FileKeyStore(tmp_path, secret="")
    made = store.ensure(ZONE, Dnssec())
    assert sorted(r.role for r in made) == ["ksk", "zsk"]
    assert store.ensure(ZONE, Dnssec()) == made
    path = tmp_path / "dnssec" / "example.com.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in path.read_text()  # no secret given: PEM
    csk = FileKeyStore(tmp_path / "other", secret="").ensure(ZONE, Dnssec("ed25519", "csk"))
    assert [(r.role, r.algorithm) for r in csk] == [("csk", "ed25519")]


def test_private_keys_encrypted_at_rest_with_a_secret(tmp_path: pathlib.Path) -> None:
    store = FileKeyStore(tmp_path, secret="s3cret")
    made = store.ensure(ZONE, Dnssec())
    text = (tmp_path / "dnssec" / "example.com.json").read_text()
    assert "PRIVATE KEY" not in text and text.count("aesgcm:") == 2
    keys = zone_keys(made, "s3cret")
    assert len(keys) == 2 and all(k.private is not None for k in keys)
    with pytest.raises(KeyError_, match="cannot be decrypted"):
        zone_keys(made, "wrong")
    with pytest.raises(KeyError_, match="GEOSTREAM_KEY_SECRET"):
        zone_keys(made, None)


def test_signature_window_and_renewal() -> None:
    anchor = 1_800_000_000
    inception, expiration = window(anchor, anchor)
    assert inception == anchor - INCEPTION_BACK and expiration - inception == VALIDITY
    # the same window until 7 days are left, then the next one, from 1 hour back
    assert window(anchor, anchor + STEP - 1) == (inception, expiration)
    assert expiration - (anchor + STEP) == RENEW_LEFT
    later = window(anchor, anchor + STEP)
    assert later[0] == anchor + STEP - INCEPTION_BACK and later[1] - later[0] == VALIDITY


def test_builder_resigns_when_seven_days_are_left(tmp_path: pathlib.Path) -> None:
    zones = tmp_path / "zones"
    write_zone(zones, "www: {type: A, value: 192.0.2.1}\n", dnssec="{algorithm: ed25519}")
    clock = [1_800_000_000.0]
    folder = ZonesFolder([zones], tmp_path / "state")
    folder.poll()
    keys = FileKeyStore(tmp_path / "state", secret="")
    builder = SnapshotBuilder(folder, keys=keys, wall=lambda: clock[0])
    sources, _ = folder.sources()
    first, _ = builder.build(sources, 1, EMPTY)
    signer = first.zones[ORIGIN].signer
    assert signer is not None and signer.signing.inception == int(clock[0]) - INCEPTION_BACK
    clock[0] += STEP - 60
    assert not builder.resign_due()
    clock[0] += 60  # 7 days of validity left: due
    assert builder.resign_due()
    second, report = builder.build(sources, 1, first)
    assert report.built == 1  # recompiled, not reused
    renewed = second.zones[ORIGIN].signer
    assert renewed is not None and renewed.signing.inception == int(clock[0]) - INCEPTION_BACK
    reply = ask(World.create(second), query("www.example.com.", "A", do=True))
    sig = next(r for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG)[0]
    assert sig.inception == int(clock[0]) - INCEPTION_BACK
    assert sig.expiration - sig.inception == VALIDITY
    assert not builder.resign_due()


def test_signed_zone_through_the_answer_cache_format() -> None:
    zone = signed_zone()
    signing = signing_for([zone])[ZONE]
    unit = compile_unit(zone, unit_key("d", frozenset(), signing), frozenset(), None, signing)
    data = cachefmt.encode(unit)
    assert b"PRIVATE" not in data
    loaded = cachefmt.decode(data, lambda: zone, None, signing)
    assert {k: (a.signed.body if a.signed else None) for k, a in loaded.answers.items()} == \
        {k: (a.signed.body if a.signed else None) for k, a in unit.answers.items()}
    with pytest.raises(cachefmt.CacheFormatError, match="no keys"):
        cachefmt.decode(data, lambda: zone)
    from geostream_dns.core.build import assemble
    world = World.create(assemble([loaded], 1))
    keys = {ORIGIN: dnskeys(ZONE, signing)}
    for name, rdtype in (("www.example.com.", "A"), ("nope.example.com.", "A"),
                         ("x.wild.example.com.", "TXT"), ("example.com.", "DNSKEY")):
        assert check_signed(ask(world, query(name, rdtype, do=True)), keys) >= 1


def test_rollover_steps_wait_for_their_ttls(tmp_path: pathlib.Path) -> None:
    store = FileKeyStore(tmp_path, secret="")
    now = 1_800_000_000
    records = start_rollover(store.ensure(ZONE, Dnssec(), now), "zsk", now, 86400, None)
    assert sorted(r.state for r in records) == ["active", "active", "published"]
    with pytest.raises(Exception, match="already running"):
        start_rollover(records, "zsk", now, 86400, None)
    same, steps = advance(records, now + 299, 300, 3600)
    assert same == records and not steps  # the DNSKEY TTL has not passed
    records, steps = advance(records, now + 300, 300, 3600)
    assert sorted((r.role, r.state) for r in records) == [
        ("ksk", "active"), ("zsk", "active"), ("zsk", "retired")]
    signing = signing_of(records, None, now + 300)
    assert signing is not None
    assert len([k for k in signing.keys if k.role == "zsk" and k.published]) == 2
    assert len([k for k in signing.keys if k.role == "zsk" and k.signs]) == 1
    records, steps = advance(records, now + 300 + 3600, 300, 3600)
    assert sorted(r.state for r in records) == ["active", "active"] and steps


def test_fleet_servers_make_one_key_set_in_postgresql(tmp_path: pathlib.Path,
                                                       migrated_url: str) -> None:
    stores = [PgKeyStore(migrated_url, tmp_path / f"s{i}", secret="fleet") for i in range(4)]
    results: list[list] = [[] for _ in stores]

    def make(i: int) -> None:
        results[i] = stores[i].ensure(ZONE, Dnssec())

    threads = [threading.Thread(target=make, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r == results[0] for r in results) and len(results[0]) == 2
    # every server signs with the same keys; each keeps a private mirror for outages
    tags = {tuple(k.tag for k in zone_keys(s.records(ZONE), "fleet")) for s in stores}
    assert len(tags) == 1
    mirror = tmp_path / "s0" / "dnssec" / "example.com.json"
    assert stat.S_IMODE(mirror.stat().st_mode) == 0o600 and "PRIVATE" not in mirror.read_text()
    # the command line reads the same keys; export never carries a private part
    ds = cli("dnssec", "ds", ZONE, "--database-url", migrated_url)
    assert ds.code == 0 and ds.out.count("\tDS\t") == 1
    for s in stores:
        s.close()


def test_dnssec_setting_round_trips_as_a_zone_setting() -> None:
    from geostream_dns.config.document import document_yaml, zone_document
    from geostream_dns.config.loader import load_zone_text

    zone = signed_zone("ed25519", "csk")
    text = document_yaml(zone_document(zone))
    assert "dnssec:" in text and "PRIVATE" not in text
    assert load_zone_text(text, "zones/example.com.yaml").dnssec == zone.dnssec
    assert dns.name.from_text(ZONE) == ORIGIN


def test_a_zone_whose_keys_cannot_be_read_keeps_what_was_served(
        tmp_path: pathlib.Path) -> None:
    zones = tmp_path / "zones"
    write_zone(zones, "www: {type: A, value: 192.0.2.1}\n", dnssec="{algorithm: ed25519}")
    write_zone(zones, "www: {type: A, value: 192.0.2.2}\n", origin="example.org.")
    folder = ZonesFolder([zones], tmp_path / "state")
    folder.poll()
    sources, _ = folder.sources()
    good = SnapshotBuilder(folder, keys=FileKeyStore(tmp_path / "state", secret="right"))
    first, _ = good.build(sources, 1, EMPTY)
    assert first.zones[ORIGIN].signer is not None
    wrong = SnapshotBuilder(folder, keys=FileKeyStore(tmp_path / "state", secret="wrong"))
    second, report = wrong.build(sources, 2, first)
    assert report.invalid == 1 and "decrypted" in str(report.problems[0])
    assert second.units[ZONE] is first.units[ZONE]  # still signed, as served
    assert dns.name.from_text("example.org.") in second.zones
    third, report = wrong.build(sources, 3, EMPTY)  # nothing served yet: not served unsigned
    assert ORIGIN not in third.zones and report.invalid == 1


def test_workers_sharing_a_state_dir_make_one_key_set(tmp_path: pathlib.Path) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        made = pool.map(_ensure_in_worker, [str(tmp_path)] * 4)
    assert len(set(made)) == 1
    assert tuple(sorted(r.id for r in FileKeyStore(tmp_path, "").records(ZONE))) == made[0]


def _ensure_in_worker(folder: str) -> tuple[str, ...]:
    records = FileKeyStore(pathlib.Path(folder), secret="").ensure(ZONE, Dnssec())
    return tuple(sorted(r.id for r in records))


def test_a_zone_no_longer_signed_is_served_unsigned_and_reused(tmp_path: pathlib.Path) -> None:
    zones = tmp_path / "zones"
    write_zone(zones, "www: {type: A, value: 192.0.2.1}\n", dnssec="{algorithm: ed25519}")
    folder = ZonesFolder([zones], tmp_path / "state")
    folder.poll()
    builder = SnapshotBuilder(folder, keys=FileKeyStore(tmp_path / "state", secret=""))
    signed, _ = builder.build(folder.sources()[0], 1, EMPTY)
    assert signed.zones[ORIGIN].signer is not None
    time.sleep(1.1)  # a new modification time for the folder's poll
    write_zone(zones, "www: {type: A, value: 192.0.2.1}\n")
    folder.poll()
    sources = folder.sources()[0]
    unsigned, report = builder.build(sources, 2, signed)
    assert unsigned.zones[ORIGIN].signer is None and report.built == 1
    reply = ask(World.create(unsigned), query("www.example.com.", "A", do=True))
    assert [r.rdtype for r in reply.answer] == [dns.rdatatype.A]
    again, report = builder.build(sources, 3, unsigned)  # nothing changed: reused
    assert report.reused == 1 and report.built == 0


@pytest.mark.parametrize(("scheme", "kind"), [("csk", "zsk"), ("ksk-zsk", "zsk"),
                                              ("ksk-zsk", "ksk")])
def test_every_rollover_step_keeps_the_chain_of_trust(tmp_path: pathlib.Path, scheme: str,
                                                      kind: str) -> None:
    """At every step, the DNSKEY set is signed by a key the parent's DS names —
    whether the parent still has the DS of the step before or already the new one —
    and every ZSK that signs is in the DNSKEY set."""
    from geostream_dns.core.dnssec import ds_records

    store = FileKeyStore(tmp_path, secret="")
    now = 1_800_000_000
    records = store.ensure(ZONE, Dnssec("ecdsap256sha256", scheme), now)  # type: ignore[arg-type]
    records = start_rollover(records, kind, now, 600, None)
    previous_ds = None
    for t in range(now, now + 20_000, 100):
        records, _ = advance(records, t, 300, 3600)
        signing = signing_of(records, None, t)
        assert signing is not None
        ds = {d.key_tag for d in ds_records(ORIGIN, signing.keys)}
        published = {k.tag for k in signing.keys if k.published}
        key_signers = {k.tag for k in signing.keys if k.signs and k.role in ("ksk", "csk")}
        zone_signers = {k.tag for k in signing.keys if k.signs and k.role in ("zsk", "csk")}
        assert key_signers & ds and zone_signers <= published and key_signers <= published
        if previous_ds is not None:
            assert key_signers & previous_ds, f"t+{t - now}: the parent's old DS is orphaned"
        previous_ds = ds
    assert len(records) == (1 if scheme == "csk" else 2)  # the rollover finished
    assert all(r.state == "active" for r in records)
