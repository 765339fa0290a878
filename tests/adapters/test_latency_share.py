"""The fleet's latency stream reader (adapters/latency_share.py) on the machine's real
Redis (a unique key prefix per test)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from geostream_dns.adapters.latency import LatencyService, LatencyTable
from geostream_dns.adapters.latency_input import encode_rows
from geostream_dns.adapters.latency_share import READ_BLOCK_MS, LatencyShare
from geostream_dns.adapters.redis_link import RedisLink, parse_redis_url
from geostream_dns.core.latency import PROBE_KEY
from tests.support.harness import new_redis_prefix, remove_redis_prefix

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    name = new_redis_prefix()
    yield name
    remove_redis_prefix(name, REDIS_URL)


def test_waiting_on_a_quiet_stream_is_not_an_outage(prefix: str) -> None:
    """A blocking read of an empty stream answers after READ_BLOCK_MS: that must not
    count as Redis going away (which makes the server leave the fleet's verdicts
    for its own prober, and its site probe twice)."""
    link = RedisLink(parse_redis_url(REDIS_URL), prefix)
    link.answered()
    service = LatencyService(LatencyTable(60.0, 1000), lambda view: None)
    share = LatencyShare(link, service, "reader")
    share.start()
    other = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        deadline = time.monotonic() + 4 * READ_BLOCK_MS / 1000 + 0.5
        while time.monotonic() < deadline:  # four empty reads, and some
            assert link.up and link.failures == 0, link.last_error
            time.sleep(0.05)
        # ... and the reader still takes another server's batch in
        other.xadd(share.stream, {"s": "elsewhere", "t": repr(time.time()),
                                  "d": encode_rows([((PROBE_KEY,), "here", 12.5, 1)])})
        deadline = time.monotonic() + 5
        while share.received == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert share.received == 1
        assert link.up and link.outages == 0, link.last_error
    finally:
        share.stop()
        other.close()
        link.blocking_client(READ_BLOCK_MS / 1000).close()
