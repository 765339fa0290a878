"""The fleet over HTTP: `GET /v1/servers` and `GET /v1/changes/{generation}`.

Both read the servers' own heartbeats from Redis (`adapters.fleet`). A server
without `REDIS_URL` is a fleet of one: it lists itself. `/v1/changes/N` is
INSYNC once every live answering server serves generation N or later;
probe-only servers are listed but do not count.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from geostream_dns.adapters.fleet import ChangeStatus, ServerRecord, change_status
from geostream_dns.adapters.redis_link import REDIS_ERRORS
from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.version import VERSION


def this_server(app: Any) -> ServerRecord:
    settings = app.settings
    epoch = app.fleet.epoch if app.fleet is not None else app.health.generation
    return ServerRecord(settings.server_id, settings.site,
                        "prober" if settings.probe_only else "dns", VERSION, app.generation,
                        epoch, app.ready, time.time())


async def live_servers(app: Any) -> list[ServerRecord]:
    """The live fleet (503 when Redis does not answer)."""
    if app.fleet is None:
        return [this_server(app)]
    try:
        async with asyncio.timeout(2.0):
            return await app.fleet.list_servers()
    except REDIS_ERRORS as exc:
        app.link.lost(exc)
        raise HttpError(503, "the fleet's Redis does not answer",
                        [app.link.last_error]) from None


async def fleet_status(app: Any, generation: int) -> ChangeStatus:
    return change_status(generation, await live_servers(app))


async def wait_in_sync(app: Any, generation: int, seconds: float) -> tuple[ChangeStatus, float]:
    """Poll the fleet until it serves `generation` or `seconds` pass: (status, waited)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        status = await fleet_status(app, generation)
        waited = loop.time() - started
        if status.status == "INSYNC" or waited >= seconds:
            return status, waited
        await asyncio.sleep(min(0.1, max(0.0, seconds - waited)))


async def get_servers(request: Request) -> Response:
    servers = await live_servers(request.app)
    return json_response({"servers": [s.to_json() for s in servers]})


async def get_change(request: Request) -> Response:
    text = request.params["generation"]
    if not text.isdigit():
        raise HttpError(400, "the generation must be a number", [text])
    status = await fleet_status(request.app, int(text))
    return json_response(status.to_json())


def register(router: Router) -> None:
    router.add("GET", "/v1/servers", get_servers)
    router.add("GET", "/v1/changes/{generation}", get_change)
