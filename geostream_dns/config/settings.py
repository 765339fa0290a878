"""Run-time settings: command-line options beat environment variables."""

from __future__ import annotations

import ipaddress
import os
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from geostream_dns.core.rrl import DEFAULT_RATE, DEFAULT_SLIP, DEFAULT_TABLE_SIZE, DEFAULT_WINDOW

DEFAULT_LISTEN = "127.0.0.1:8053"
DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_STATE_DIR = ".geostream-state"
SYSTEM_RESOLVER = "system"  # --alias-resolver default: the resolvers of /etc/resolv.conf


def parse_hostport(text: str) -> tuple[str, int]:
    """`127.0.0.1:8053`, `[::1]:8053` or `:8053` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        if ":" in host:
            raise ValueError(f"write IPv6 addresses as [ADDRESS]:PORT, got {text!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host or "0.0.0.0", int(port_text)


def parse_resolver(text: str) -> tuple[str, int]:
    """`ADDR` or `ADDR:PORT` (IPv6 as `[ADDR]:PORT` or a bare address) -> (address, port)."""
    text = text.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"bad port in {text!r}")
        port = int(port_text)
    else:
        host = text
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the ALIAS resolver must be an IP address (ADDR[:PORT]), "
                         f"got {text!r}") from None
    if not 0 < port <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, port


DEFAULT_RRL_EXEMPT = ("127.0.0.0/8", "::1/128")
DEFAULT_RRL_PREFIX_V4 = 24
DEFAULT_RRL_PREFIX_V6 = 56
DEFAULT_COOKIE_ROTATION = 86_400.0  # seconds between rotations of the cookie secret

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RrlSettings:
    """Response-rate limiting (`serve --rrl-*`); checked when made."""

    rate: float = DEFAULT_RATE  # responses per second and account; 0: no limiting
    window: float = DEFAULT_WINDOW
    slip: int = DEFAULT_SLIP
    table_size: int = DEFAULT_TABLE_SIZE
    prefix_v4: int = DEFAULT_RRL_PREFIX_V4
    prefix_v6: int = DEFAULT_RRL_PREFIX_V6
    exempt: tuple[str, ...] = DEFAULT_RRL_EXEMPT

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"--rrl-rate {self.rate}: must be 0 (off) or more")
        if self.rate and self.window < 1:
            raise ValueError(f"--rrl-window {self.window}: must be at least 1 second")
        if self.slip < 0:
            raise ValueError(f"--rrl-slip {self.slip}: must be 0 (never) or more")
        if self.table_size < 1:
            raise ValueError(f"--rrl-table-size {self.table_size}: must be at least 1")
        if not 1 <= self.prefix_v4 <= 32:
            raise ValueError(f"--rrl-prefix-v4 {self.prefix_v4}: must be 1 to 32")
        if not 1 <= self.prefix_v6 <= 128:
            raise ValueError(f"--rrl-prefix-v6 {self.prefix_v6}: must be 1 to 128")
        parse_exempt(self.exempt)  # a bad CIDR is an error at start


def parse_exempt(texts: Iterable[str]) -> tuple[Network, ...]:
    """`--rrl-exempt` values: CIDRs (a bare address is a /32 or /128), or `none`."""
    texts = list(texts)
    if any(t.strip().lower() == "none" for t in texts):
        if len(texts) > 1:
            raise ValueError("--rrl-exempt none cannot be combined with networks")
        return ()
    out = []
    for text in texts:
        try:
            out.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"--rrl-exempt {text!r}: not a CIDR (e.g. 192.0.2.0/24) "
                             "or none") from None
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    listen: tuple[tuple[str, int], ...] = (parse_hostport(DEFAULT_LISTEN),)
    http: tuple[str, int] | None = parse_hostport(DEFAULT_HTTP)
    zones: tuple[pathlib.Path, ...] = ()
    geoip: pathlib.Path | None = None
    database_url: str | None = None
    redis_url: str | None = None
    workers: int = 1
    state_dir: pathlib.Path = pathlib.Path(DEFAULT_STATE_DIR)
    log_level: str = "info"
    api_token: str | None = None
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 1024
    tcp_max_per_client: int = 64
    probe: bool = True  # run the health prober (worker 0)
    probe_only: bool = False  # serve --probe-only: no DNS listeners
    site: str = ""  # where this server probes from (default: the host name)
    server_id: str = ""  # unique in the fleet (default: host name and first DNS port)
    redis_prefix: str = "geostream:"
    reload_interval: float = 0.25
    # where ALIAS targets outside the hosted zones are resolved: "ADDR[:PORT]",
    # "system" (/etc/resolv.conf), or None (not resolved: their ALIAS answers SERVFAIL)
    alias_resolver: str | None = None
    alias_refresh_min: float = 5.0  # seconds: a target is never asked for more often
    alias_refresh_max: float = 3600.0  # seconds: every target is asked for at least this often
    rrl: RrlSettings = RrlSettings()  # response-rate limiting (UDP)
    cookie_rotation: float = DEFAULT_COOKIE_ROTATION
    user: str | None = None  # serve --user: drop to this user once the sockets are bound
    query_log: pathlib.Path | None = None  # serve --query-log: one JSON line per sampled query
    query_log_sample: int = 1  # log one query in this many
    latency_half_life: float = 3600.0  # seconds: a latency sample this old counts half
    latency_max_keys: int = 1_000_000  # client keys the latency table holds at most
    extra: dict[str, str] = field(default_factory=dict)


def env_list(name: str) -> list[str]:
    value = os.environ.get(name, "")
    return [v for v in value.replace(",", " ").split() if v]


def default_site() -> str:
    import socket

    return socket.gethostname() or "site"


def default_server_id(listen: tuple[tuple[str, int], ...],
                      http: tuple[str, int] | None) -> str:
    """The host name and the first DNS port (a probe-only server: its HTTP port)."""
    import socket

    host = socket.gethostname() or "server"
    if listen:
        return f"{host}:{listen[0][1]}"
    if http is not None:
        return f"{host}:probe:{http[1]}"
    return f"{host}:probe"
