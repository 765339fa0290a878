"""REDIS_URL: every form the fleet takes, and clear errors for the rest."""

from __future__ import annotations

import re

import pytest

from geostream_dns.adapters.redis_link import parse_redis_url


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:secret@127.0.0.1/2",
                                 "rediss://cache.example.net:6380/0",
                                 "unix:///run/redis/redis.sock?db=1"])
def test_plain_urls(url: str) -> None:
    target = parse_redis_url(url)
    assert target.url == url and not target.sentinels
    assert "secret" not in target.display


def test_sentinel_url() -> None:
    target = parse_redis_url("redis+sentinel://user:pw@127.0.0.1:26379,[::1]:26380/mymaster/3")
    assert target.sentinels == (("127.0.0.1", 26379), ("::1", 26380))
    assert (target.service, target.db, target.username, target.password) == (
        "mymaster", 3, "user", "pw")
    assert target.display == "redis+sentinel://127.0.0.1:26379,::1:26380/mymaster/3"
    assert parse_redis_url("redis+sentinel://127.0.0.1:26379/mymaster").db == 0


@pytest.mark.parametrize(("url", "message"), [
    ("http://127.0.0.1:6379", "the scheme must be"),
    ("redis+sentinel://127.0.0.1/mymaster", "sentinels are HOST:PORT"),
    ("redis+sentinel://127.0.0.1:26379", "expected redis+sentinel://"),
    ("redis+sentinel://127.0.0.1:26379/mymaster/x", "the database must be a number"),
    ("redis+sentinel://127.0.0.1:26379/mymaster?ssl=1", "unknown option"),
])
def test_bad_urls_say_why(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_redis_url(url)
