"""Embedded mode never loses a zone: a restart with a broken file serves the last
good version, a zone that never loaded answers SERVFAIL, /ready says what is
wrong, an emptied folder keeps serving, a missing folder is an error at start."""

from __future__ import annotations

import pathlib
import re
import shutil

import dns.rcode

from tests.support.harness import ServerProcess, StartServer, run_cli, wait_until
from tests.support.zones import write_zone

GOOD = "www: {type: A, value: 192.0.2.10}"
BROKEN = "www: {type: A, value: not-an-address}"


def problems_gauge(server: ServerProcess) -> float:
    found = re.search(r"^geostream_config_zone_problems (\S+)$", server.metrics(), re.M)
    assert found, "geostream_config_zone_problems missing"
    return float(found.group(1))


def ready(server: ServerProcess) -> tuple[int, dict[str, object]]:
    status, body = server.http_json("/ready")
    assert isinstance(body, dict)
    return status, body


def test_restart_with_a_broken_file_serves_the_last_good_zone(
        tmp_path: pathlib.Path, start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    path = write_zone(folder, GOOD, "example.org.")
    state = tmp_path / "state"
    first = start_server(zones=folder, state_dir=state)
    assert first.addresses("www.example.org") == {"192.0.2.10"}
    serial = first.answer("example.org", "SOA")
    assert first.stop() == 0

    path.write_text(path.read_text().replace("192.0.2.10", "not-an-address"))
    second = start_server(zones=folder, state_dir=state)
    assert second.addresses("www.example.org") == {"192.0.2.10"}
    assert second.answer("example.org", "SOA") == serial  # the very version served before
    status, body = ready(second)
    assert status == 200
    assert body["zones_with_problems"] == ["example.org."]
    assert any(str(p).startswith(f"{path}:") for p in body["zone_problems"])  # type: ignore[attr-defined]
    assert problems_gauge(second) == 1
    # Fixed: the new version serves and the problem is gone.
    path.write_text(path.read_text().replace("not-an-address", "192.0.2.20"))
    wait_until(lambda: second.addresses("www.example.org") == {"192.0.2.20"}, 10)
    assert problems_gauge(second) == 0
    assert "zone_problems" not in ready(second)[1]


def test_a_zone_that_never_loaded_answers_servfail_and_ready_says_503(
        tmp_path: pathlib.Path, start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    path = write_zone(folder, BROKEN, "example.org.")
    server = start_server(zones=folder, wait=False)
    wait_until(lambda: server.http("/ready")[0] == 503 and "unloaded_zones" in ready(server)[1],
               20)
    status, body = ready(server)
    assert status == 503 and body["status"] == "no zone loaded"
    assert body["unloaded_zones"] == ["example.org."]
    assert body["zones_with_problems"] == ["example.org."]
    assert server.query("www.example.org").rcode() == dns.rcode.SERVFAIL
    assert server.query("example.org", "SOA").rcode() == dns.rcode.SERVFAIL
    assert server.query("www.example.net").rcode() == dns.rcode.REFUSED  # never hosted
    assert problems_gauge(server) == 1
    # A good zone beside it: ready, while the broken one still answers SERVFAIL.
    write_zone(folder, GOOD, "example.net.")
    wait_until(lambda: server.http("/ready")[0] == 200, 10)
    assert server.addresses("www.example.net") == {"192.0.2.10"}
    assert server.query("www.example.org").rcode() == dns.rcode.SERVFAIL
    # Fixed: answered.
    path.write_text(path.read_text().replace("not-an-address", "192.0.2.30"))
    wait_until(lambda: server.addresses("www.example.org") == {"192.0.2.30"}, 10)
    assert "unloaded_zones" not in ready(server)[1]


def test_an_emptied_folder_keeps_serving_and_says_so(
        tmp_path: pathlib.Path, start_server: StartServer) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, GOOD, "example.org.")
    write_zone(folder, GOOD, "example.net.")
    server = start_server(zones=folder)
    shutil.rmtree(folder)  # a failed checkout, an unmounted volume
    wait_until(lambda: "zone_problems" in ready(server)[1], 10)
    assert server.addresses("www.example.org") == {"192.0.2.10"}
    assert server.addresses("www.example.net") == {"192.0.2.10"}
    status, body = ready(server)
    assert status == 200
    assert body["zones_with_problems"] == ["example.net.", "example.org."]
    assert all("no zone files any more" in str(p) for p in body["zone_problems"])  # type: ignore[attr-defined]
    assert problems_gauge(server) == 2
    assert server.events("zone.invalid"), "the emptied folder was not logged as an error"
    # The files come back: nothing to report any more.
    write_zone(folder, GOOD, "example.org.")
    wait_until(lambda: "zone_problems" not in ready(server)[1], 10)
    assert server.query("www.example.net").rcode() == dns.rcode.REFUSED  # really removed now


def test_a_missing_zones_folder_is_an_error_at_start(tmp_path: pathlib.Path) -> None:
    result = run_cli("serve", "--zones", tmp_path / "nope", "--listen", "127.0.0.1:0",
                     "--http", "off", "--no-probe", timeout=30)
    assert result.returncode == 2
    assert f"--zones: no such file or directory: {tmp_path / 'nope'}" in result.stderr


def test_check_on_a_folder_without_zone_files_is_an_error(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli("check", tmp_path / "empty")
    assert result.returncode == 1
    assert "no zone files (*.yaml, *.yml) in" in result.stderr
