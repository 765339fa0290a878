"""The fleet's cookie secret (adapters/cookie_secret.py): in the state dir, in the real
Redis of the machine (a unique key prefix per test), and its rotation."""

from __future__ import annotations

import asyncio
import json
import pathlib
import stat
import time
from collections.abc import Iterator

import pytest
import redis

from geostream_dns.adapters.cookie_secret import FILE_NAME, CookieSecret
from geostream_dns.adapters.redis_link import RedisLink, parse_redis_url
from geostream_dns.core.cookies import Cookies
from tests.support.harness import new_redis_prefix, remove_redis_prefix

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    name = new_redis_prefix()
    yield name
    remove_redis_prefix(name, REDIS_URL)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def started(state: pathlib.Path, *, link: RedisLink | None = None, rotation: float = 3600,
                  keeper: bool = True) -> tuple[CookieSecret, Cookies]:
    cookies = Cookies(bytes(16))
    keeper_ = CookieSecret(cookies, state, rotation=rotation, link=link, keeper=keeper)
    await keeper_.start()
    keeper_.stop()
    return keeper_, cookies


def test_embedded_the_secret_is_made_once_and_kept_in_the_state_dir(tmp_path: pathlib.Path) -> None:
    _, first = run(started(tmp_path))
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.secret != bytes(16) and first.now > 1_600_000_000
    _, again = run(started(tmp_path))  # a restart keeps it: cookies survive restarts
    assert again.secret == first.secret
    _, worker = run(started(tmp_path, keeper=False))  # another worker follows the file
    assert worker.secret == first.secret


def test_embedded_rotation_keeps_the_previous_secret(tmp_path: pathlib.Path) -> None:
    _, first = run(started(tmp_path))
    data = json.loads((tmp_path / FILE_NAME).read_text())
    data["rotated_at"] = time.time() - 7200  # due under a rotation of an hour
    (tmp_path / FILE_NAME).write_text(json.dumps(data))
    _, rotated = run(started(tmp_path, rotation=3600))
    assert rotated.secret != first.secret and rotated.previous == first.secret
    made, _ = first.respond(b"clientck", "192.0.2.1")
    rotated.now = first.now
    assert rotated.respond(made[4:], "192.0.2.1")[1]  # the old secret's cookie holds


def test_a_running_keeper_rotates_on_time(tmp_path: pathlib.Path) -> None:
    async def scenario() -> tuple[bytes, bytes | None, bytes]:
        cookies = Cookies(bytes(16))
        keeper = CookieSecret(cookies, tmp_path, rotation=1.5)
        await keeper.start()
        first = cookies.secret
        await asyncio.sleep(3.2)
        keeper.stop()
        return first, cookies.previous, cookies.secret

    first, previous, now = run(scenario())
    assert now != first and previous is not None


def test_redis_servers_share_one_secret(tmp_path: pathlib.Path, prefix: str) -> None:
    target = parse_redis_url(REDIS_URL)
    _, a = run(started(tmp_path / "a", link=RedisLink(target, prefix)))
    _, b = run(started(tmp_path / "b", link=RedisLink(target, prefix)))
    assert a.secret == b.secret
    # the secret is mirrored to the state dir, for a start while Redis is away
    saved = json.loads((tmp_path / "b" / FILE_NAME).read_text())
    assert bytes.fromhex(saved["current"]) == a.secret
    stored = redis.Redis.from_url(REDIS_URL).hgetall(f"{prefix}cookie-secret")
    assert bytes.fromhex(stored[b"current"].decode()) == a.secret
    # a cookie one server made is valid at the other
    made, _ = a.respond(b"clientck", "192.0.2.1")
    b.now = a.now
    assert b.respond(made[4:], "192.0.2.1")[1]


def test_redis_rotation_happens_once_and_keeps_the_previous(tmp_path: pathlib.Path,
                                                            prefix: str) -> None:
    target = parse_redis_url(REDIS_URL)
    _, a = run(started(tmp_path / "a", link=RedisLink(target, prefix)))
    client = redis.Redis.from_url(REDIS_URL)
    client.hset(f"{prefix}cookie-secret", "rotated_at", str(time.time() - 7200))
    _, b = run(started(tmp_path / "b", link=RedisLink(target, prefix), rotation=3600))
    _, c = run(started(tmp_path / "c", link=RedisLink(target, prefix), rotation=3600))
    assert b.previous == a.secret and b.secret != a.secret
    assert (c.secret, c.previous) == (b.secret, b.previous)  # c did not rotate again


def test_redis_away_falls_back_to_the_state_dir(tmp_path: pathlib.Path, prefix: str) -> None:
    target = parse_redis_url(REDIS_URL)
    _, a = run(started(tmp_path, link=RedisLink(target, prefix)))
    away = parse_redis_url("redis://127.0.0.1:1/0")  # nothing listens there
    _, b = run(started(tmp_path, link=RedisLink(away, prefix)))
    assert b.secret == a.secret
