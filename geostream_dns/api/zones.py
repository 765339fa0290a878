"""Zones over HTTP: `GET /v1/zones[/{zone}]`, `PUT` and `DELETE /v1/zones/{zone}` (SPEC §7).

A zone is read and written in the SPEC §3 shape (JSON, or YAML with
`?format=yaml` / a YAML body). Writes go through the same validation as
`check` (422 with the located problems) and are atomic:

* production mode writes a plan as a new generation in one transaction
  (`zone_db.write_plan`, kind "api"); every server picks it up as after `apply`;
* embedded mode writes the zone file atomically in the zones folder (the file
  the zone came from, or `<zones>/<zone>.yaml`) and reloads at once.

Either way the answer holds the plan (one line per change), its summary and
the generation now served.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import dns.exception
import dns.name

from geostream_dns.adapters.files import atomic_write_text
from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.config.document import Document, document_yaml, file_name, zone_document
from geostream_dns.config.loader import load_zone_data, load_zone_text
from geostream_dns.config.plan import Plan, plan_targets
from geostream_dns.core.snapshot import ZoneTree
from geostream_dns.errors import ConfigError, StoreUnavailable

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def _origin(request: Request) -> str:
    text = request.params["zone"]
    try:
        return dns.name.from_text(text).to_text().lower()
    except dns.exception.DNSException as exc:
        raise HttpError(400, "invalid zone name", [f"{text}: {exc}"]) from exc


def _served(request: Request, origin: str) -> ZoneTree | None:
    return request.app.resolver.snapshot.zones.get(dns.name.from_text(origin))


def _serial(tree: ZoneTree) -> int:
    return int(tree.soa.rdatas[0].serial)  # type: ignore[attr-defined]


async def list_zones(request: Request) -> Response:
    zones = request.app.resolver.snapshot.zones
    return json_response({"zones": [
        {"zone": tree.origin.to_text(), "serial": _serial(tree),
         "record_sets": sum(len(node) for node in tree.nodes.values())}
        for _, tree in sorted(zones.items())]})


async def get_zone(request: Request) -> Response:
    origin = _origin(request)
    tree = _served(request, origin)
    if tree is None or tree.spec is None:
        raise HttpError(404, "zone not hosted", [origin])
    doc = zone_document(tree.spec)
    headers = {"X-Zone-Serial": str(_serial(tree))}
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
            if isinstance(data, dict):
                data.setdefault("zone", origin)
            zone = load_zone_data(data, source)
    except ConfigError as exc:
        raise HttpError(422, "invalid zone", [str(p) for p in exc.problems]) from None
    return zone_document(zone)  # the loader checked `zone:` against the URL's name


def _answer(plan: Plan, generation: int | None) -> Response:
    return json_response({"changed": not plan.empty, "plan": plan.lines(),
                          "summary": plan.summary(), "generation": generation})


async def put_zone(request: Request) -> Response:
    origin = _origin(request)
    doc = _validated(request, origin)
    return await _write(request, origin, doc)


async def delete_zone(request: Request) -> Response:
    origin = _origin(request)
    if _served(request, origin) is None and not hasattr(request.app.store, "write_zone"):
        raise HttpError(404, "zone not hosted", [origin])
    return await _write(request, origin, None)


async def _write(request: Request, origin: str, doc: Document | None) -> Response:
    app = request.app
    author = request.client or "api"
    try:
        if hasattr(app.store, "write_zone"):
            plan, generation = await asyncio.to_thread(app.store.write_zone, origin, doc, author)
            if doc is None and plan.empty:
                raise HttpError(404, "zone not hosted", [origin])
            if not plan.empty:
                await _caught_up(app, generation)
            return _answer(plan, generation if not plan.empty else app.generation)
        plan = _folder_write(request, origin, doc)
    except StoreUnavailable as exc:
        raise HttpError(503, "cannot write the zone: the database is unreachable",
                        [str(exc)]) from None
    if not plan.empty:
        await app.reload()
    return _answer(plan, app.generation)


async def _caught_up(app: Any, generation: int, timeout: float = 2.0) -> None:
    """Wait (bounded) until this server serves `generation`, so a read after the
    write sees it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app.generation < generation and loop.time() < deadline:
        await app.reload()
        if app.generation < generation:
            await asyncio.sleep(0.02)


def _folder_write(request: Request, origin: str, doc: Document | None) -> Plan:
    """Embedded mode: write or remove the zone's file in the zones folder."""
    app = request.app
    tree = _served(request, origin)
    current = {origin: zone_document(tree.spec)} if tree is not None and tree.spec else {}
    plan = plan_targets(current, {origin: doc}, app.generation)
    if plan.empty:
        return plan
    source = pathlib.Path(tree.spec.source) if tree is not None and tree.spec else None
    if doc is None:
        if source is not None:
            source.unlink(missing_ok=True)
        return plan
    if source is None or not source.name.endswith((".yaml", ".yml")):
        folders = [p for p in app.settings.zones if p.is_dir()]
        if not folders:
            raise HttpError(409, "no zones folder to write into",
                            ["the server was started with zone files, not a folder"])
        source = folders[0] / file_name(origin)
    atomic_write_text(source, document_yaml(doc), mode=0o644)
    return plan


def register(router: Router) -> None:
    router.add("GET", "/v1/zones", list_zones)
    router.add("GET", "/v1/zones/{zone}", get_zone)
    router.add("PUT", "/v1/zones/{zone}", put_zone)
    router.add("DELETE", "/v1/zones/{zone}", delete_zone)


