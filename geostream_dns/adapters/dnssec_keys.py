"""DNSSEC keys: made when a zone is first signed, kept, rolled, and handed to the build.

How this works: a zone's keys are `KeyRecord`s — role (ksk, zsk or csk),
algorithm, the private key as PKCS#8 PEM, a state and when its next step is
due. Two stores keep them: `FileKeyStore` (embedded mode: one JSON file per
zone under `<state-dir>/dnssec/`, mode 0600) and `PgKeyStore` (production
mode: the `dnssec_keys` table, so every server of a fleet signs with the
same keys). With `GEOSTREAM_KEY_SECRET` set, private keys are encrypted at
rest with AES-256-GCM (key derived from the secret by HKDF-SHA256); without
it they are stored as PEM (protected by the file mode or the database's own
access control). Private keys never leave through `export`, the API or logs:
only `signing()` (for the build) decrypts them.

Key states, and what each means in the zone:

| state | in DNSKEY | signs | in CDS/CDNSKEY (the parent's DS) |
| --- | --- | --- | --- |
| `published` (a new ZSK or CSK) | yes | no | a CSK: yes |
| `active` | yes | yes | KSK/CSK: yes |
| `retired` (an old ZSK or CSK) | yes | no | a CSK: yes |
| `ds-published` (a new KSK, double-DS step 1) | no | no | yes |
| `ds-retired` (an old KSK, double-DS step 3) | no | no | yes |

A rollover is the state changes of `advance`, each due once the TTLs that
protect it have passed (`next_at`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from geostream_dns.core.dnssec import ALGORITHM_NUMBERS, ZoneKey, ZoneSigning, make_dnskey, window
from geostream_dns.core.model import Dnssec
from geostream_dns.errors import GeoStreamError

SECRET_ENV = "GEOSTREAM_KEY_SECRET"
DEFAULT_DS_TTL = 86400  # how long a parent's DS is assumed cached (double-DS waits this)


class KeyError_(GeoStreamError):
    """A key cannot be read (wrong or missing GEOSTREAM_KEY_SECRET) or stored."""


@dataclass(frozen=True)
class KeyRecord:
    id: str
    zone: str
    role: str  # ksk | zsk | csk
    algorithm: str  # ecdsap256sha256 | ed25519
    private: str  # PEM, or "aesgcm:<base64 nonce+ciphertext>"
    state: str
    created: int
    next_at: int = 0  # a key in a rollover: when it entered its state (see step_due)
    wait: int = 0  # the parent's DS TTL a KSK rollover waits for
    public: str = ""  # the DNSKEY rdata as text (no secret needed to print the DS)

    def public_view(self) -> dict[str, Any]:
        """Everything but the private part (for the API and the CLI)."""
        view = asdict(self)
        del view["private"]
        return view


# -- private keys at rest --------------------------------------------------------------


def _aead(secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"geostream-dns",
               info=b"dnssec private keys").derive(secret.encode())
    return AESGCM(key)


def seal(pem: bytes, secret: str | None) -> str:
    if not secret:
        return pem.decode()
    nonce = os.urandom(12)
    return "aesgcm:" + base64.b64encode(nonce + _aead(secret).encrypt(nonce, pem, None)).decode()


def unseal(stored: str, secret: str | None) -> bytes:
    if not stored.startswith("aesgcm:"):
        return stored.encode()
    if not secret:
        raise KeyError_(f"DNSSEC private keys are encrypted: set {SECRET_ENV}")
    raw = base64.b64decode(stored[7:])
    try:
        return _aead(secret).decrypt(raw[:12], raw[12:], None)
    except Exception:  # cryptography's InvalidTag: the wrong secret
        raise KeyError_(f"DNSSEC private keys cannot be decrypted with this {SECRET_ENV}") \
            from None


def new_private(algorithm: str) -> Any:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def pem_of(private: Any) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[no-any-return]
                                 serialization.NoEncryption())


def new_record(zone: str, role: str, algorithm: str, state: str, now: int,
               secret: str | None, next_at: int = 0, wait: int = 0) -> KeyRecord:
    private = new_private(algorithm)
    key_id = base64.b32encode(os.urandom(10)).decode().lower()
    dnskey = make_dnskey(private.public_key(), ALGORITHM_NUMBERS[algorithm],
                         role in ("ksk", "csk"))
    return KeyRecord(key_id, zone, role, algorithm, seal(pem_of(private), secret), state, now,
                     next_at, wait, dnskey.to_text())


def first_keys(zone: str, dnssec: Dnssec, now: int, secret: str | None) -> list[KeyRecord]:
    """The keys a zone gets when it is first signed (in the stores' order)."""
    if dnssec.keys == "csk":
        return [new_record(zone, "csk", dnssec.algorithm, "active", now, secret)]
    return sorted([new_record(zone, "ksk", dnssec.algorithm, "active", now, secret),
                   new_record(zone, "zsk", dnssec.algorithm, "active", now, secret)],
                  key=lambda r: (r.created, r.id))


# -- keys -> what the build signs with ----------------------------------------------------

_FLAGS = {  # state -> (published, signs, parent)
    "published": (True, False, False),
    "active": (True, True, True),
    "retired": (True, False, False),
    "ds-published": (False, False, True),
    "ds-retired": (False, False, True),
}


def zone_keys(records: Iterable[KeyRecord], secret: str | None,
              private: bool = True) -> tuple[ZoneKey, ...]:
    """The keys as the signer takes them; with `private` False, the public keys only
    (no secret needed: for the DS records and the API)."""
    out = []
    for r in sorted(records, key=lambda r: (r.role, r.created, r.id)):
        key: Any = None
        if private or not r.public:
            key = serialization.load_pem_private_key(unseal(r.private, secret), None)
            dnskey = make_dnskey(key.public_key(), ALGORITHM_NUMBERS[r.algorithm],
                                 r.role in ("ksk", "csk"))
        else:
            dnskey = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, r.public)
        published, signs, parent = _FLAGS[r.state]
        if r.role == "csk":  # a CSK is in the parent's DS all the time it is published
            parent = published
        parent = parent and r.role in ("ksk", "csk")
        out.append(ZoneKey(dnskey, key if private else None, r.role, signs, published, parent))
    return tuple(out)


