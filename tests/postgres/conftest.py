"""Fixtures for tests against the machine's real PostgreSQL (never skipped).

How this works: every test that asks for ``database_url`` gets a database of
its own, ``gs_test_<uuid>``, created through the ``postgres`` database on
127.0.0.1 as user ``postgres`` (override with ``GEOSTREAM_TEST_ADMIN_URL``)
and dropped afterwards, after ending whatever is still connected to it.
``migrated_url`` is the same with the schema in place. If PostgreSQL cannot
be reached the tests fail with the reason: `make test` starts it.

``cli()`` runs the ``geostream-dns`` command line in-process (fast) and
returns its exit code and output; ``launch_server()`` runs ``geostream-dns
serve`` as a subprocess on free ports and waits for ``/ready``.
"""

from __future__ import annotations

import io
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
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import IO, Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import psycopg
import pytest
from psycopg import sql

from geostream_dns.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin" / "geostream-dns"
ADMIN_URL = os.environ.get("GEOSTREAM_TEST_ADMIN_URL",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
READY_TIMEOUT = 20.0


def admin_connect(url: str = ADMIN_URL) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {url} (run `make services`): {exc}",
                    pytrace=False)


def url_for(database: str, admin_url: str = ADMIN_URL) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{database}"


def create_database(admin_url: str = ADMIN_URL) -> str:
    name = f"gs_test_{uuid.uuid4().hex}"
    with admin_connect(admin_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    with admin_connect(admin_url) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def database_url() -> Iterator[str]:
    name = create_database()
    try:
        yield url_for(name)
    finally:
        drop_database(name)


@pytest.fixture
def migrated_url(database_url: str) -> str:
    result = cli("migrate", "--database-url", database_url)
    assert result.code == 0, result
    return database_url


# -- the command line, in-process -------------------------------------------


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def cli(*args: str | pathlib.Path) -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


# -- zone files ----------------------------------------------------------------

ZONE_HEAD = """\
zone: {origin}
ttl: 300
soa:
  primary: ns1.example.net.
  email: hostmaster@example.com
  refresh: 7200
  retry: 900
  expire: 1209600
  negative_ttl: 300
nameservers: [ns1.example.net., ns2.example.net.]
records:
"""


def write_zone(folder: pathlib.Path, origin: str, records: str) -> pathlib.Path:
    """A zone file with the common head and ``records`` (indented two spaces)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{origin.rstrip('.')}.yaml"
    body = "".join(f"  {line}\n" for line in records.strip("\n").splitlines())
    path.write_text(ZONE_HEAD.format(origin=origin) + body)
    return path


# -- servers ---------------------------------------------------------------------


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (bounded attempts)."""
    for _ in range(50):
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    http_port: int
    log_path: pathlib.Path
    state_dir: pathlib.Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                out.append(event)
        return out

    def query(self, name: str, rtype: str = "A", timeout: float = 0.5) -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1",
                             port=self.port, timeout=timeout)

    def addresses(self, name: str, rtype: str = "A", timeout: float = 0.5) -> set[str]:
        """The answer's addresses, or an empty set on a timeout or an error."""
        try:
            reply = self.query(name, rtype, timeout)
        except (OSError, dns.exception.Timeout):
            return set()
        if reply.rcode() != dns.rcode.NOERROR:
            return set()
        return {r.to_text() for rrset in reply.answer for r in rrset}

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=2) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:  # not listening (yet, or any more)
            return 0, str(exc)

    def ready(self) -> dict[str, Any]:
        return dict(json.loads(self.http("/ready")[1]))

    def stop(self) -> int | None:
        """SIGTERM this one process; SIGKILL after 10 s. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode


def launch_server(base: pathlib.Path, database_url: str, *,
                  state_dir: pathlib.Path | None = None, wait: bool = True,
                  extra_env: dict[str, str] | None = None) -> Server:
    base.mkdir(parents=True, exist_ok=True)
    port, http_port = free_port(), free_port()
    state_dir = state_dir or base / "state"
    log_path = base / "server.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GEOSTREAM_") and k not in ("REDIS_URL",)}
    env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    log = log_path.open("ab")
    process = subprocess.Popen(
        [str(BIN), "serve", "--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}",
         "--state-dir", str(state_dir)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=base)
    server = Server(process, port, http_port, log_path, state_dir, log)
    if wait:
        try:
            wait_ready(server)
        except BaseException:
            server.stop()
            raise
    return server


def wait_ready(server: Server, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited ({server.process.returncode}):\n{server.log()}")
        if server.http("/ready")[0] == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"server not ready within {timeout} s:\n{server.log()}")


def wait_for(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Seconds until ``check()`` held, or None when it did not within ``timeout``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(step)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test launched (append them); each stopped at teardown."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()
