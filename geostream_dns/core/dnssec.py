"""Online DNSSEC signing: keys as the build gets them, RRSIGs, compact denial.

How this works: the adapters read (or make) a zone's keys and pick the
signature window for the current time (`window`); the build gets them as a
`ZoneSigning` and compiles the zone with a `Signer` on its tree. The signer
adds the keys (DNSKEY) and what the parent needs (CDS, CDNSKEY) to the apex,
and every answer of the zone gets a second rendering for DO=1 queries
(`signed_sections`): each RRset followed by its RRSIG, and denial by the
compact method of RFC 9824 — a name that does not exist is answered NOERROR
with one NSEC owned by the name itself whose next name is its immediate
successor (`\\000.name`) and whose bitmap says RRSIG, NSEC and NXNAME; a name
without the type asked gets an NSEC with the types it has. Nothing else
exists between a name and its successor, so these NSECs reveal no other name
(no zone walking). Names a wildcard synthesizes are signed as if they
existed, so no wildcard proof is needed.

Signatures are made once: static answers at build time, each routed
rendering when it is first made (it is memoized), negative answers when
first asked (memoized with the answer). A signer keeps the RRSIGs it made
(bounded), so an RRset shared by many answers (the SOA of every negative
answer) is signed once per build.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.RRSIG
import dns.rdtypes.dnskeybase
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from geostream_dns.core.render import RRs

ALGORITHM_NUMBERS: Mapping[str, int] = {"ecdsap256sha256": 13, "ed25519": 15}

VALIDITY = 14 * 86400  # a signature is valid this long from its inception
INCEPTION_BACK = 3600  # inception this far before signing (clocks that lag)
RENEW_LEFT = 7 * 86400  # signatures are renewed when this much validity is left
# Windows follow each other every STEP seconds from a zone's signing anchor: at
# the moment a window is replaced, the old one has exactly RENEW_LEFT left.
STEP = VALIDITY - RENEW_LEFT - INCEPTION_BACK

NXNAME = 128  # RFC 9824: the meta type that says "this name does not exist"
RRSIG = dns.rdatatype.RRSIG
NSEC = dns.rdatatype.NSEC
DNSKEY = dns.rdatatype.DNSKEY
CDS = dns.rdatatype.CDS
CDNSKEY = dns.rdatatype.CDNSKEY
DS = dns.rdatatype.DS
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
KEY_RRSETS = frozenset({DNSKEY, CDS, CDNSKEY})  # signed by the KSK (or CSK)

SIGNATURE_LIMIT = 100_000  # RRSIG sets a signer keeps


def window(anchor: int, now: float) -> tuple[int, int]:
    """(inception, expiration) of the signatures to make at `now` for a zone whose
    signing started at `anchor`: the same for every server of a fleet."""
    steps = max(0, int((now - anchor) // STEP))
    start = anchor + steps * STEP
    return start - INCEPTION_BACK, start - INCEPTION_BACK + VALIDITY


def renewal_due(anchor: int, inception: int, now: float) -> bool:
    """True when signatures made with `inception` are due for renewal."""
    return window(anchor, now)[0] != inception


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """One key of a zone. `private` is a `cryptography` private key (None for a
    key only published); `signs` says whether it makes signatures now."""

    dnskey: dns.rdata.Rdata  # a DNSKEY rdata
    private: Any
    role: str  # "ksk", "zsk" or "csk"
    signs: bool
    published: bool = True
    parent: bool = False  # a KSK/CSK the parent's DS should (or may still) name: in CDS

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ZoneSigning:
    """What a zone is signed with for one build: its keys and the signature window."""

    keys: tuple[ZoneKey, ...]
    inception: int
    expiration: int
    anchor: int = 0  # the zone's signing start: windows are counted from it

    def key_text(self) -> str:
        """What the compiled zone depends on: the keys (by tag and state) and window."""
        parts = [f"{k.role}{k.tag}:{int(k.signs)}{int(k.published)}{int(k.parent)}"
                 for k in self.keys]
        return f"dnssec:{','.join(parts)}@{self.inception}"


class ZoneFinder(Protocol):
    def find_zone(self, name: dns.name.Name) -> Any: ...


class Signer:
    """Signs one zone's RRsets with its keys for one window; keeps what it signed."""

    __slots__ = ("origin", "signing", "zsks", "ksks", "_cache", "made", "_signer_wire")

    def __init__(self, origin: dns.name.Name, signing: ZoneSigning) -> None:
        self.origin = origin
        self.signing = signing
        self.zsks = [k for k in signing.keys if k.signs and k.role in ("zsk", "csk")
                     and k.private is not None]
        self.ksks = [k for k in signing.keys if k.signs and k.role in ("ksk", "csk")
                     and k.private is not None]
        if not self.zsks or not self.ksks:
            raise ValueError(f"{origin}: no key to sign with")
        self._cache: dict[tuple[Any, ...], tuple[Any, RRs]] = {}
        self._signer_wire = _canonical(origin)
        self.made = 0  # signatures made (for the build's figures)

    def apex_rrsets(self, ttl: int) -> dict[int, tuple[dns.rdata.Rdata, ...]]:
        """DNSKEY, CDS and CDNSKEY of the apex (CDS/CDNSKEY name the keys the
        parent's DS should name)."""
        keys = self.signing.keys
        published = tuple(k.dnskey for k in keys if k.published)
        parent = [k for k in keys if k.parent]
        cds = tuple(dns.dnssec.make_cds(self.origin, k.dnskey, "SHA256")  # type: ignore[arg-type]
                    for k in parent)
        wires = [k.dnskey.to_wire() or b"" for k in parent]
        cdnskey = tuple(dns.rdata.from_wire(dns.rdataclass.IN, CDNSKEY, w, 0, len(w))
                        for w in wires)
        out: dict[int, tuple[dns.rdata.Rdata, ...]] = {DNSKEY: published}
        if parent:
            out[CDS] = cds
            out[CDNSKEY] = cdnskey
        return out

    def rrsig(self, rrs: RRs) -> RRs:
        """The RRSIG set covering `rrs` (made once, then kept)."""
        # Keyed by the records' identity (cheap: hashing names and rdata is not); the
        # entry holds the records, so the identity cannot be reused while it is kept.
        # A key that misses (the same data in another object) only signs again.
        rdatas = rrs.rdatas
        key = (rrs.owner.labels, rrs.rdtype, rrs.ttl, id(rdatas))
        cached = self._cache.get(key)
        if cached is not None and cached[0] is rdatas:
            return cached[1]
        sigs = tuple(self._sign(rrs, k)
                     for k in (self.ksks if rrs.rdtype in KEY_RRSETS else self.zsks))
        self.made += len(sigs)
        found = RRs(rrs.owner, RRSIG, rrs.ttl, sigs)
        if len(self._cache) >= SIGNATURE_LIMIT:
            self._cache.clear()
        self._cache[key] = (rdatas, found)
        return found

    def _sign(self, rrs: RRs, key: ZoneKey) -> dns.rdata.Rdata:
        """One RRSIG (RFC 4034 §3.1.8.1), made by hand: the signed data is the RRSIG
        RDATA without its signature, then each record in canonical form and order."""
        signing = self.signing
        owner = rrs.owner
        labels = len(owner) - 1 - (1 if owner.is_wild() else 0)
        algorithm = key.dnskey.algorithm  # type: ignore[attr-defined]
        tag = key.tag
        head = _RRSIG_HEAD.pack(rrs.rdtype, algorithm, labels, rrs.ttl, signing.expiration,
                                signing.inception, tag) + self._signer_wire
        fixed = _canonical(owner) + _RR_HEAD.pack(rrs.rdtype, 1, rrs.ttl)
        records = sorted(r.to_digestable(self.origin) for r in rrs.rdatas)
        data = head + b"".join(fixed + len(r).to_bytes(2, "big") + r
                               for i, r in enumerate(records)
                               if i == 0 or r != records[i - 1])  # duplicates once
        signature = _raw_signature(key.private, algorithm, data)
        return dns.rdtypes.ANY.RRSIG.RRSIG(
            dns.rdataclass.IN, RRSIG, rrs.rdtype, algorithm, labels, rrs.ttl,
            signing.expiration, signing.inception, tag, self.origin, signature)

    def nsec(self, owner: dns.name.Name, types: set[int], ttl: int) -> RRs:
        """A compact-denial NSEC at `owner`: next name `\\000.owner`, `types` + RRSIG, NSEC."""
        try:
            after = dns.name.Name((b"\x00", *owner.labels))
        except dns.name.NameTooLong:
            after = owner  # a name of full length has no successor below it
        bitmap = dns.rdtypes.ANY.NSEC.Bitmap.from_rdtypes(
            [dns.rdatatype.RdataType.make(t) for t in types | {RRSIG, NSEC}])
        rdata = dns.rdtypes.ANY.NSEC.NSEC(dns.rdataclass.IN, NSEC, after, bitmap)
        return RRs(owner, NSEC, ttl, (rdata,))