def signing_of(records: list[KeyRecord], secret: str | None, now: float) -> ZoneSigning | None:
    if not records:
        return None
    anchor = min(r.created for r in records)
    inception, expiration = window(anchor, now)
    return ZoneSigning(zone_keys(records, secret), inception, expiration, anchor)


def records_fingerprint(records: list[KeyRecord], now: float) -> str:
    """What a zone's signing depends on, read cheaply: key ids and states, window."""
    if not records:
        return ""
    inception = window(min(r.created for r in records), now)[0]
    return ",".join(sorted(f"{r.id}:{r.state}" for r in records)) + f"@{inception}"


class KeyStore(Protocol):
    secret: str | None

    def records(self, zone: str) -> list[KeyRecord]: ...

    def all_records(self) -> dict[str, list[KeyRecord]]: ...

    def ensure(self, zone: str, dnssec: Dnssec, now: float | None = None) -> list[KeyRecord]: ...

    def update(self, zone: str, change: Callable[[list[KeyRecord]], list[KeyRecord]]
               ) -> list[KeyRecord]: ...


# -- rollovers --------------------------------------------------------------------------


PENDING = ("published", "retired", "ds-published", "ds-retired")  # a rollover step waits


def start_rollover(records: list[KeyRecord], kind: str, now: int, ds_ttl: int,
                   secret: str | None) -> list[KeyRecord]:
    """The zone's keys with a rollover started: `kind` is "zsk" (pre-publish; a CSK
    zone rolls its CSK the same way) or "ksk" (double DS, waiting `ds_ttl` for the
    parent's new DS to reach every cache)."""
    if any(r.state in PENDING for r in records):
        raise GeoStreamError("a rollover is already running for this zone")
    active = [r for r in records if r.state == "active"]
    if not active:
        raise GeoStreamError("the zone has no DNSSEC keys yet")
    algorithm = active[0].algorithm
    roles = {r.role for r in active}
    zone = records[0].zone
    if kind == "zsk":
        role = "zsk" if "zsk" in roles else "csk"
        # a CSK is also the zone's KSK: its new DS must reach the parent (and its
        # caches) before it signs, so its first step also waits for the DS TTL
        new = new_record(zone, role, algorithm, "published", now, secret, next_at=now,
                         wait=ds_ttl if role == "csk" else 0)
    elif "ksk" in roles:
        new = new_record(zone, "ksk", algorithm, "ds-published", now, secret, next_at=now,
                         wait=ds_ttl)
    else:
        raise GeoStreamError("a zone signed with a CSK rolls it with --zsk")
    return [*records, new]


