"""`geostream-dns serve`: run the nameserver, the prober and the HTTP endpoint."""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys
from typing import Any

from geostream_dns.config.settings import (
    DEFAULT_HTTP,
    DEFAULT_LISTEN,
    DEFAULT_STATE_DIR,
    Settings,
    default_server_id,
    default_site,
    env_list,
    parse_hostport,
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the nameserver (UDP+TCP), the health prober and the HTTP endpoint")
    p.add_argument("--listen", action="append", metavar="HOST:PORT",
                   help=f"DNS address, repeatable; IPv6 as [::1]:8053 "
                        f"(GEOSTREAM_LISTEN, default {DEFAULT_LISTEN})")
    p.add_argument("--http", metavar="HOST:PORT",
                   help=f"HTTP endpoint, 'off' to disable (GEOSTREAM_HTTP, default {DEFAULT_HTTP})")
    p.add_argument("--zones", action="append", metavar="DIR",
                   help="zones folder, embedded mode (GEOSTREAM_ZONES)")
    p.add_argument("--geoip", metavar="PATH", help="GeoIP2/GeoLite2 City or Country mmdb "
                   "(GEOSTREAM_GEOIP; default: the bundled GeoLite2 City)")
    p.add_argument("--database-url", metavar="URL",
                   help="PostgreSQL, production mode (DATABASE_URL)")
    p.add_argument("--redis-url", metavar="URL",
                   help="the fleet's Redis (REDIS_URL): redis://, rediss://, unix:// or "
                        "redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]")
    p.add_argument("--redis-prefix", metavar="PREFIX",
                   help="start of every Redis key and channel, so fleets can share one Redis "
                        "(GEOSTREAM_REDIS_PREFIX, default geostream:)")
    p.add_argument("--site", metavar="NAME",
                   help="the place this server probes from (GEOSTREAM_SITE, default the "
                        "host name)")
    p.add_argument("--server-id", metavar="ID",
                   help="this server's name in the fleet, unique (GEOSTREAM_SERVER_ID, "
                        "default the host name and the first DNS port)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes sharing the DNS ports with SO_REUSEPORT "
                        "(GEOSTREAM_WORKERS, default 1)")
    p.add_argument("--state-dir", metavar="DIR",
                   help=f"local state (GEOSTREAM_STATE_DIR, default {DEFAULT_STATE_DIR})")
    p.add_argument("--tcp-idle-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="close TCP connections idle this long (default 10)")
    p.add_argument("--probe-only", action="store_true",
                   help="run only the health prober and the HTTP endpoint, no DNS listeners")
    p.add_argument("--no-probe", action="store_true",
                   help="do not run the health prober (every value counts as up unless "
                        "its status or a drain says otherwise)")
    p.add_argument("--latency-half-life", type=float, default=None, metavar="SECONDS",
                   help="latency measurements this old count half (GEOSTREAM_LATENCY_HALF_LIFE, "
                        "default 3600)")
    p.add_argument("--latency-max-keys", type=int, default=None, metavar="N",
                   help="client keys the latency table holds at most; the least recently "
                        "measured go first (GEOSTREAM_LATENCY_MAX_KEYS, default 1000000)")
    p.set_defaults(func=run)


def settings_from(args: argparse.Namespace) -> Settings:
    env = os.environ
    listen_texts = args.listen or env_list("GEOSTREAM_LISTEN") or [DEFAULT_LISTEN]
    http_text = args.http or env.get("GEOSTREAM_HTTP") or DEFAULT_HTTP
    zones = args.zones or env_list("GEOSTREAM_ZONES")
    listen = () if args.probe_only else tuple(parse_hostport(t) for t in listen_texts)
    http = None if http_text == "off" else parse_hostport(http_text)
    redis_url = args.redis_url or env.get("REDIS_URL") or None
    if redis_url:
        from geostream_dns.adapters.redis_link import parse_redis_url

        parse_redis_url(redis_url)  # a bad URL is an error at start, never ignored
    return Settings(
        listen=listen,
        http=http,
        zones=tuple(pathlib.Path(z) for z in zones),
        geoip=pathlib.Path(g) if (g := args.geoip or env.get("GEOSTREAM_GEOIP")) else None,
        database_url=args.database_url or env.get("DATABASE_URL"),
        redis_url=redis_url,
        redis_prefix=args.redis_prefix or env.get("GEOSTREAM_REDIS_PREFIX") or "geostream:",
        site=args.site or env.get("GEOSTREAM_SITE") or default_site(),
        server_id=(args.server_id or env.get("GEOSTREAM_SERVER_ID")
                   or default_server_id(listen, http)),
        probe_only=args.probe_only,
        workers=args.workers or int(env.get("GEOSTREAM_WORKERS", "1")),
        state_dir=pathlib.Path(args.state_dir or env.get("GEOSTREAM_STATE_DIR")
                               or DEFAULT_STATE_DIR),
        log_level=env.get("LOG_LEVEL", "info"),
        api_token=env.get("GEOSTREAM_API_TOKEN") or None,
        tcp_idle_timeout=args.tcp_idle_timeout,
        probe=not args.no_probe,
        latency_half_life=_positive(
            "--latency-half-life", getattr(args, "latency_half_life", None)
            or float(env.get("GEOSTREAM_LATENCY_HALF_LIFE") or 3600)),
        latency_max_keys=int(_positive(
            "--latency-max-keys", getattr(args, "latency_max_keys", None)
            or int(env.get("GEOSTREAM_LATENCY_MAX_KEYS") or 1_000_000))),
    )


def _positive(option: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{option} must be more than 0, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters.logging import configure_logging
    from geostream_dns.app import App

    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"geostream-dns serve: {exc}", file=sys.stderr)
        return 2
    if not settings.zones and not settings.database_url:
        print("geostream-dns serve: give --zones DIR (embedded mode) or DATABASE_URL "
              "(production mode)", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    children = _fork_workers(settings) if settings.workers > 1 else []
    try:
        asyncio.run(App(settings).run())
    except OSError as exc:
        print(f"geostream-dns serve: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop_workers(children)
    return 0


def _fork_workers(settings: Settings) -> list[int]:
    """Start workers 1..N-1: each binds the same DNS ports (SO_REUSEPORT) and
    answers from its own snapshot; only worker 0 (this process) serves HTTP."""
    import ctypes
    import dataclasses
    import signal

    from geostream_dns.app import App

    children = []
    worker_settings = dataclasses.replace(settings, http=None)
    for worker in range(1, settings.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                # Die with the parent, however it ends.
                ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
                asyncio.run(App(worker_settings, worker=worker).run())
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
                code = 1
            os._exit(code)
        children.append(pid)
    return children


def _stop_workers(children: list[int]) -> None:
    import signal

    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
