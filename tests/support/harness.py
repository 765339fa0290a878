"""The one way tests run `geostream-dns serve`: free ports, start, wait, ask, stop.

How this works: `free_port()` finds a port free for both UDP and TCP on every
loopback address asked for. `ServerProcess.start()` runs the real command
line, `geostream-dns serve`, as a subprocess in a folder of its own (its
working directory, its log file and, unless told otherwise, its
`--state-dir`), with an environment cleaned of every GEOSTREAM_*,
DATABASE_URL, REDIS_URL and LOG_LEVEL setting the test did not ask for. It
then waits, at most `READY_TIMEOUT` seconds, until `GET /ready` says 200 —
after which the DNS port must answer as well, since ready means "loaded and
answering" — or, without the HTTP endpoint, until the DNS port answers a
query; a process that exits meanwhile fails the test with its log.

A started server gives the test its log (`log()`, the JSON events
`log_events()` and `events("store.loaded")`), DNS over UDP or TCP through
dnspython (`query()`, `answer()`, `addresses()`), and its HTTP endpoint
(`http()`, `http_json()`, `ready()`, `metrics()`). `stop()` sends SIGTERM to
that one PID and SIGKILL after `STOP_TIMEOUT` seconds. Servers are stopped
whatever the test did: by the `start_server` fixture (tests/conftest.py) or
the `running()` context manager, which then also insist on a clean exit
(code 0 within `STOP_TIMEOUT`), and, should the test process itself end
first, by an exit hook that stops every server still running.

`run_cli()` runs any other `geostream-dns` command as a subprocess with the
same cleaned environment; `wait_for()` and `wait_until()` poll a condition
for a bounded time.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import redis

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin" / "geostream-dns"
SAMPLE_ZONES = ROOT / "zones"

READY_TIMEOUT = 20.0  # seconds from start until /ready (or DNS) answers
STOP_TIMEOUT = 5.0  # seconds a server may take to exit after SIGTERM
KILL_TIMEOUT = 5.0  # seconds to reap a process after SIGKILL
QUERY_TIMEOUT = 2.0
HTTP_TIMEOUT = 5.0
NOWHERE_RESOLVER = "127.0.0.1:9"  # loopback, a port below 1024 no test can bind
READY_PROBE = "ns1.example.com."  # any reply to it proves the DNS port answers

Listen = tuple[str, int]


# -- ports ---------------------------------------------------------------------------


def free_port(*hosts: str, avoid: Collection[int] = ()) -> int:
    """A port free for UDP and TCP on every one of `hosts` (default 127.0.0.1) at once.

    The port is released before it is returned, so a caller that needs several
    distinct ports passes the ones it holds in `avoid`. Bounded attempts.
    """
    hosts = hosts or ("127.0.0.1",)
    for _ in range(50):
        held: list[socket.socket] = []
        try:
            held.append(_bind(hosts[0], 0, socket.SOCK_STREAM))
            port = int(held[0].getsockname()[1])
            if port in avoid:
                continue
            held += [_bind(host, port, socket.SOCK_STREAM) for host in hosts[1:]]
            held += [_bind(host, port, socket.SOCK_DGRAM) for host in hosts]
            return port
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no port free on all of {hosts}")


def _bind(host: str, port: int, kind: socket.SocketKind) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def format_listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- processes -------------------------------------------------------------------------


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the server's settings, plus `extra`.

    ALIAS targets outside the hosted zones are resolved through a loopback port
    nobody answers on (NOWHERE_RESOLVER) unless the test says otherwise: the
    server's default, the system resolver, is off loopback."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "LOG_LEVEL")
           and not k.startswith("GEOSTREAM_")}
    env["LOG_LEVEL"] = "info"
    env["GEOSTREAM_ALIAS_RESOLVER"] = NOWHERE_RESOLVER
    env.update(extra or {})
    return env


def stop_process(process: subprocess.Popen[Any],
                 timeout: float = STOP_TIMEOUT) -> tuple[int | None, float]:
    """SIGTERM to this one PID, SIGKILL after `timeout` seconds.

    Returns (exit code, seconds it took); the code is None when SIGTERM was
    not enough and the process had to be killed.
    """
    started = time.monotonic()
    killed = False
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = True
            os.kill(process.pid, signal.SIGKILL)
            process.wait(KILL_TIMEOUT)
    return (None if killed else process.returncode), time.monotonic() - started


def run_cli(*args: str | pathlib.Path, env: Mapping[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `geostream-dns ARGS...` to completion (bounded) with a cleaned environment."""
    return subprocess.run([str(BIN), *map(str, args)], env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


# -- waiting ---------------------------------------------------------------------------


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Seconds until `check()` held, or None when it did not within `timeout` seconds."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(step)


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float:
    """Like `wait_for`, but fails the test when `check()` did not hold in time."""
    took = wait_for(check, timeout, step)
    if took is None:
        raise AssertionError(f"not true within {timeout} s: {check}")
    return took


def child_processes(pid: int) -> dict[int, bytes]:
    """pid -> command line of every child of process `pid`."""
    found: dict[int, bytes] = {}
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            pids = [int(t) for t in (task / "children").read_text().split()]
        except OSError:
            continue  # the thread ended
        for child in pids:
            try:
                found[child] = pathlib.Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                pass  # gone already
    return found


def worker_pids(pid: int) -> set[int]:
    """The `--workers` of server process `pid`: its children forked with its own
    command line (not the latency checker's or multiprocessing's helpers)."""
    own = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    return {child for child, cmdline in child_processes(pid).items() if cmdline == own}


# -- Redis ----------------------------------------------------------------------------

MACHINE_REDIS = "redis://127.0.0.1:6379/0"  # the machine's Redis; tests keep to a prefix


def new_redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"gs-test-{uuid.uuid4().hex[:12]}:"


def remove_redis_prefix(prefix: str, url: str = MACHINE_REDIS) -> None:
    """Delete every key under `prefix`."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    finally:
        client.close()


# -- the server ------------------------------------------------------------------------

_RUNNING: set[ServerProcess] = set()


@dataclass(eq=False)
class ServerProcess:
    """One `geostream-dns serve` subprocess and what a test asks of it."""

    process: subprocess.Popen[bytes]
    base: pathlib.Path  # its working directory
    listens: list[Listen]  # the --listen addresses, first one the default for queries
    http_port: int | None  # None: --http off
    state_dir: pathlib.Path
    zones_dir: pathlib.Path | None
    log_path: pathlib.Path
    serves_dns: bool = True  # False: started not to answer DNS (--probe-only)
    exit_code: int | None = None
    stop_seconds: float | None = None  # set by the first stop()
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, base: pathlib.Path, *, zones: pathlib.Path | None = None,
              database_url: str | None = None, geoip: pathlib.Path | None = None,
              listens: Sequence[Listen] | None = None, http: bool = True,
              state_dir: pathlib.Path | None = None, args: Iterable[str] = (),
              env: Mapping[str, str] | None = None, serves_dns: bool = True,
              wait: bool = True, ready_timeout: float = READY_TIMEOUT) -> ServerProcess:
        """Start `serve` in `base` and (unless `wait` is False) wait until it is ready.

        `listens` defaults to one free port on 127.0.0.1; `http` puts the HTTP
        endpoint on a free port of its own; `database_url` goes in through
        DATABASE_URL, `env` adds variables, `args` adds options.
        """
        base.mkdir(parents=True, exist_ok=True)
        listens = list(listens) if listens is not None else [("127.0.0.1", free_port())]
        http_port = free_port(avoid={p for _, p in listens}) if http else None
        state_dir = state_dir or base / "state"
        cmd = [str(BIN), "serve", "--state-dir", str(state_dir)]
        if zones is not None:
            cmd += ["--zones", str(zones)]
        if geoip is not None:
            cmd += ["--geoip", str(geoip)]
        for host, port in listens:
            cmd += ["--listen", format_listen(host, port)]
        cmd += ["--http", f"127.0.0.1:{http_port}" if http_port else "off", *args]
        extra = dict(env or {})
        if database_url is not None:
            extra["DATABASE_URL"] = database_url
        log_path = _new_log_path(base)
        log_file = log_path.open("wb")
        try:
            process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=clean_env(extra), cwd=base)
        except BaseException:
            log_file.close()
            raise
        server = cls(process, base, listens, http_port, state_dir, zones, log_path,
                     serves_dns, _log_file=log_file)
        _RUNNING.add(server)
        if wait:
            try:
                server.wait_ready(ready_timeout)
            except BaseException:
                server.stop()
                raise
        return server

    # -- state --

    @property
    def host(self) -> str:
        return self.listens[0][0]

    @property
    def port(self) -> int:
        return self.listens[0][1]

    @property
    def pid(self) -> int:
        return self.process.pid

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as (host, port, zones_dir, process)."""
        return iter((self.host, self.port, self.zones_dir, self.process))

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Seconds until ready: /ready says 200 (then DNS must answer), else DNS answers."""
        started = time.monotonic()
        while True:
            if not self.alive():
                raise AssertionError(f"server exited early ({self.process.returncode}):\n"
                                     f"{self.log()}")
            if self.http_port is not None:
                if self.http("/ready")[0] == 200:
                    if self.serves_dns:
                        assert self._dns_answers(1.0), \
                            "/ready said 200 but the DNS port does not answer"
                    return time.monotonic() - started
            elif self._dns_answers(0.2):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"server not ready within {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def _dns_answers(self, timeout: float) -> bool:
        try:
            self.query(READY_PROBE, timeout=timeout)
        except (OSError, dns.exception.DNSException):
            return False
        return True

    # -- the log --

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        """Every log line that is a JSON object, in order."""
        events = []
        for line in self.log().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log events called `name` (e.g. "store.loaded"), in order."""
        return [e for e in self.log_events() if e.get("event") == name]

    # -- DNS --

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False,
              timeout: float = QUERY_TIMEOUT, listen: Listen | None = None,
              **options: Any) -> dns.message.Message:
        """Ask `name`/`rdtype` (dnspython `make_query` options) at the first listen address."""
        host, port = listen or self.listens[0]
        message = dns.message.make_query(name, rdtype, **options)
        if tcp:
            return dns.query.tcp(message, host, port=port, timeout=timeout)
        return dns.query.udp(message, host, port=port, timeout=timeout)

    def answer(self, name: str, rdtype: str = "A", *, tcp: bool = False,
               timeout: float = QUERY_TIMEOUT) -> set[str]:
        """The data of every answer record (a timeout fails the test)."""
        reply = self.query(name, rdtype, tcp=tcp, timeout=timeout)
        return {rd.to_text() for rrset in reply.answer for rd in rrset}

    def addresses(self, name: str, rdtype: str = "A", timeout: float = 0.5) -> set[str]:
        """Like `answer`, but an empty set on a timeout, an error or a non-NOERROR reply."""
        try:
            reply = self.query(name, rdtype, timeout=timeout)
        except (OSError, dns.exception.DNSException):
            return set()
        if reply.rcode() != dns.rcode.NOERROR:
            return set()
        return {rd.to_text() for rrset in reply.answer for rd in rrset}

    # -- HTTP --

    def http(self, path: str, method: str = "GET", *, body: bytes = b"",
             token: str | None = None, content_type: str | None = None,
             timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
        """(status, body text); (0, the error) when nothing answers on the HTTP port."""
        assert self.http_port is not None, "this server runs with --http off"
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                         data=body or None, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except OSError as exc:  # not listening (yet, or any more)
            return 0, str(exc)

    def http_json(self, path: str, method: str = "GET", **kwargs: Any) -> tuple[int, Any]:
        """(status, the body parsed as JSON; the text itself when it is not JSON)."""
        status, text = self.http(path, method, **kwargs)
        try:
            return status, json.loads(text or "null")
        except ValueError:
            return status, text

    def ready(self) -> dict[str, Any]:
        """The /ready document."""
        return dict(json.loads(self.http("/ready")[1]))

    def metrics(self) -> str:
        """The /metrics text (Prometheus exposition format)."""
        status, text = self.http("/metrics")
        assert status == 200, f"/metrics: {status} {text}"
        return text

    # -- stopping --

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM this PID, SIGKILL after `timeout` s; the exit code (None: killed).

        Calling it again returns the first result.
        """
        if self.stop_seconds is None:
            self.exit_code, self.stop_seconds = stop_process(self.process, timeout)
            _RUNNING.discard(self)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        return self.exit_code

    def stopped_cleanly(self) -> str | None:
        """None when the server exited 0 on SIGTERM within STOP_TIMEOUT, else why not."""
        code = self.stop()
        if code is None:
            return f"server {self.pid} ignored SIGTERM for {STOP_TIMEOUT} s (killed)"
        if code != 0:
            return f"server {self.pid} exited with {code}:\n{self.log()[-4000:]}"
        if self.stop_seconds is not None and self.stop_seconds >= STOP_TIMEOUT:
            return f"server {self.pid} took {self.stop_seconds:.2f} s to stop"
        return None


StartServer = Callable[..., ServerProcess]  # the `start_server` fixture's type


def _new_log_path(base: pathlib.Path) -> pathlib.Path:
    """server.log, or server-2.log, ... when a server ran in `base` before."""
    path, n = base / "server.log", 1
    while path.exists():
        n += 1
        path = base / f"server-{n}.log"
    return path


def finish(*servers: ServerProcess) -> None:
    """Stop every one of `servers`, then fail unless each stopped cleanly."""
    problems = [p for p in [s.stopped_cleanly() for s in servers] if p is not None]
    assert not problems, "\n".join(problems)


@contextlib.contextmanager
def running(base: pathlib.Path, **options: Any) -> Iterator[ServerProcess]:
    """A started server (`ServerProcess.start` options), stopped on the way out.

    When the body raises, the server is stopped and the error goes on;
    otherwise it must also have stopped cleanly.
    """
    server = ServerProcess.start(base, **options)
    try:
        yield server
    except BaseException:
        server.stop()
        raise
    finish(server)


@atexit.register
def _stop_leftovers() -> None:
    """The last resort: a server no fixture stopped is stopped when the tests end."""
    for server in list(_RUNNING):
        server.stop()
