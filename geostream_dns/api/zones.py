"""Zones over HTTP: `GET /v1/zones[/{zone}]`, `PUT` and `DELETE /v1/zones/{zone}`

A zone is read and written in the zone file shape (JSON, or YAML with
`?format=yaml` / a YAML body). Writes go through the same validation as
`check` (422 with the located problems) and are atomic:

* production mode writes a plan as a new generation in one transaction
  (`zone_db.write_plan`, kind "api"); every server picks it up as after `apply`;
* embedded mode writes the zone file atomically in the zones folder (the file
  the zone came from, or `<zones>/<zone>.yaml`) and reloads at once.

Both are the store's `write_zone`; this module only validates and answers.

Either way the answer holds the plan (one line per change), its summary and
the generation now served. With `?wait=SECONDS` the answer comes once every
live server of the fleet serves the new generation (200), or when the wait
runs out (504), with the fleet's status.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import dns.exception
import dns.name

from geostream_dns.api.fleet import wait_in_sync
from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.config.document import Document, document_yaml, zone_document
from geostream_dns.config.folder import file_name, unsafe_zone_name
from geostream_dns.config.loader import load_zone_data, load_zone_text
from geostream_dns.config.plan import Plan, UnsafePlan
from geostream_dns.core.snapshot import ZoneTree
from geostream_dns.errors import ConfigError, StoreUnavailable, WriteRefused

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _origin(request: Request) -> str:
    text = request.params["zone"]  # percent-decoded once by the router
    reason = unsafe_zone_name(text)
    if reason is not None:
        raise HttpError(400, "invalid zone name", [f"{text[:100]!r}: {reason}"])
    try:
        return dns.name.from_text(text).to_text().lower()
    except dns.exception.DNSException as exc:
        raise HttpError(400, "invalid zone name", [f"{text}: {exc}"]) from exc


def _served(request: Request, origin: str) -> ZoneTree | None:
    return request.app.world.snapshot.zones.get(dns.name.from_text(origin))


async def list_zones(request: Request) -> Response:
    zones = request.app.world.snapshot.zones
    return json_response({"zones": [
        {"zone": tree.origin.to_text(), "serial": tree.serial,
         "record_sets": sum(len(node) for node in tree.nodes.values())}
        for _, tree in sorted(zones.items())]})


async def get_zone(request: Request) -> Response:
    origin = _origin(request)
    tree = _served(request, origin)
    if tree is None:
        raise HttpError(404, "zone not hosted", [origin])
    doc = zone_document(tree.model)
    headers = {"X-Zone-Serial": str(tree.serial)}
    if request.query.get("format", [""])[0] == "yaml":
        return Response(200, document_yaml(doc).encode(), "application/yaml; charset=utf-8",
                        headers)
    return json_response(doc, headers=headers)


def _validated(request: Request, origin: str) -> Document:
    """The request body as a validated zone document; 422 with every problem."""
    source = f"api/{file_name(origin)}"
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, "the body is not UTF-8 text", [str(exc)]) from None
    try:
        if content_type in YAML_TYPES:
            zone = load_zone_text(text, source)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise HttpError(400, "the body is not valid JSON (send YAML with "
                                "Content-Type: application/yaml)", [str(exc)]) from None
            except RecursionError:
                raise HttpError(422, "invalid zone", [f"{source}:1: (file): refused: nested "
                                                      "too deep"]) from None
            if isinstance(data, dict):
                data.setdefault("zone", origin)
            zone = load_zone_data(data, source)
    except ConfigError as exc:
        raise HttpError(422, "invalid zone", [str(p) for p in exc.problems]) from None
    return zone_document(zone)  # the loader checked `zone:` against the URL's name


def _answer(plan: Plan, generation: int | None,
            fleet: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"changed": not plan.empty, "plan": plan.lines(),
                            "summary": plan.summary(), "generation": generation}
    status = 200
    if fleet is not None:
        body["fleet"] = fleet
        status = 200 if fleet["status"] == "INSYNC" else 504
    return json_response(body, status)


def _wait_seconds(request: Request) -> float | None:
    """`?wait=SECONDS` (empty: 60): wait until every live server serves the write."""
    values = request.query.get("wait")
    if not values:
        return None
    text = values[0] or "60"
    try:
        seconds = float(text)
    except ValueError:
        raise HttpError(400, "wait must be a number of seconds", [text]) from None
    if not 0 <= seconds <= 3600:
        raise HttpError(400, "wait must be between 0 and 3600 seconds", [text])
    return seconds


async def put_zone(request: Request) -> Response:
    origin = _origin(request)
    doc = _validated(request, origin)
    return await _write(request, origin, doc)


async def delete_zone(request: Request) -> Response:
    origin = _origin(request)
    return await _write(request, origin, None)


async def _write(request: Request, origin: str, doc: Document | None) -> Response:
    app = request.app
    store = app.store
    author = request.client or "api"
    wait = _wait_seconds(request)
    force = request.query.get("force", ["false"])[0].lower() in ("true", "1", "yes")
    try:
        plan, generation = await asyncio.to_thread(store.write_zone, origin, doc, author,
                                                   force)
    except UnsafePlan as exc:
        raise HttpError(409, "refused: the write changes or deletes more than the safety "
                        "thresholds allow; add ?force=true if this is meant",
                        exc.reasons) from None
    except StoreUnavailable as exc:
        raise HttpError(503, "cannot write the zone: the database is unreachable",
                        [str(exc)]) from None
    except WriteRefused as exc:
        raise HttpError(409, str(exc)) from None
    if doc is None and plan.empty:
        raise HttpError(404, "zone not hosted", [origin])
    if not plan.empty:
        if generation is not None:
            await _caught_up(app, generation)
        else:
            await app.reload()
    fleet = None
    if wait is not None:
        status, waited = await wait_in_sync(app, generation or app.generation, wait)
        fleet = {**status.to_json(), "waited_s": round(waited, 3)}
    return _answer(plan, app.generation, fleet)


async def _caught_up(app: Any, generation: int, timeout: float = 2.0) -> None:
    """Wait (bounded) until this server serves `generation`, so a read after the
    write sees it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app.generation < generation and loop.time() < deadline:
        await app.reload()
        if app.generation < generation:
            await asyncio.sleep(0.02)


def register(router: Router) -> None:
    router.add("GET", "/v1/zones", list_zones)
    router.add("GET", "/v1/zones/{zone}", get_zone)
    router.add("PUT", "/v1/zones/{zone}", put_zone)
    router.add("DELETE", "/v1/zones/{zone}", delete_zone)


