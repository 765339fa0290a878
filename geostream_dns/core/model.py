"""Validated zone specifications: what the YAML says, after every check.

The loader (``config.loader``) turns YAML into these frozen objects and rejects
anything invalid with located problems. Everything downstream (the snapshot
compiler, the routing policies, the prober, the PostgreSQL store) reads only
these, so names here are already resolved: every pool names a region of its
zone, every health check exists, fallback chains are loop free.

Names are absolute, lower-case, with a trailing dot (``www.example.com.``).
Record data are dnspython ``Rdata`` objects (hashable, comparable), except
``ALIAS``, which is not a real DNS type and keeps its target in ``alias``.
A type without a name here is written ``TYPEnnn`` (RFC 3597), e.g. ``TYPE49``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import dns.rdata

from geostream_dns.errors import Problem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

AnswerMode = Literal["weighted", "all", "multivalue"]
ValueStatus = Literal["up", "down", "obey"]
CheckProtocol = Literal["http", "https", "tcp"]

# Record types a zone file may hold by name; SOA is generated from the `soa`
# block, and any other type is written `TYPEnnn` with RFC 3597 generic data.
RECORD_TYPES = (
    "A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "PTR", "NAPTR", "SSHFP", "TLSA",
    "SMIMEA", "HTTPS", "SVCB", "DS", "LOC", "URI", "CERT", "OPENPGPKEY", "HINFO", "RP", "SPF",
    "ALIAS",
)
ROUTABLE_TYPES = ("A", "AAAA", "CNAME", "TXT")


@dataclass(frozen=True, slots=True)
class Soa:
    primary: str  # MNAME, absolute
    email: str  # RNAME as written (hostmaster@example.com); see rname
    refresh: int
    retry: int
    expire: int
    negative_ttl: int
    serial: int | None = None  # the lowest serial to serve (an imported zone's own)

    @property
    def rname(self) -> str:
        """The RNAME in DNS form: hostmaster@example.com -> hostmaster.example.com."""
        local, _, domain = self.email.partition("@")
        local = local.replace(".", "\\.")
        return f"{local}.{domain.rstrip('.')}."


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class HealthCheck:
    name: str
    protocol: CheckProtocol
    port: int
    path: str = "/"  # http/https only
    host: str | None = None  # Host header and SNI
    expect_status: tuple[int, ...] = (200,)
    expect_body: str | None = None
    interval: float = 10.0  # seconds
    timeout: float = 2.0  # seconds
    rise: int = 2
    fall: int = 3
    verify_tls: bool = True
    quorum: int | None = None  # sites that must say down, in a fleet (None: a majority)


@dataclass(frozen=True, slots=True)
class PoolValue:
    rdata: dns.rdata.Rdata
    weight: int = 1
    healthcheck: str | None = None  # a key of Zone.healthchecks
    status: ValueStatus = "obey"


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    region: str | None  # a key of Zone.regions (None: pool has no location)
    answer: AnswerMode
    values: tuple[PoolValue, ...]
    fallback: str | None  # a key of Routing.pools; chains never loop


@dataclass(frozen=True, slots=True)
class GeosRule:
    """Matches clients GeoIP places in one of ``geos``: upper-case codes such as
    ``EU``, ``EU-DE``, ``NA-US-CA``."""

    pool: str
    geos: tuple[str, ...]
    line: int = 0
    kind: ClassVar[str] = "geos"


@dataclass(frozen=True, slots=True)
class SubnetsRule:
    """Matches clients whose address lies in one of ``subnets``."""

    pool: str
    subnets: tuple[IPNetwork, ...]
    line: int = 0
    kind: ClassVar[str] = "subnets"


@dataclass(frozen=True, slots=True)
class NearestRule:
    """Matches every client: the listed pool nearest to it (distance + bias) whose
    fallback chain is healthy."""

    pools: tuple[str, ...]
    bias: tuple[tuple[str, float], ...] = ()  # (pool, km) pairs
    line: int = 0
    kind: ClassVar[str] = "nearest"


@dataclass(frozen=True, slots=True)
class LatencyRule:
    """Matches every client: the listed pool with the lowest measured round trip
    from the client's network (plus ``bias`` ms) whose fallback chain is healthy;
    without measurements, the nearest such pool."""

    pools: tuple[str, ...]
    bias: tuple[tuple[str, float], ...] = ()  # (pool, ms) pairs
    min_samples: int = 10  # DEFAULT_MIN_SAMPLES
    line: int = 0
    kind: ClassVar[str] = "latency"


@dataclass(frozen=True, slots=True)
class CatchAllRule:
    """A rule without a condition: matches every client."""

    pool: str
    line: int = 0
    kind: ClassVar[str] = "catch-all"


DEFAULT_MIN_SAMPLES = 10  # a latency rule's min_samples when it gives none

Rule = GeosRule | SubnetsRule | NearestRule | LatencyRule | CatchAllRule


@dataclass(frozen=True, slots=True)
class Routing:
    pools: dict[str, Pool]
    rules: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class RecordSet:
    name: str  # absolute, lower-case owner name
    rtype: str  # one of RECORD_TYPES
    ttl: int
    rdatas: tuple[dns.rdata.Rdata, ...]  # the record's own values (may be empty if routed)
    routing: Routing | None = None
    alias: str | None = None  # ALIAS target (absolute name), rtype == "ALIAS" only
    line: int = 0


DnssecAlgorithm = Literal["ecdsap256sha256", "ed25519"]
DNSSEC_ALGORITHMS: tuple[str, ...] = ("ecdsap256sha256", "ed25519")
KeyScheme = Literal["ksk-zsk", "csk"]


@dataclass(frozen=True, slots=True)
class Dnssec:
    """`dnssec:` on a zone: sign it online with keys the server makes and keeps."""

    algorithm: DnssecAlgorithm = "ecdsap256sha256"
    keys: KeyScheme = "ksk-zsk"  # a KSK and a ZSK, or one combined signing key


@dataclass(frozen=True, slots=True)
class Zone:
    origin: str  # absolute, lower-case: "example.com."
    ttl: int
    soa: Soa
    nameservers: tuple[str, ...]
    regions: dict[str, Region] = field(default_factory=dict)
    healthchecks: dict[str, HealthCheck] = field(default_factory=dict)
    rrsets: tuple[RecordSet, ...] = ()
    serial: int = 1
    source: str = ""  # file the zone came from, for messages
    # what validation let through but the operator should know (data below a
    # zone cut, an in-zone name server without an address)
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    dnssec: Dnssec | None = None  # signed online when set