@dataclass(frozen=True, slots=True)
class SignedSections:
    rcode: int
    aa: bool
    answer: list[RRs]
    authority: list[RRs]
    additional: list[RRs]


def node_types(tree: Any, name: dns.name.Name) -> set[int] | None:
    """The types `name` has in the zone (a wildcard's for a synthesized name; none
    for an empty non-terminal); None when the name does not exist."""
    from geostream_dns.core.lookup import _wildcard  # the lookup's own wildcard rule

    node = tree.nodes.get(name)
    if node is None:
        node = _wildcard(tree, name)
        if node is None:
            return None
    types: set[int] = set()
    for rdtype in node:
        if rdtype == ALIAS_TYPE:
            types.update((dns.rdatatype.A, dns.rdatatype.AAAA))
        else:
            types.add(int(rdtype))
    return types


ALIAS_TYPE = 65401  # snapshot.ALIAS (the snapshot checks they agree)


def signed_sections(finder: ZoneFinder, qname: dns.name.Name, qtype: int, res: Any,
                    answer_rrs: list[RRs]) -> SignedSections | None:
    """The sections of the DO=1 rendering of a resolution; None when its zone is
    not signed."""
    tree = res.zone
    signer: Signer | None = tree.signer if tree is not None else None
    if signer is None:
        return None
    answer: list[RRs] = []
    for rrs in answer_rrs:
        answer.append(rrs)
        owner_tree = tree if rrs.owner.is_subdomain(tree.origin) else finder.find_zone(rrs.owner)
        owner_signer = getattr(owner_tree, "signer", None)
        if owner_tree is not tree and owner_tree is not None:
            owner_signer = owner_tree.signer
        if owner_signer is not None:
            answer.append(owner_signer.rrsig(rrs))
    # The name the answer ends at: the last CNAME's target, when a chain stops there.
    last = qname
    if answer_rrs and answer_rrs[-1].rdtype == CNAME and qtype != CNAME:
        last = answer_rrs[-1].rdatas[0].target  # type: ignore[attr-defined]
    rcode = res.rcode
    authority: list[RRs] = []
    soa = next((rrs for rrs in res.authority if rrs.rdtype == SOA), None)
    if rcode == 3:  # NXDOMAIN: compact denial, answered NOERROR (RFC 9824)
        rcode = 0
        ttl = soa.ttl if soa is not None else tree.negative_ttl
        nsec = signer.nsec(last, {NXNAME}, ttl)
        if soa is not None:
            authority += [soa, signer.rrsig(soa)]
        authority += [nsec, signer.rrsig(nsec)]
    elif not res.aa and res.authority and res.authority[0].rdtype == NS:  # a referral
        ns = res.authority[0]
        authority.append(ns)
        cut = ns.owner
        node = tree.nodes.get(cut, {})
        ds = node.get(DS)
        if ds is not None:
            ds_rrs = RRs(cut, DS, ds.ttl, ds.rdatas)
            authority += [ds_rrs, signer.rrsig(ds_rrs)]
        else:
            types = node_types(tree, cut) or {NS}
            nsec = signer.nsec(cut, types, tree.negative_ttl)
            authority += [nsec, signer.rrsig(nsec)]
    elif soa is not None:  # NODATA
        types = node_types(tree, last) or set()
        types.discard(qtype)
        nsec = signer.nsec(last, types, soa.ttl)
        authority += [soa, signer.rrsig(soa), nsec, signer.rrsig(nsec)]
    else:
        authority = list(res.authority)
    return SignedSections(rcode, res.aa, answer, authority, list(res.additional))


