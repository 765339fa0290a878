"""`geostream-dns serve`: run the nameserver, the prober and the HTTP endpoint."""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys
from typing import Any

from geostream_dns.cli.abuse_options import add_abuse_options, cookie_rotation, rrl_settings
from geostream_dns.config.settings import (
    DEFAULT_HTTP,
    DEFAULT_LISTEN,
    DEFAULT_STATE_DIR,
    SYSTEM_RESOLVER,
    Settings,
    default_server_id,
    default_site,
    env_list,
    parse_hostport,
    parse_resolver,
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
                   help="this server's name in the fleet, unique; also the answer to NSID "
                        "and to CH TXT id.server and hostname.bind (GEOSTREAM_SERVER_ID, "
                        "default the host name and the first DNS port)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes sharing the DNS ports with SO_REUSEPORT "
                        "(GEOSTREAM_WORKERS, default 1)")
    p.add_argument("--state-dir", metavar="DIR",
                   help=f"local state (GEOSTREAM_STATE_DIR, default {DEFAULT_STATE_DIR})")
    p.add_argument("--tcp-idle-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="cut TCP connections that complete no message this long: idle, "
                        "sending slowly or not reading their answers (default 10)")
    p.add_argument("--tcp-max-connections", type=_positive_int, default=1024, metavar="N",
                   help="open TCP connections at most, in all (default 1024)")
    p.add_argument("--tcp-max-per-client", type=_positive_int, default=64, metavar="N",
                   help="open TCP connections at most from one client address (default 64)")
    p.add_argument("--probe-only", action="store_true",
                   help="run only the health prober and the HTTP endpoint, no DNS listeners")
    p.add_argument("--no-probe", action="store_true",
                   help="do not run the health prober (every value counts as up unless "
                        "its status or a drain says otherwise)")
    p.add_argument("--alias-resolver", metavar="ADDR[:PORT]",
                   help="the DNS resolver that ALIAS targets outside the hosted zones (a CDN "
                        "or load balancer name) are resolved through, in the background "
                        "(GEOSTREAM_ALIAS_RESOLVER, default: the resolvers of "
                        "/etc/resolv.conf; 'off': not resolved, such an ALIAS answers "
                        "SERVFAIL)")
    p.add_argument("--alias-refresh-min", type=float, default=None, metavar="SECONDS",
                   help="ask for an ALIAS target at most this often, whatever its TTL "
                        "(default 5)")
    p.add_argument("--alias-refresh-max", type=float, default=None, metavar="SECONDS",
                   help="ask for every ALIAS target at least this often, whatever its TTL "
                        "(default 3600)")
    add_abuse_options(p)
    p.add_argument("--user", metavar="NAME",
                   help="after binding the sockets (port 53 needs root), run as this user "
                        "(GEOSTREAM_USER)")
    p.add_argument("--query-log", metavar="FILE",
                   help="append one JSON line per sampled query to FILE; reopened on SIGHUP "
                        "(GEOSTREAM_QUERY_LOG)")
    p.add_argument("--query-log-sample", type=int, default=None, metavar="N",
                   help="log one query in N (GEOSTREAM_QUERY_LOG_SAMPLE, default 1: every "
                        "query)")
    p.add_argument("--latency-half-life", type=float, default=None, metavar="SECONDS",
                   help="latency measurements this old count half (GEOSTREAM_LATENCY_HALF_LIFE, "
                        "default 3600)")
    p.add_argument("--latency-max-keys", type=int, default=None, metavar="N",
                   help="client keys the latency table holds at most; the least recently "
                        "measured go first (GEOSTREAM_LATENCY_MAX_KEYS, default 1000000)")
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


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
    alias_resolver = args.alias_resolver or env.get("GEOSTREAM_ALIAS_RESOLVER") or SYSTEM_RESOLVER
    if alias_resolver == "off":
        alias_resolver = None
    elif alias_resolver != SYSTEM_RESOLVER:
        parse_resolver(alias_resolver)  # a bad address is an error at start
    refresh_min = args.alias_refresh_min if args.alias_refresh_min is not None else 5.0
    refresh_max = args.alias_refresh_max if args.alias_refresh_max is not None else 3600.0
    if not 0 < refresh_min <= refresh_max:
        raise ValueError("--alias-refresh-min must be above 0 and at most --alias-refresh-max")
    return Settings(
        alias_resolver=alias_resolver,
        alias_refresh_min=refresh_min,
        alias_refresh_max=refresh_max,
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
        workers=_positive("--workers", args.workers if args.workers is not None
                          else env.get("GEOSTREAM_WORKERS") or 1),
        state_dir=pathlib.Path(args.state_dir or env.get("GEOSTREAM_STATE_DIR")
                               or DEFAULT_STATE_DIR),
        log_level=env.get("LOG_LEVEL", "info"),
        api_token=env.get("GEOSTREAM_API_TOKEN") or None,
        tcp_idle_timeout=args.tcp_idle_timeout,
        tcp_max_connections=args.tcp_max_connections,
        tcp_max_per_client=args.tcp_max_per_client,
        probe=not args.no_probe,
        rrl=rrl_settings(args),
        cookie_rotation=cookie_rotation(args),
        user=args.user or env.get("GEOSTREAM_USER") or None,
        query_log=pathlib.Path(q) if (q := args.query_log or env.get("GEOSTREAM_QUERY_LOG"))
        else None,
        query_log_sample=_positive("--query-log-sample", args.query_log_sample
                                   if args.query_log_sample is not None
                                   else env.get("GEOSTREAM_QUERY_LOG_SAMPLE") or 1),
        latency_half_life=_above_zero(
            "--latency-half-life", getattr(args, "latency_half_life", None)
            or float(env.get("GEOSTREAM_LATENCY_HALF_LIFE") or 3600)),
        latency_max_keys=int(_above_zero(
            "--latency-max-keys", getattr(args, "latency_max_keys", None)
            or int(env.get("GEOSTREAM_LATENCY_MAX_KEYS") or 1_000_000))),
    )


