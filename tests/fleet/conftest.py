"""Fixtures of the fleet tests: a database per module, a Redis prefix per fleet.

`fleet_db` is a PostgreSQL database of the module's own (created, migrated and
dropped here, on the machine's server); `redis_prefix()` makes a Redis key
prefix unique to the test on the machine's Redis and removes its keys when the
test ends. Neither is ever skipped: an unreachable service fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.postgres.conftest import cli, create_database, drop_database, url_for
from tests.support.harness import remove_redis_prefix

MACHINE_REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def fleet_db() -> Iterator[str]:
    name = create_database()
    url = url_for(name)
    try:
        result = cli("migrate", "--database-url", url)
        assert result.code == 0, result
        yield url
    finally:
        drop_database(name)


def remove_prefix(url: str, prefix: str) -> None:
    remove_redis_prefix(prefix, url)


@pytest.fixture
def redis_prefix() -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def _make() -> str:
        prefix = f"gs-fleet-{uuid.uuid4().hex[:10]}:"
        made.append(prefix)
        return prefix

    yield _make
    for prefix in made:
        remove_prefix(MACHINE_REDIS, prefix)
