"""`serve --query-log FILE --query-log-sample N` over real sockets: what a line
holds, sampling, reopening on SIGHUP (log rotation), and `--workers 2` sharing
one file, with the counts in /metrics."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
from typing import Any

import dns.edns
import dns.message
import dns.rcode

from tests.support.harness import READY_PROBE, ServerProcess, StartServer, wait_until

WAIT = 10.0  # seconds for the writer (a batch every 0.2 s) to catch up


def lines(path: pathlib.Path) -> list[dict[str, Any]]:
    """The lines of the log, but for the harness's readiness queries."""
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in entries if e["name"] != READY_PROBE]


def wait_lines(path: pathlib.Path, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(lines(path)) >= count, WAIT)
    return lines(path)


def metric(server: ServerProcess, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", server.metrics(), re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def start(start_server: StartServer, tmp_path: pathlib.Path, city_mmdb: pathlib.Path,
          log: pathlib.Path, *args: str) -> ServerProcess:
    # the e2e start_server: a copy of the sample zones, the test GeoIP, --no-probe
    return start_server(args=["--query-log", str(log), *args])


def test_one_line_per_query(start_server: StartServer, tmp_path: pathlib.Path,
                            city_mmdb: pathlib.Path) -> None:
    log = tmp_path / "queries.log"
    server = start(start_server, tmp_path, city_mmdb, log)
    ecs = dns.edns.ECSOption("5.9.0.0", 16)
    routed = server.query("www.example.com.", "A", use_edns=0, options=[ecs])
    assert routed.rcode() == dns.rcode.NOERROR
    assert server.query("nothing-here.example.com.", "AAAA", tcp=True).rcode() \
        == dns.rcode.NXDOMAIN
    assert server.query("www.example.net.", "A").rcode() == dns.rcode.REFUSED
    got = wait_lines(log, 3)
    assert len(got) == 3, got
    first, second, third = got
    assert first["transport"] == "udp" and first["client"] == "127.0.0.0/24"
    assert first["name"] == "www.example.com." and first["type"] == "A"
    assert first["ecs"] == "5.9.0.0/16" and first["scope"] is not None
    assert first["rcode"] == "NOERROR" and first["zone"] == "example.com."
    assert first["rule"] is not None and first["pool"] is not None
    assert 0 < first["duration_s"] < 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["time"])
    assert (second["transport"], second["name"], second["type"], second["rcode"],
            second["ecs"], second["rule"], second["pool"]) == \
        ("tcp", "nothing-here.example.com.", "AAAA", "NXDOMAIN", None, None, None)
    assert (third["rcode"], third["zone"]) == ("REFUSED", None)
    assert metric(server, "geostream_query_log_lines_total") >= 3
    assert metric(server, "geostream_query_log_dropped_total") == 0


def test_a_malformed_query_is_logged_with_what_can_be_read(
        start_server: StartServer, tmp_path: pathlib.Path, city_mmdb: pathlib.Path) -> None:
    import socket

    log = tmp_path / "queries.log"
    server = start(start_server, tmp_path, city_mmdb, log)
    wire = dns.message.make_query("www.example.com.", "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(wire + b"\x00\x01garbage", (server.host, server.port))
        reply = dns.message.from_wire(sock.recv(4096))
    assert reply.rcode() == dns.rcode.FORMERR
    entry = wait_lines(log, 1)[0]
    assert entry["rcode"] == "FORMERR" and entry["name"] == "www.example.com."
    assert server.alive()


def test_sampling_logs_one_query_in_n(start_server: StartServer, tmp_path: pathlib.Path,
                                      city_mmdb: pathlib.Path) -> None:
    log = tmp_path / "queries.log"
    server = start(start_server, tmp_path, city_mmdb, log, "--query-log-sample", "5")
    for _ in range(50):
        server.query("static.example.com.", "A")

    def answered() -> int:  # the harness's readiness queries included
        return int(sum(float(v) for v in re.findall(
            r"^geostream_dns_queries_total\{[^}]*\} (\S+)$", server.metrics(), re.M)))

    assert answered() >= 50
    wait_until(lambda: log.read_text().count("\n") == answered() // 5, WAIT)
    assert {e["name"] for e in lines(log)[-5:]} == {"static.example.com."}


def test_sighup_reopens_the_file(start_server: StartServer, tmp_path: pathlib.Path,
                                 city_mmdb: pathlib.Path) -> None:
    log = tmp_path / "queries.log"
    server = start(start_server, tmp_path, city_mmdb, log)
    server.query("static.example.com.", "A")
    wait_lines(log, 1)
    rotated = tmp_path / "queries.log.1"
    log.rename(rotated)
    os.kill(server.pid, signal.SIGHUP)
    wait_until(lambda: bool(server.events("query_log.reopened")), WAIT)
    assert log.exists()
    for _ in range(5):
        server.query("mail.example.com.", "A")
    assert [e["name"] for e in wait_lines(log, 5)] == ["mail.example.com."] * 5
    assert [e["name"] for e in lines(rotated)] == ["static.example.com."]
    assert server.alive()


def test_workers_share_one_file(start_server: StartServer, tmp_path: pathlib.Path,
                                city_mmdb: pathlib.Path) -> None:
    log = tmp_path / "queries.log"
    server = start(start_server, tmp_path, city_mmdb, log, "--workers", "2")
    for i in range(40):
        server.query(f"n{i}.static.example.com.", "A")
    got = wait_lines(log, 40)
    assert sorted(e["name"] for e in got) == \
        sorted(f"n{i}.static.example.com." for i in range(40))
    # /metrics adds up both workers' lines (the other worker reports every second).
    everything = log.read_text().count("\n")  # readiness queries included
    wait_until(lambda: metric(server, "geostream_query_log_lines_total") == everything, WAIT)
    # SIGHUP to the server reaches both workers.
    log.rename(tmp_path / "queries.log.1")
    os.kill(server.pid, signal.SIGHUP)
    wait_until(lambda: len(server.events("query_log.reopened")) == 2, WAIT)
    for i in range(40):
        server.query(f"m{i}.static.example.com.", "A")
    assert sorted(e["name"] for e in wait_lines(log, 40)) == \
        sorted(f"m{i}.static.example.com." for i in range(40))


def test_bad_query_log_settings_are_clear_errors(tmp_path: pathlib.Path) -> None:
    from tests.support.harness import SAMPLE_ZONES, free_port, run_cli

    base = ["serve", "--zones", str(SAMPLE_ZONES), "--listen", f"127.0.0.1:{free_port()}",
            "--http", "off", "--no-probe", "--state-dir", str(tmp_path / "state")]
    missing = tmp_path / "no-such-folder" / "q.log"
    result = run_cli(*base, "--query-log", str(missing), timeout=30)
    assert result.returncode == 1, result
    assert f"--query-log {missing}: No such file or directory" in result.stderr
    result = run_cli(*base, "--query-log", str(tmp_path / "q.log"), "--query-log-sample", "0",
                     timeout=30)
    assert result.returncode == 2, result
    assert "--query-log-sample: must be 1 or more, got 0" in result.stderr


def test_workers_zero_is_refused(tmp_path: pathlib.Path) -> None:
    from tests.support.harness import SAMPLE_ZONES, free_port, run_cli

    result = run_cli("serve", "--zones", str(SAMPLE_ZONES), "--listen",
                     f"127.0.0.1:{free_port()}", "--http", "off", "--no-probe",
                     "--state-dir", str(tmp_path / "state"), "--workers", "0", timeout=30)
    assert result.returncode == 2, result
    assert "--workers: must be 1 or more, got 0" in result.stderr
