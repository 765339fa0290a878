"""What the fleet tests run besides the servers: endpoints, Redis processes, a fleet.

How this works:

* `Endpoints` is a small threaded HTTP server on each of a few loopback
  addresses (one port for all). It reads the prober's User-Agent,
  `geostream-dns-prober/VERSION (site=SITE)`, records every request as
  (address, site, time), and answers 200 "ok" unless the test made that
  address fail for that site (`fail(address, *sites)`), when it answers 503.
  So one endpoint can look down from one site and up from the others.
* `RedisProcess` is a `redis-server` of the test's own on a free loopback
  port (no persistence, its files in a folder of the test's), which the test
  may kill (SIGKILL, by its PID) and start again on the same port; with
  `sentinel_for=` it is a `redis-server --sentinel` watching a primary.
* `Fleet` starts `geostream-dns serve` processes (tests/support/harness.py) in
  production mode against one database and one Redis prefix, each with its
  `--site` and `--server-id`; it stops the ones still running at the end and
  insists they exit cleanly, except those the test killed on purpose.

Every wait is bounded.
"""

from __future__ import annotations

import http.server
import os
import pathlib
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from tests.support.harness import ServerProcess, finish, free_port, wait_until

AGENT = "geostream-dns-prober/"


class Endpoints:
    """Threaded HTTP endpoints on `hosts` (one port), answering per probing site."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self.hosts = tuple(hosts)
        self.port = free_port(*hosts)
        self.failing: set[tuple[str, str]] = set()  # (address, site) answering 503
        self.seen: list[tuple[str, str, float]] = []  # (address, site, monotonic time)
        self.agents: set[str] = set()
        self.lock = threading.Lock()
        self._servers: list[http.server.ThreadingHTTPServer] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                host = str(cast(tuple[str, int], self.server.server_address)[0])
                agent = self.headers.get("User-Agent", "")
                site = agent.partition("(site=")[2].rstrip(")") if agent.startswith(AGENT) \
                    else "?"
                with outer.lock:
                    outer.seen.append((host, site, time.monotonic()))
                    outer.agents.add(agent)
                    failing = (host, site) in outer.failing
                body = b"down" if failing else b"ok"
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        for host in self.hosts:
            server = http.server.ThreadingHTTPServer((host, self.port), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             daemon=True).start()
            self._servers.append(server)

    def fail(self, host: str, *sites: str) -> None:
        with self.lock:
            self.failing |= {(host, site) for site in sites}

    def heal(self) -> None:
        with self.lock:
            self.failing.clear()

    def count(self, host: str, site: str, since: float, until: float | None = None) -> int:
        """Requests `host` saw from `site` between two monotonic times."""
        until = until if until is not None else time.monotonic()
        with self.lock:
            return sum(1 for h, s, t in self.seen if h == host and s == site
                       and since <= t < until)

    def times(self, host: str, site: str) -> list[float]:
        with self.lock:
            return [t for h, s, t in self.seen if h == host and s == site]

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


# -- Redis of our own ---------------------------------------------------------------


class RedisProcess:
    """A `redis-server` (or sentinel) the test owns: start, kill -9, start again."""

    def __init__(self, folder: pathlib.Path, *, replica_of: int | None = None,
                 sentinel_for: tuple[str, int] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.replica_of = replica_of
        self.sentinel_for = sentinel_for  # (service, primary port)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2)

    def start(self) -> RedisProcess:
        if self.sentinel_for is not None:
            service, primary = self.sentinel_for
            conf = self.folder / "sentinel.conf"
            conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.folder}\n"
                            f"sentinel monitor {service} 127.0.0.1 {primary} 1\n"
                            f"sentinel down-after-milliseconds {service} 1000\n"
                            f"sentinel failover-timeout {service} 5000\n"
                            f"sentinel parallel-syncs {service} 1\n")
            cmd = ["redis-server", str(conf), "--sentinel"]
        else:
            cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(self.folder)]
            if self.replica_of is not None:
                cmd += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        finally:
            log.close()
        wait_until(self._answers, 10, 0.05)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited:\n{self.log_path.read_text()[-2000:]}")
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL this one PID (a crash, not a shutdown)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


# -- the fleet ------------------------------------------------------------------------


class Fleet:
    """Servers of one fleet: one database, one Redis (URL and prefix)."""

    def __init__(self, base: pathlib.Path, database_url: str, redis_url: str, prefix: str,
                 geoip: pathlib.Path) -> None:
        self.base = base
        self.database_url = database_url
        self.redis_url = redis_url
        self.prefix = prefix
        self.geoip = geoip
        self.servers: dict[str, ServerProcess] = {}
        self.sites: dict[str, str] = {}
        self.killed: set[str] = set()

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis_url, "GEOSTREAM_REDIS_PREFIX": self.prefix,
                "GEOSTREAM_API_TOKEN": "fleet-token"}

    def start(self, name: str, site: str, *, probe_only: bool = False, wait: bool = True,
              args: Iterable[str] = ()) -> ServerProcess:
        options: dict[str, Any] = {}
        if probe_only:
            options.update(listens=[], serves_dns=False)
        server = ServerProcess.start(
            self.base / name, database_url=self.database_url, geoip=self.geoip,
            env=self.env(), wait=wait, args=["--site", site, "--server-id", name,
                                              *(["--probe-only"] if probe_only else []),
                                              *args], **options)
        self.servers[name] = server
        self.sites[name] = site
        return server

    def dns(self) -> list[ServerProcess]:
        """The answering servers still running."""
        return [s for n, s in self.servers.items() if s.serves_dns and s.alive()]

    def kill(self, name: str) -> None:
        """kill -9 one server (by its PID)."""
        server = self.servers[name]
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait(5)
        server.stop()  # reaped: closes its log
        self.killed.add(name)

    def close(self) -> None:
        finish(*(s for n, s in self.servers.items() if n not in self.killed))