def _positive(option: str, value: object) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ValueError(f"{option}: expected a whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{option}: must be 1 or more, got {number}")
    return number


def _above_zero(option: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{option} must be more than 0, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters.logging import configure_logging
    from geostream_dns.app import App

    try:
        settings = settings_from(args)
        if settings.user is not None:
            from geostream_dns.adapters.privileges import lookup_user

            lookup_user(settings.user)  # an unknown user is an error before anything starts
    except ValueError as exc:
        print(f"geostream-dns serve: {exc}", file=sys.stderr)
        return 2
    if not settings.zones and not settings.database_url:
        print("geostream-dns serve: give --zones DIR (embedded mode) or DATABASE_URL "
              "(production mode)", file=sys.stderr)
        return 2
    missing = [str(z) for z in settings.zones if not z.exists()]
    if missing and not settings.database_url:
        print(f"geostream-dns serve: --zones: no such file or directory: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    workers = Workers(settings)
    if settings.workers > 1:
        workers.start_all()
    try:
        app = App(settings)
        app.children = workers.pids.values()  # live: a restarted worker is signalled too
        app.on_tick = workers.restart_dead  # worker 0 starts again any worker that died
        asyncio.run(app.run())
    except OSError as exc:
        print(f"geostream-dns serve: {exc}", file=sys.stderr)
        return 1
    finally:
        workers.stop()
    return 0


class Workers:
    """Workers 1..N-1 of `--workers N`: each binds the same DNS ports (SO_REUSEPORT)
    and answers from its own snapshot; only worker 0 (this process) serves HTTP.
    A worker that dies (killed, crashed) is started again by worker 0, checked on
    every reload tick, unless it could not bind its sockets again: after
    `--user` dropped root, a port below 1024 can no longer be bound (under
    systemd, `CAP_NET_BIND_SERVICE` keeps that working)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pids: dict[int, int] = {}  # worker number -> pid
        self.started: dict[int, float] = {}  # worker number -> when it was last forked
        self.stopping = False
        self.parent = os.getpid()

    def start_all(self) -> None:
        for worker in range(1, self.settings.workers):
            self.pids[worker] = self._fork(worker)

    def _fork(self, worker: int) -> int:
        import dataclasses
        import signal
        import time

        from geostream_dns.adapters.privileges import die_with_parent
        from geostream_dns.app import App

        self.started[worker] = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                die_with_parent(self.parent)  # however the parent ends
                signal.set_wakeup_fd(-1)  # not the parent's loop's wake-up socket
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)  # nor its handlers
                # asyncio knows a loop running in another process is not running here
                asyncio.run(App(dataclasses.replace(self.settings, http=None),
                                worker=worker).run())
            except BaseException:  # noqa: BLE001 - a worker must never return into the parent's code
                code = 1
            os._exit(code)
        return pid

    def restart_dead(self) -> None:
        import time

        import structlog

        if self.stopping:
            return
        log = structlog.get_logger("geostream.serve")
        for worker, pid in list(self.pids.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            if (os.geteuid() != 0 and self.settings.user is not None
                    and any(port < 1024 for _, port in self.settings.listen)):
                # It could not bind the privileged port again: say so once.
                del self.pids[worker]
                log.error("worker.not_restarted", worker=worker, old_pid=pid, status=status,
                          reason="privileges dropped (--user): port below 1024")
                continue
            if time.monotonic() - self.started.get(worker, 0.0) < 1.0:
                continue  # it died at once: try again a second after the last start
            self.pids[worker] = self._fork(worker)
            log.error("worker.restarted", worker=worker, old_pid=pid, pid=self.pids[worker],
                      status=status)

    def stop(self) -> None:
        import signal

        self.stopping = True
        for pid in self.pids.values():
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass  # gone; or still root while this process dropped (--user): PDEATHSIG
        for pid in self.pids.values():
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
