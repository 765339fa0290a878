"""`POST /v1/latency` and `GET /v1/latency?client=`: measurements in, what is known out.

A POST carries a JSON batch (`{"samples": [{"client": "81.2.69.0/24",
"region": "eu-central-1", "rtt_ms": 23.5}]}`; a sample without `client` is
for the address the request came from, which is what a browser beacon
wants) or, with `Content-Type: text/csv`, the rows of a CSV file
(`client,region,rtt_ms,samples`; `?first_line=N` numbers the lines of a
file sent in parts). A batch is checked whole, off the event loop; any
problem answers 422 with every problem located and stores nothing. The
checking, the GeoIP keys, the summing and the table itself live in a process
of their own (`adapters/latency_worker.py`), so a burst of samples does not
take the CPU, or the interpreter lock, answering needs.
`?dry_run=true` only checks; `?wait=true` answers once the batch is in the
view queries are routed with.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from geostream_dns.adapters.latency_input import parse_client
from geostream_dns.adapters.latency_worker import LatencyWorker
from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.core.latency import PROBE_KEY, LatencyKey, geo_keys
from geostream_dns.core.route.latency import key_level, key_text


def _flag(request: Request, name: str) -> bool:
    value = (request.query.get(name) or [""])[0].lower()
    if value not in ("", "true", "false", "1", "0"):
        raise HttpError(400, f"{name} must be true or false", [value])
    return value in ("true", "1")


async def post_latency(request: Request) -> Response:
    app = request.app
    regions = app.world.snapshot.regions
    dry_run, wait = _flag(request, "dry_run"), _flag(request, "wait")
    csv_body = request.headers.get("content-type", "").split(";")[0].strip() == "text/csv"
    first_text = (request.query.get("first_line") or ["1"])[0]
    if not first_text.isdigit() or int(first_text) < 1:
        raise HttpError(400, "first_line must be a line number", [first_text])
    first_line = int(first_text)
    peer = request.client or None
    latency = app.latency
    if not isinstance(latency, LatencyWorker):  # only worker 0 serves HTTP
        raise HttpError(503, "this process does not take latency samples in")
    try:
        ok, problems, rows, total, _, stored = await latency.prepare(
            request.body, csv_body, regions, peer, first_line, dry_run,
            "csv" if csv_body else "api")
    except (RuntimeError, TimeoutError) as exc:
        raise HttpError(503, "latency ingest is not available; retry shortly",
                        [str(exc)]) from None
    if not ok:
        if problems and problems[0] == "request body is not valid JSON":
            raise HttpError(400, problems[0], problems[1:])
        raise HttpError(422, "invalid latency samples", problems)
    if dry_run:
        return json_response({"accepted": rows, "samples": total, "stored": False})
    if not stored:
        raise HttpError(503, "latency ingest is busy; retry shortly")
    if wait:
        await asyncio.to_thread(app.latency.flush)
    return json_response({"accepted": rows, "samples": total, "stored": True,
                          "latency_generation": app.world.latency.generation})


def _client_keys(app: Any, text: str) -> tuple[list[LatencyKey], dict[str, Any]]:
    """The keys a client is routed by, and where it is, for a prefix, address or geo code."""
    try:
        client = parse_client(text)
    except ValueError as exc:
        raise HttpError(400, f"client: {exc}") from None
    if not isinstance(client, bytes):
        return [*client, PROBE_KEY], {"geo_code": text.strip()}
    address = client + bytes((4 if len(client) == 3 else 16) - len(client))
    loc = app.world.geo.locate(address)
    keys: list[LatencyKey] = [client, *geo_keys(loc.continent, loc.country, loc.subdivision),
                              PROBE_KEY]
    network = ipaddress.ip_network((address, len(client) * 8))
    return keys, {"network": str(network), "location": sorted(loc.codes),
                  "geoip_network_prefix": loc.prefix_len}


async def get_latency(request: Request) -> Response:
    app = request.app
    values = request.query.get("client")
    view = app.world.latency
    service = app.latency
    out: dict[str, Any] = {"generation": view.generation, "keys": view.keys,
                           "max_keys": service.max_keys,
                           "half_life_s": service.half_life}
    if not values or not values[0]:
        raise HttpError(400, "missing query parameter 'client'",
                        ["usage: /v1/latency?client=81.2.69.0/24 (a prefix, an address or a "
                         "geo code such as EU-GB)"])
    keys, where = _client_keys(app, values[0])
    out["client"] = {"given": values[0], **where}
    known = []
    for key in keys:
        entry = view.entry(key)
        known.append({"key": key_text(key), "level": key_level(key),
                      "regions": [{"region": r, "rtt_ms": round(m, 2),
                                   "samples": round(w * view.scale, 2)}
                                  for r, m, w in sorted(entry or ())]})
    out["measurements"] = known
    return json_response(out)


def register(router: Router) -> None:
    router.add("POST", "/v1/latency", post_latency)
    router.add("GET", "/v1/latency", get_latency)