_RRSIG_HEAD = struct.Struct("!HBBIIIH")
_RR_HEAD = struct.Struct("!HHI")


def _canonical(name: dns.name.Name) -> bytes:
    """A name's wire form in canonical (ASCII lower-case) form, uncompressed."""
    return b"".join(bytes((len(label),)) + label.lower() for label in name.labels)


def _raw_signature(private: Any, algorithm: int, data: bytes) -> bytes:
    """The signature field of an RRSIG: Ed25519 as is, ECDSA as r | s (RFC 6605)."""
    if algorithm == 15:
        return private.sign(data)  # type: ignore[no-any-return]
    der = private.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def make_dnskey(public: Any, algorithm: int, ksk: bool) -> dns.rdata.Rdata:
    """The DNSKEY rdata of a `cryptography` public key."""
    flags = dns.rdtypes.dnskeybase.Flag.ZONE | (dns.rdtypes.dnskeybase.Flag.SEP if ksk else 0)
    return dns.dnssec.make_dnskey(public, algorithm, flags)  # type: ignore[arg-type]


def ds_records(origin: dns.name.Name, keys: tuple[ZoneKey, ...]) -> list[dns.rdata.Rdata]:
    """The DS (SHA-256) of each key the parent should name."""
    return [dns.dnssec.make_ds(origin, k.dnskey, "SHA256")  # type: ignore[arg-type]
            for k in keys if k.parent]
