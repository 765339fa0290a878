"""`serve --user NAME`, for real: started as root, bound to a privileged loopback
port, then running as `nobody` — checked in /proc/PID/status — and still
answering, reloading and serving HTTP; with `--workers 2` every worker drops."""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest

from tests.support.harness import (
    ServerProcess,
    child_processes,
    finish,
    free_port,
    run_cli,
    wait_until,
    worker_pids,
)
from tests.support.zones import write_zone

USER = "nobody"
RECORDS_V1 = "www: {type: A, value: 192.0.2.1}\n"
RECORDS_V2 = "www: {type: A, value: 192.0.2.2}\n"


@pytest.fixture(autouse=True)
def _as_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the privilege drop tests start the server as root (run as root)",
                    pytrace=False)


@pytest.fixture
def folder() -> Iterator[pathlib.Path]:
    """A folder `nobody` can read (pytest's tmp_path is root's alone)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="geostream-user-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def privileged_port() -> int:
    """A port below 1024 free for UDP and TCP on 127.0.0.1 (bounded search)."""
    for port in range(853, 1024):
        held = []
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(socket.AF_INET, kind)
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError("no privileged port free on 127.0.0.1")


def credentials(pid: int) -> dict[str, list[int]]:
    """Uid, Gid (real, effective, saved, filesystem) and Groups of a process."""
    out: dict[str, list[int]] = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
    return out


def children(pid: int) -> list[int]:
    return sorted(worker_pids(pid))


def start(folder: pathlib.Path, *args: str) -> ServerProcess:
    zones = folder / "zones"
    zones.mkdir(mode=0o755)
    write_zone(zones, RECORDS_V1).chmod(0o644)
    return ServerProcess.start(folder / "run", zones=zones, state_dir=folder / "state",
                               listens=[("127.0.0.1", privileged_port())],
                               args=["--user", USER, "--no-probe", *args])


def assert_dropped(pid: int) -> None:
    account = pwd.getpwnam(USER)
    creds = credentials(pid)
    assert creds["Uid"] == [account.pw_uid] * 4, creds
    assert creds["Gid"] == [account.pw_gid] * 4, creds
    assert 0 not in creds["Groups"], creds
    assert set(creds["Groups"]) <= set(os.getgrouplist(USER, account.pw_gid)), creds


def test_serve_user_binds_as_root_then_runs_as_the_user(folder: pathlib.Path) -> None:
    # A state dir that root made before: the server hands it over.
    state = folder / "state"
    state.mkdir()
    (state / "drained.json").write_text('{"regions": []}')
    server = start(folder, "--query-log", str(folder / "queries.log"))
    try:
        assert server.port < 1024
        assert_dropped(server.pid)
        assert server.answer("www.example.com.") == {"192.0.2.1"}
        assert server.answer("www.example.com.", tcp=True) == {"192.0.2.1"}
        # A reload, read as the user.
        write_zone(server.zones_dir, RECORDS_V2)  # type: ignore[arg-type]
        wait_until(lambda: server.addresses("www.example.com.") == {"192.0.2.2"}, 10)
        # HTTP (bound before the drop too) and its routes, imported on demand.
        for path in ("/ready", "/metrics", "/v1/health", "/v1/zones/example.com.",
                     "/openapi.json", "/v1/explain?name=www.example.com&type=A&client=192.0.2.1"):
            status, body = server.http(path)
            assert status == 200, (path, body)
        uid = pwd.getpwnam(USER).pw_uid
        for path in [state, *state.rglob("*"), folder / "queries.log"]:
            assert path.stat().st_uid == uid, path
        assert [e["user"] for e in server.events("privileges.dropped")] == [USER]
    finally:
        finish(server)


def test_every_worker_drops(folder: pathlib.Path) -> None:
    server = start(folder, "--workers", "2")
    try:
        workers = children(server.pid)
        assert len(workers) == 1, workers
        # the latency checker (a process spawned before the drop) drops by itself
        def checkers() -> list[int]:
            return [child for child, cmdline in child_processes(server.pid).items()
                    if b"spawn_main" in cmdline]

        wait_until(lambda: len(checkers()) == 1, 10)
        [checker] = checkers()
        # it drops once its interpreter has started (its pool's initializer)
        uid = pwd.getpwnam(USER).pw_uid
        wait_until(lambda: credentials(checker)["Uid"] == [uid] * 4, 20)
        for pid in (server.pid, *workers, checker):
            assert_dropped(pid)
        # the worker writes its line when it gets to it (a loaded machine may be slow)
        wait_until(lambda: len(server.events("privileges.dropped")) == 2, 10)
        # Both workers reload: every reply, whichever worker answers it, is new.
        write_zone(server.zones_dir, RECORDS_V2)  # type: ignore[arg-type]
        wait_until(lambda: all(server.addresses("www.example.com.") == {"192.0.2.2"}
                               for _ in range(20)), 15)
        assert 'geostream_dns_queries_total{qtype="A",rcode="NOERROR",transport="udp"}' \
            in server.metrics()
    finally:
        finish(server)
    assert not [pid for pid in workers if pathlib.Path(f"/proc/{pid}").exists()
                and "zombie" not in pathlib.Path(f"/proc/{pid}/status").read_text()]


def test_an_unknown_user_is_a_clear_error(folder: pathlib.Path) -> None:
    port = free_port()
    result = run_cli("serve", "--zones", str(folder), "--listen", f"127.0.0.1:{port}",
                     "--http", "off", "--user", "no-such-user-geostream", timeout=30)
    assert result.returncode == 2, result
    assert "--user no-such-user-geostream: no such user" in result.stderr
    # Nothing was left bound.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
