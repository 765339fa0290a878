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
| `published` (a new ZSK) | yes | no | no |
| `active` | yes | yes | KSK/CSK: yes |
| `retired` (an old ZSK) | yes | no | no |
| `ds-published` (a new KSK, double-DS step 1) | no | no | yes |
| `ds-retired` (an old KSK, double-DS step 3) | no | no | yes |

A rollover is the state changes of `advance`, each due once the TTLs that
protect it have passed (`next_at`).
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

import dns.name
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
    next_at: int = 0  # when the next rollover step of this key is due (0: none)
    wait: int = 0  # the DS TTL a KSK rollover waits for

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
    return KeyRecord(key_id, zone, role, algorithm, seal(pem_of(private), secret), state, now,
                     next_at, wait)


def first_keys(zone: str, dnssec: Dnssec, now: int, secret: str | None) -> list[KeyRecord]:
    """The keys a zone gets when it is first signed."""
    if dnssec.keys == "csk":
        return [new_record(zone, "csk", dnssec.algorithm, "active", now, secret)]
    return [new_record(zone, "ksk", dnssec.algorithm, "active", now, secret),
            new_record(zone, "zsk", dnssec.algorithm, "active", now, secret)]


# -- keys -> what the build signs with ----------------------------------------------------

_FLAGS = {  # state -> (published, signs, parent)
    "published": (True, False, False),
    "active": (True, True, True),
    "retired": (True, False, False),
    "ds-published": (False, False, True),
    "ds-retired": (False, False, True),
}


def zone_keys(records: Iterable[KeyRecord], secret: str | None) -> tuple[ZoneKey, ...]:
    out = []
    for r in sorted(records, key=lambda r: (r.role, r.created, r.id)):
        private = serialization.load_pem_private_key(unseal(r.private, secret), None)
        public = private.public_key()
        published, signs, parent = _FLAGS[r.state]
        parent = parent and r.role in ("ksk", "csk")
        dnskey = make_dnskey(public, ALGORITHM_NUMBERS[r.algorithm], r.role in ("ksk", "csk"))
        out.append(ZoneKey(dnskey, private, r.role, signs, published, parent))
    return tuple(out)


def signing_of(records: list[KeyRecord], secret: str | None, now: float) -> ZoneSigning | None:
    if not records:
        return None
    anchor = min(r.created for r in records)
    inception, expiration = window(anchor, now)
    return ZoneSigning(zone_keys(records, secret), inception, expiration, anchor)


# -- rollovers --------------------------------------------------------------------------


def start_rollover(records: list[KeyRecord], kind: str, now: int, dnskey_ttl: int,
                   ds_ttl: int, secret: str | None) -> list[KeyRecord]:
    """The zone's keys with a rollover started: `kind` is "zsk" (pre-publish; a CSK
    zone rolls its CSK the same way) or "ksk" (double DS)."""
    if any(r.next_at for r in records):
        raise GeoStreamError("a rollover is already running for this zone")
    active = [r for r in records if r.state == "active"]
    if not active:
        raise GeoStreamError("the zone has no active key")
    algorithm = active[0].algorithm
    roles = {r.role for r in active}
    if kind == "zsk":
        role = "zsk" if "zsk" in roles else "csk"
        new = new_record(records[0].zone, role, algorithm, "published", now, secret,
                         next_at=now + dnskey_ttl)
    elif "ksk" in roles:
        new = new_record(records[0].zone, "ksk", algorithm, "ds-published", now, secret,
                         next_at=now + ds_ttl, wait=dnskey_ttl)
    else:
        raise GeoStreamError("a zone signed with a CSK rolls it with --zsk")
    return [*records, new]


def advance(records: list[KeyRecord], now: int, max_ttl: int) -> tuple[list[KeyRecord], list[str]]:
    """The next step of each rollover whose time has come; (keys, steps taken)."""
    out = list(records)
    steps: list[str] = []
    for i, r in enumerate(records):
        if not r.next_at or r.next_at > now:
            continue
        olds = [j for j, o in enumerate(out) if o.role == r.role and o.id != r.id
                and o.state == "active"]
        if r.state == "published":  # pre-publish: the new key signs, the old retires
            out[i] = replace(r, state="active", next_at=0)
            for j in olds:
                out[j] = replace(out[j], state="retired", next_at=now + max_ttl)
            steps.append(f"{r.role} {r.id} active")
        elif r.state == "retired":
            out[i] = replace(r, state="removed")
            steps.append(f"{r.role} {r.id} removed")
        elif r.state == "ds-published":  # double DS: the parent has both DS; swap keys
            out[i] = replace(r, state="active", next_at=0)
            for j in olds:
                out[j] = replace(out[j], state="ds-retired", next_at=now + r.wait)
            steps.append(f"{r.role} {r.id} active")
        elif r.state == "ds-retired":
            out[i] = replace(r, state="removed")
            steps.append(f"{r.role} {r.id} removed")
    return [r for r in out if r.state != "removed"], steps


def rollover_view(records: list[KeyRecord], secret: str | None) -> list[dict[str, Any]]:
    """Each key's public face: id, role, algorithm, state, key tag, next step."""
    ordered = sorted(records, key=lambda r: (r.role, r.created, r.id))
    out = []
    for r, key in zip(ordered, zone_keys(ordered, secret), strict=True):
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
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"zone": zone, "keys": [asdict(r) for r in records]}, out, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def ensure(self, zone: str, dnssec: Dnssec, now: float | None = None) -> list[KeyRecord]:
        records = self.records(zone)
        if not records:
            records = first_keys(zone, dnssec, int(now if now is not None else time.time()),
                                 self.secret)
            self.write(zone, records)
        return records

    def zones(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(json.loads(p.read_text())["zone"] for p in self.folder.glob("*.json"))

    def update(self, zone: str, change: Any) -> list[KeyRecord]:
        """Apply `change(records) -> records` and store the result."""
        records = change(self.records(zone))
        self.write(zone, records)
        return records  # type: ignore[no-any-return]


def parse_zone(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()