def step_due(r: KeyRecord, dnskey_ttl: int, max_ttl: int) -> int:
    """When the key's next rollover step is due (0: none). `next_at` holds the time
    the key entered its state; the wait is what protects that state:

    * published -> active (and the old key retired): the DNSKEY TTL, so every
      cache holds the new key before anything is signed with it (for a CSK, also
      the parent's DS TTL: its DS is published from the start);
    * retired -> removed: the largest TTL of the zone, so no cached signature
      made by the old key is left;
    * ds-published -> active (the old KSK leaves DNSKEY): the parent's DS TTL;
    * ds-retired -> removed (its DS leaves CDS): the DNSKEY TTL.
    """
    if r.state not in PENDING:
        return 0
    wait = {"published": max(dnskey_ttl, r.wait), "retired": max_ttl,
            "ds-published": r.wait, "ds-retired": dnskey_ttl}[r.state]
    return r.next_at + wait


def advance(records: list[KeyRecord], now: int, dnskey_ttl: int,
            max_ttl: int) -> tuple[list[KeyRecord], list[str]]:
    """The next step of each rollover whose time has come; (keys, steps taken)."""
    out = list(records)
    steps: list[str] = []
    for i, r in enumerate(records):
        due = step_due(r, dnskey_ttl, max_ttl)
        if not due or due > now:
            continue
        olds = [j for j, o in enumerate(out) if o.role == r.role and o.id != r.id
                and o.state == "active"]
        if r.state in ("published", "ds-published"):  # the new key takes over
            out[i] = replace(r, state="active", next_at=0)
            for j in olds:
                out[j] = replace(out[j], state="retired" if r.state == "published"
                                 else "ds-retired", next_at=now)
            steps.append(f"{r.role} {r.id} active")
        else:
            out[i] = replace(r, state="removed")
            steps.append(f"{r.role} {r.id} removed")
    return [r for r in out if r.state != "removed"], steps


def rollover_view(records: list[KeyRecord], secret: str | None) -> list[dict[str, Any]]:
    """Each key's public face: id, role, algorithm, state, key tag, next step."""
    ordered = sorted(records, key=lambda r: (r.role, r.created, r.id))
    out = []
    for r, key in zip(ordered, zone_keys(ordered, secret, private=False), strict=True):
        view = r.public_view()
        view["tag"] = key.tag
        out.append(view)
    return out


# -- the stores ---------------------------------------------------------------------------


class FileKeyStore:
    """Keys in `<state-dir>/dnssec/<zone>.json` (mode 0600): embedded mode."""

    def __init__(self, state_dir: pathlib.Path, secret: str | None = None) -> None:
        self.folder = state_dir / "dnssec"
        self.secret = secret if secret is not None else os.environ.get(SECRET_ENV) or None

    def _path(self, zone: str) -> pathlib.Path:
        return self.folder / f"{zone.rstrip('.') or 'root'}.json"

    def records(self, zone: str) -> list[KeyRecord]:
        try:
            raw = json.loads(self._path(zone).read_text())
        except FileNotFoundError:
            return []
        return [KeyRecord(**item) for item in raw["keys"]]

    def write(self, zone: str, records: list[KeyRecord]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(zone)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"zone": zone, "keys": [asdict(r) for r in records]}, out, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: the workers of a server share the state dir."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def ensure(self, zone: str, dnssec: Dnssec, now: float | None = None) -> list[KeyRecord]:
        records = self.records(zone)
        if records:
            return records
        with self._locked():
            records = self.records(zone)  # made by another worker meanwhile?
            if not records:
                records = first_keys(zone, dnssec, int(now if now is not None else time.time()),
                                     self.secret)
                self.write(zone, records)
        return records

    def all_records(self) -> dict[str, list[KeyRecord]]:
        if not self.folder.is_dir():
            return {}
        out = {}
        for path in sorted(self.folder.glob("*.json")):
            raw = json.loads(path.read_text())
            out[raw["zone"]] = [KeyRecord(**item) for item in raw["keys"]]
        return out

    def update(self, zone: str, change: Callable[[list[KeyRecord]], list[KeyRecord]]
               ) -> list[KeyRecord]:
        """Apply `change(records) -> records` and store the result."""
        with self._locked():
            before = self.records(zone)
            records = change(before)
            if records != before:
                self.write(zone, records)
        return records


