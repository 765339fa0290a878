"""Run-time settings: command-line options beat environment variables."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field

DEFAULT_LISTEN = "127.0.0.1:8053"
DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_STATE_DIR = ".geostream-state"


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
    probe: bool = True  # run the health prober (worker 0)
    probe_only: bool = False  # serve --probe-only: no DNS listeners
    site: str = ""  # where this server probes from (default: the host name)
    server_id: str = ""  # unique in the fleet (default: host name and first DNS port)
    redis_prefix: str = "geostream:"
    reload_interval: float = 0.25
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
