"""Options of the commands that read the fleet from Redis (`servers`, `apply --wait`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING

from geostream_dns.errors import GeoStreamError

if TYPE_CHECKING:  # imported when used: commands that never touch Redis stay light
    from geostream_dns.adapters.fleet import ChangeStatus, ServerRecord
    from geostream_dns.adapters.redis_link import RedisLink

DEFAULT_PREFIX = "geostream:"

EXIT_TIMEOUT = 3


def add_redis_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", metavar="URL",
                        help="the fleet's Redis (REDIS_URL)")
    parser.add_argument("--redis-prefix", metavar="PREFIX",
                        help=f"the fleet's key prefix (GEOSTREAM_REDIS_PREFIX, default "
                             f"{DEFAULT_PREFIX})")


def redis_link(args: argparse.Namespace, what: str) -> RedisLink:
    from geostream_dns.adapters.redis_link import RedisLink, parse_redis_url

    url = getattr(args, "redis_url", None) or os.environ.get("REDIS_URL")
    if not url:
        raise GeoStreamError(f"{what} reads the fleet from Redis: give --redis-url URL or "
                             "set REDIS_URL")
    try:
        target = parse_redis_url(url)
    except ValueError as exc:
        raise GeoStreamError(str(exc)) from None
    prefix = (getattr(args, "redis_prefix", None) or os.environ.get("GEOSTREAM_REDIS_PREFIX")
              or DEFAULT_PREFIX)
    return RedisLink(target, prefix)


async def read_servers(link: RedisLink) -> list[ServerRecord]:
    from geostream_dns.adapters.fleet import list_servers
    from geostream_dns.adapters.redis_link import REDIS_ERRORS, reason

    try:
        async with asyncio.timeout(5.0):
            return await list_servers(link)
    except REDIS_ERRORS as exc:
        raise GeoStreamError(f"{link.target.display} does not answer: {reason(exc)}") from None
    finally:
        await link.close()


async def wait_for(link: RedisLink, generation: int, seconds: float) -> tuple[ChangeStatus, float]:
    """Poll the fleet until every live answering server serves `generation`."""
    from geostream_dns.adapters.fleet import change_status, list_servers
    from geostream_dns.adapters.redis_link import REDIS_ERRORS, reason

    started = time.monotonic()
    try:
        while True:
            try:
                async with asyncio.timeout(5.0):
                    status = change_status(generation, await list_servers(link))
            except REDIS_ERRORS as exc:
                raise GeoStreamError(
                    f"{link.target.display} does not answer: {reason(exc)}") from None
            waited = time.monotonic() - started
            if status.status == "INSYNC" or waited >= seconds:
                return status, waited
            await asyncio.sleep(0.05)
    finally:
        await link.close()


def report_wait(status: ChangeStatus, waited: float) -> int:
    """Print how the wait ended; the exit code (3 when the fleet did not catch up)."""
    if status.status == "INSYNC":
        servers = [s for s in status.servers if s.role == "dns"]
        print(f"Every live server ({len(servers)}) serves generation {status.generation} "
              f"after {waited:.2f}s.")
        return 0
    if not any(s.role == "dns" for s in status.servers):
        print(f"No live server answers after {waited:.2f}s: nothing serves generation "
              f"{status.generation}.", file=sys.stderr)
    else:
        lagging = ", ".join(f"{s.id} ({s.site}) at {s.generation}" for s in status.lagging)
        print(f"Still PENDING after {waited:.2f}s: {lagging}.", file=sys.stderr)
    return EXIT_TIMEOUT