def parse_zone(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()


_COLUMNS = "id, zone, role, algorithm, private, state, created, next_at, wait, public"


class PgKeyStore:
    """Keys in PostgreSQL (`dnssec_keys`): production mode, one set for the fleet.

    Making a zone's first keys and every rollover step run under a per-zone
    advisory lock, so two servers never make two key sets. Each successful read
    is mirrored to the state dir (mode 0600), so a server restarted while the
    database is away still signs with the fleet's keys."""

    def __init__(self, url: str, state_dir: pathlib.Path, secret: str | None = None) -> None:
        from geostream_dns.adapters.pg import Database

        self.secret = secret if secret is not None else os.environ.get(SECRET_ENV) or None
        self.mirror = FileKeyStore(state_dir, self.secret)
        self.url = url
        self._db: Database | None = None

    def _database(self) -> Any:
        from geostream_dns.adapters.pg import Database

        if self._db is None:
            self._db = Database(self.url, min_size=0, max_size=2)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def _rows(rows: Iterable[tuple[Any, ...]]) -> list[KeyRecord]:
        return [KeyRecord(*row) for row in rows]

    def records(self, zone: str) -> list[KeyRecord]:
        return self.all_records().get(zone, [])

    def all_records(self) -> dict[str, list[KeyRecord]]:
        from geostream_dns.errors import StoreUnavailable

        try:
            with self._database().transaction() as conn:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM dnssec_keys "
                                    "ORDER BY zone, created, id").fetchall()
        except StoreUnavailable:
            return self.mirror.all_records()
        out: dict[str, list[KeyRecord]] = {}
        for record in self._rows(rows):
            out.setdefault(record.zone, []).append(record)
        for zone, records in out.items():
            if self.mirror.records(zone) != records:
                self.mirror.write(zone, records)
        return out

    def _locked(self, conn: Any, zone: str) -> list[KeyRecord]:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("dnssec:" + zone,))
        return self._rows(conn.execute(f"SELECT {_COLUMNS} FROM dnssec_keys WHERE zone = %s "
                                       "ORDER BY created, id", (zone,)).fetchall())

    def _replace(self, conn: Any, zone: str, records: list[KeyRecord]) -> None:
        conn.execute("DELETE FROM dnssec_keys WHERE zone = %s", (zone,))
        for r in records:
            conn.execute(f"INSERT INTO dnssec_keys ({_COLUMNS}) VALUES "
                         "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                         (r.id, r.zone, r.role, r.algorithm, r.private, r.state, r.created,
                          r.next_at, r.wait, r.public))

    def ensure(self, zone: str, dnssec: Dnssec, now: float | None = None) -> list[KeyRecord]:
        with self._database().transaction() as conn:
            records = self._locked(conn, zone)
            if not records:
                records = first_keys(zone, dnssec, int(now if now is not None else time.time()),
                                     self.secret)
                self._replace(conn, zone, records)
        self.mirror.write(zone, records)
        return records

    def update(self, zone: str, change: Callable[[list[KeyRecord]], list[KeyRecord]]
               ) -> list[KeyRecord]:
        with self._database().transaction() as conn:
            before = self._locked(conn, zone)
            records = change(before)
            if records != before:
                self._replace(conn, zone, records)
        self.mirror.write(zone, records)
        return records


def make_key_store(database_url: str | None, state_dir: pathlib.Path) -> KeyStore:
    if database_url:
        return PgKeyStore(database_url, state_dir)
    return FileKeyStore(state_dir)


def advance_all(store: KeyStore, now: float,
                ttls: Callable[[str], tuple[int, int]]) -> list[str]:
    """Take every rollover step that is due; the steps taken ("zone: step").
    `ttls(zone)` is the zone's (DNSKEY TTL, largest TTL)."""
    taken: list[str] = []
    for zone, records in store.all_records().items():
        dnskey_ttl, max_ttl = ttls(zone)
        if not any(0 < step_due(r, dnskey_ttl, max_ttl) <= now for r in records):
            continue
        steps: list[str] = []

        def change(current: list[KeyRecord], ttls: tuple[int, int] = (dnskey_ttl, max_ttl),
                   steps: list[str] = steps) -> list[KeyRecord]:
            out, made = advance(current, int(now), *ttls)
            steps[:] = made
            return out

        store.update(zone, change)
        taken += [f"{zone}: {step}" for step in steps]
    return taken
