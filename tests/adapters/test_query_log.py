"""The query log's buffer, writer and formatting, in-process (tests/e2e has it
over real sockets): a full buffer drops and counts, it never grows or blocks."""

from __future__ import annotations

import asyncio
import json
import pathlib

import dns.edns
import dns.message
import dns.name

from geostream_dns.adapters.query_log import QueryLog, client_network, format_entry
from geostream_dns.core.outcome import Outcome

OUTCOME = Outcome(1, 0, "example.com.", "routed", "memo", "geos", "eu", 16)


def query_bytes() -> bytes:
    ecs = dns.edns.ECSOption("198.51.100.0", 24)
    return dns.message.make_query("WWW.example.com.", "A", use_edns=0, options=[ecs]).to_wire()


def test_a_full_buffer_drops_and_counts(tmp_path: pathlib.Path) -> None:
    log = QueryLog(tmp_path / "q.log", limit=3)
    try:
        for _ in range(5):
            log.offer("udp", query_bytes(), "192.0.2.7", OUTCOME, 1000)
        assert len(log.buffer) == 3 and log.dropped == 2
    finally:
        log.close()  # writes what was buffered
    assert len((tmp_path / "q.log").read_text().splitlines()) == 3
    assert log.written == 3


def test_the_writer_empties_the_buffer_in_batches(tmp_path: pathlib.Path) -> None:
    async def main() -> QueryLog:
        log = QueryLog(tmp_path / "q.log", flush_interval=0.01)
        log.start()
        for _ in range(100):
            log.offer("tcp", query_bytes(), "2001:db8:1:2::7", OUTCOME, 2500)
        for _ in range(500):
            if log.written == 100:
                break
            await asyncio.sleep(0.01)
        log.close()
        return log

    log = asyncio.run(main())
    assert log.written == 100 and log.buffer == []
    entries = [json.loads(x) for x in (tmp_path / "q.log").read_text().splitlines()]
    assert len(entries) == 100
    assert entries[0] | {"time": "-"} == {
        "time": "-", "transport": "tcp", "client": "2001:db8:1::/48",
        "ecs": "198.51.100.0/24", "name": "WWW.example.com.", "type": "A",
        "rcode": "NOERROR", "zone": "example.com.", "rule": "geos", "pool": "eu",
        "scope": 16, "duration_s": 2.5e-06}


def test_unreadable_bytes_still_make_a_line() -> None:
    dropped = Outcome(0, -1, "", "dropped", "none")
    entry = json.loads(format_entry((0.0, "udp", b"\x01\x02", "192.0.2.1", dropped, 10)))
    assert (entry["name"], entry["type"], entry["rcode"]) == (None, None, "DROPPED")
    assert entry["time"] == "1970-01-01T00:00:00.000000Z"


def test_client_network() -> None:
    assert client_network("192.0.2.77") == "192.0.2.0/24"
    assert client_network("2001:db8:aa:bb::1") == "2001:db8:aa::/48"
    assert client_network("fe80::1%lo") == "fe80::/48"
    assert client_network("not an address") == "not an address"


def test_odd_names_still_make_valid_json() -> None:
    name = dns.name.from_text('we"ird\\\\name.example.com.')
    wire = dns.message.make_query(name, "TXT").to_wire()
    entry = json.loads(format_entry((1.5, "udp", wire, "192.0.2.1", OUTCOME, 10)))
    assert entry["name"] == name.to_text() and entry["type"] == "TXT"
    assert entry["time"] == "1970-01-01T00:00:01.500000Z"
