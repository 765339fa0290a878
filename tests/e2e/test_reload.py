"""Embedded-mode hot reload of the zones folder: edits answer within a second or so, an
invalid file never replaces what is served and is reported where it is wrong, and
queries keep flowing, all correct, while zones are swapped."""

from __future__ import annotations

import os
import pathlib
import re
import threading
import time
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import pytest

from tests.e2e.conftest import prepare_zones, rdata_texts, tcp_exchange, udp_exchange
from tests.support.harness import ServerProcess, StartServer
from tests.support.zones import zone_text

# The target is 1 s (measured ~0.26 s: the 0.25 s folder poll); the test allows more
# so that a loaded CI machine is not flaky.
RELOAD_DEADLINE = 2.5
POLL_EVERY = 0.05
STATIC = {"192.0.2.80", "192.0.2.81"}


def write_zone(path: pathlib.Path, text: str) -> None:
    """Replace a zone file atomically, as an editor or `cp` + `mv` would."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def with_records(original: str, *lines: str) -> str:
    """The zone text with extra entries under `records:` (the last top-level key)."""
    assert original.rstrip().splitlines()[-1].startswith(" "), "records: must be last"
    return original.rstrip("\n") + "\n" + "".join(f"  {line}\n" for line in lines)


def answer(srv: ServerProcess, name: str, rdtype: str = "A") -> tuple[int, set[str]]:
    query = dns.message.make_query(name, rdtype)
    reply, _ = udp_exchange(query, srv.host, srv.port, timeout=1.0)
    return reply.rcode(), rdata_texts(reply, rdtype)


def wait_for_answer(srv: ServerProcess, name: str, rdtype: str, expected: set[str],
                    deadline: float = RELOAD_DEADLINE) -> float:
    """Poll every 50 ms until `name` answers `expected`; return the seconds it took."""
    start = time.monotonic()
    last: tuple[int, set[str]] | None = None
    for _ in range(int(deadline / POLL_EVERY) + 10):
        last = answer(srv, name, rdtype)
        took = time.monotonic() - start
        if last == (dns.rcode.NOERROR, expected):
            return took
        if took > deadline:
            break
        time.sleep(POLL_EVERY)
    pytest.fail(f"{name} {rdtype} still answers {last} {RELOAD_DEADLINE} s after the edit")


@pytest.fixture
def reload_server(start_server: StartServer,
                  tmp_path: pathlib.Path) -> tuple[ServerProcess, pathlib.Path, str]:
    zones = prepare_zones(tmp_path)
    path = zones / "example.com.yaml"
    original = path.read_text()
    write_zone(path, with_records(original, "flip: {type: A, value: 192.0.2.150}"))
    return start_server(zones=zones), path, original


def test_hot_reload_add_invalid_then_fix(reload_server, record_property) -> None:  # type: ignore[no-untyped-def]
    srv, path, original = reload_server

    # 1. add a record
    assert answer(srv, "reload-a.example.com")[0] == dns.rcode.NXDOMAIN
    v1 = with_records(original, "reload-a: {type: A, value: 192.0.2.201}")
    write_zone(path, v1)
    added = wait_for_answer(srv, "reload-a.example.com", "A", {"192.0.2.201"})
    record_property("reload_add_seconds", round(added, 3))
    print(f"\nhot reload: new record answered {added * 1000:.0f} ms after the write")

    # 2. an invalid version: old data keeps answering, the log says where
    v2 = with_records(original, "reload-a: {type: A, value: 192.0.2.202}",
                      "reload-bad: {type: A, value: 999.1.1.1}")
    bad_line = next(i for i, line in enumerate(v2.splitlines(), 1) if "reload-bad" in line)
    write_zone(path, v2)
    end = time.monotonic() + 2.0
    checks = 0
    while time.monotonic() < end and checks < 100:
        assert answer(srv, "reload-a.example.com") == (dns.rcode.NOERROR, {"192.0.2.201"})
        assert answer(srv, "reload-bad.example.com")[0] == dns.rcode.NXDOMAIN
        assert answer(srv, "static.example.com") == (dns.rcode.NOERROR, STATIC)
        checks += 1
        time.sleep(POLL_EVERY)
    located = re.compile(r"(\S*example\.com\.yaml):(\d+): (records\.reload-bad\S*): (.+)")
    found = [m for e in srv.log_events() for v in e.values() if isinstance(v, str)
             if (m := located.search(v))]
    assert found, "no `file:line: field: message` error in the log:\n" + srv.log()[-3000:]
    file, line, fieldpath, message = found[0].groups()
    assert pathlib.Path(file).name == "example.com.yaml"
    assert int(line) == bad_line
    assert fieldpath.startswith("records.reload-bad")
    assert "999.1.1.1" in message
    assert srv.alive()

    # 3. fix it: the change (and the rest of the file) goes live
    v3 = with_records(original, "reload-a: {type: A, value: 192.0.2.203}",
                      'reload-b: {type: AAAA, value: "2001:db8::203"}')
    write_zone(path, v3)
    fixed = wait_for_answer(srv, "reload-a.example.com", "A", {"192.0.2.203"})
    assert answer(srv, "reload-b.example.com", "AAAA") == (dns.rcode.NOERROR, {"2001:db8::203"})
    record_property("reload_fix_seconds", round(fixed, 3))
    print(f"hot reload: fixed file answered {fixed * 1000:.0f} ms after the write")

    # 4. removing a record takes it away
    write_zone(path, original)
    start = time.monotonic()
    while answer(srv, "reload-a.example.com")[0] != dns.rcode.NXDOMAIN:
        assert time.monotonic() - start < RELOAD_DEADLINE, "removed record still answers"
        time.sleep(POLL_EVERY)


@dataclass
class Traffic:
    sent: int = 0
    lost: int = 0
    wrong: list[str] = field(default_factory=list)
    flips_seen: set[str] = field(default_factory=set)


def _client(srv: ServerProcess, stop: threading.Event, traffic: Traffic, flips: set[str]) -> None:
    """Query continuously (bounded: 3 s, 20 000 queries) and check every reply."""
    end = time.monotonic() + 3.0
    checks = [("static.example.com", "A", STATIC), ("flip.example.com", "A", None),
              ("nosuch.example.com", "A", set()), ("www.example.org", "A", {"198.51.100.80"})]
    i = 0
    while not stop.is_set() and time.monotonic() < end and traffic.sent < 20_000:
        name, rdtype, expected = checks[i % len(checks)]
        query = dns.message.make_query(name, rdtype)
        traffic.sent += 1
        try:
            if i % 10 == 9:
                reply, _ = tcp_exchange(query, srv.host, srv.port, timeout=1.0)
            else:
                reply, _ = udp_exchange(query, srv.host, srv.port, timeout=1.0)
        except (OSError, TimeoutError, ConnectionError):
            traffic.lost += 1
            i += 1
            continue
        got = rdata_texts(reply, rdtype)
        want_rcode = dns.rcode.NXDOMAIN if name.startswith("nosuch") else dns.rcode.NOERROR
        if expected is None:
            ok = reply.rcode() == want_rcode and len(got) == 1 and got <= flips
            traffic.flips_seen |= got
        else:
            ok = reply.rcode() == want_rcode and got == expected
        if not ok:
            traffic.wrong.append(f"{name} {rdtype}: {dns.rcode.to_text(reply.rcode())} {got}")
        i += 1


def test_queries_during_reloads_are_never_lost_or_wrong(reload_server) -> None:  # type: ignore[no-untyped-def]
    srv, path, original = reload_server
    values = [f"192.0.2.{150 + i}" for i in range(8)]
    stop = threading.Event()
    traffic = Traffic()
    thread = threading.Thread(target=_client, args=(srv, stop, traffic, set(values)),
                              daemon=True)
    thread.start()
    try:
        for i, value in enumerate(values[1:], 1):
            time.sleep(0.3)
            if i == 4:  # an invalid version in the middle changes nothing
                write_zone(path, with_records(original, f"flip: {{type: A, value: {value}}}",
                                              "oops: {type: A, value: not-an-ip}"))
            else:
                write_zone(path, with_records(original, f"flip: {{type: A, value: {value}}}"))
    finally:
        time.sleep(0.3)
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    print(f"\nreload traffic: {traffic.sent} queries, {traffic.lost} lost, "
          f"{len(traffic.wrong)} wrong, flip values seen {sorted(traffic.flips_seen)}")
    assert traffic.sent >= 100
    assert traffic.lost == 0
    assert traffic.wrong == []
    assert values[4] not in traffic.flips_seen, "a value from an invalid file was served"
    assert len(traffic.flips_seen) >= 3, "the queries did not span several reloads"
    wait_for_answer(srv, "flip.example.com", "A", {values[-1]})


NEW_ZONE = zone_text("""\
ns1: {type: A, value: 192.0.2.230}
www: {type: A, value: 192.0.2.231}
""", "added.test.", ttl=60, negative_ttl=60)


def test_zone_files_added_and_removed(reload_server) -> None:  # type: ignore[no-untyped-def]
    srv, path, _ = reload_server
    new = path.with_name("added.test.yaml")
    assert answer(srv, "www.added.test")[0] == dns.rcode.REFUSED
    write_zone(new, NEW_ZONE)
    took = wait_for_answer(srv, "www.added.test", "A", {"192.0.2.231"})
    print(f"\nhot reload: new zone file answered {took * 1000:.0f} ms after the write")
    new.unlink()
    start = time.monotonic()
    while answer(srv, "www.added.test")[0] != dns.rcode.REFUSED:
        assert time.monotonic() - start < RELOAD_DEADLINE, "a deleted zone is still served"
        time.sleep(POLL_EVERY)
    assert answer(srv, "static.example.com") == (dns.rcode.NOERROR, STATIC)


def test_startup_with_an_invalid_file_serves_the_others(start_server: StartServer,
                                                        tmp_path: pathlib.Path) -> None:
    zones = prepare_zones(tmp_path)
    path = zones / "example.com.yaml"
    original = path.read_text()
    broken = with_records(original, "bad: {type: AAAA, value: 192.0.2.1}")
    bad_line = len(broken.splitlines())
    write_zone(path, broken)
    srv = start_server(zones=zones)
    assert answer(srv, "example.org") == (dns.rcode.NOERROR, {"198.51.100.80"})
    # never loaded: SERVFAIL (a resolver retries), not REFUSED (not hosted here)
    assert answer(srv, "static.example.com")[0] == dns.rcode.SERVFAIL
    located = re.compile(rf"example\.com\.yaml:{bad_line}: records\.bad\S*: .+")
    assert any(located.search(v) for e in srv.log_events() for v in e.values()
               if isinstance(v, str)), srv.log()[-3000:]
    write_zone(path, original)
    wait_for_answer(srv, "static.example.com", "A", STATIC)


def test_ready_lists_the_standing_zone_problems(start_server: StartServer) -> None:
    """An invalid zone file is reported by /ready (the last good version serves)."""
    srv = start_server()
    path = srv.zones_dir / "example.org.yaml"
    path.write_text(path.read_text().replace("value: 198.51.100.80", "value: 999.0.0.1"))
    def problems() -> list[str]:
        return list(srv.ready().get("zone_problems", []))

    deadline = time.monotonic() + 5
    while not problems() and time.monotonic() < deadline:
        time.sleep(0.05)
    [problem] = problems()
    assert problem.endswith('records.@[0].value: "999.0.0.1" is not an IPv4 address')
