"""`GET /openapi.json`: the OpenAPI 3.1 description of the HTTP API.

Written by hand next to the routes it describes; a test checks that every
route the server registers is described and nothing else.
"""

from __future__ import annotations

from typing import Any

from geostream_dns.api.http import Request, Response, Router, json_response

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "bad request", 401: "missing or wrong bearer token",
               403: "the API is read-only (no GEOSTREAM_API_TOKEN)", 404: "not found",
               503: "the database (or, for the fleet, Redis) is unreachable"}
    return {str(c): _json(reasons[c], ERROR) for c in codes}


def _zone_param() -> list[dict[str, Any]]:
    return [{"name": "zone", "in": "path", "required": True, "schema": {"type": "string"}}]


def _wait_param() -> list[dict[str, Any]]:
    return [{"name": "wait", "in": "query", "required": False,
             "description": "seconds to wait until every live server serves the change "
                            "(empty: 60)",
             "schema": {"type": "number", "minimum": 0, "maximum": 3600}}]


def _force_param() -> list[dict[str, Any]]:
    return [{"name": "force", "in": "query", "required": False,
             "description": "true: write even a change of more than 30% of the zone's "
                            "record sets (otherwise refused with 409)",
             "schema": {"type": "boolean"}}]


def _region_param() -> list[dict[str, Any]]:
    return [{"name": "region", "in": "path", "required": True, "schema": {"type": "string"}}]


def document(version: str) -> dict[str, Any]:
    write: dict[str, Any] = {"security": [{"bearer": []}]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "GeoStream DNS", "version": version,
                 "description": "Health, readiness, metrics and the /v1 management API. "
                                "Reads are open; writes need a bearer token."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "details"],
                                  "properties": {"error": {"type": "string"},
                                                 "details": {"type": "array"}}}},
        },
        "paths": {
            "/health": {"get": {"summary": "200 while the process lives",
                                "responses": {"200": _json("alive")}}},
            "/ready": {"get": {"summary": "200 once a configuration is loaded and answering",
                               "responses": {"200": _json("ready"),
                                             "503": _json("starting")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "text format",
                                                       "content": {"text/plain": {}}}}}},
            "/openapi.json": {"get": {"summary": "this document",
                                      "responses": {"200": _json("OpenAPI 3.1")}}},
            "/v1/zones": {"get": {"summary": "the zones being served",
                                  "responses": {"200": _json("zones")}}},
            "/v1/zones/{zone}": {
                "get": {"summary": "one zone in the zone file shape (?format=yaml for YAML)",
                        "parameters": [*_zone_param(),
                                       {"name": "format", "in": "query", "required": False,
                                        "schema": {"enum": ["json", "yaml"]}}],
                        "responses": {"200": _json("the zone"), **_errors(400, 404)}},
                "put": {"summary": "validate and write one zone atomically (JSON, or YAML "
                                   "with Content-Type: application/yaml)", **write,
                        "parameters": [*_zone_param(), *_wait_param(), *_force_param()],
                        "responses": {"200": _json("the plan and the generation served"),
                                      "409": _json("refused over the safety thresholds "
                                                   "(see ?force=)", ERROR),
                                      "422": _json("invalid zone: located problems", ERROR),
                                      "504": _json("the fleet did not serve the write "
                                                   "within ?wait= seconds"),
                                      **_errors(400, 401, 403, 503)}},
                "delete": {"summary": "remove one zone", **write,
                           "parameters": [*_zone_param(), *_wait_param(), *_force_param()],
                           "responses": {"200": _json("the plan and the generation served"),
                                         "409": _json("refused over the safety thresholds "
                                                      "(see ?force=)", ERROR),
                                         "504": _json("the fleet did not serve the write "
                                                      "within ?wait= seconds"),
                                         **_errors(401, 403, 404, 503)}},
            },
            "/v1/dnssec": {"get": {
                "summary": "every signed zone: keys (state, key tag, DNSKEY, next rollover "
                           "step), DS records for the parent, the signature window",
                "responses": {"200": _json("signed zones")}}},
            "/v1/zones/{zone}/dnssec": {"get": {
                "summary": "one signed zone's keys, DS records and rollover state (never "
                           "a private key)",
                "parameters": _zone_param(),
                "responses": {"200": _json("keys, ds, signatures, rollover"),
                              **_errors(400, 404)}}},
            "/v1/explain": {"get": {
                "summary": "the routing decision for a name, type and client",
                "parameters": [
                    {"name": n, "in": "query", "required": n != "ecs",
                     "schema": {"type": "string"}}
                    for n in ("name", "type", "client", "ecs")],
                "responses": {"200": _json("location, rules tried, pools, answer, ECS scope"),
                              **_errors(400)}}},
            "/v1/health": {"get": {"summary": "every health-check target: the state routing "
                                              "obeys, this server's probes, each live site's "
                                              "verdict (in a fleet)",
                                   "responses": {"200": _json("targets")}}},
            "/v1/servers": {"get": {"summary": "the live fleet, as the servers report "
                                               "themselves through Redis",
                                    "responses": {"200": _json("servers"), **_errors(503)}}},
            "/v1/changes/{generation}": {"get": {
                "summary": "INSYNC once every live answering server serves the generation "
                           "or a later one, else PENDING with the lagging servers",
                "parameters": [{"name": "generation", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json("status, servers, lagging"),
                              **_errors(400, 503)}}},
            "/v1/latency": {
                "get": {"summary": "what this server knows of a client's round trips: each "
                                   "key (network, subdivision, country, continent, probes) "
                                   "with each region's mean and sample count",
                        "parameters": [{"name": "client", "in": "query", "required": True,
                                        "description": "a prefix, an address or a geo code",
                                        "schema": {"type": "string"}}],
                        "responses": {"200": _json("keys and measurements"), **_errors(400)}},
                "post": {"summary": "add latency samples: JSON {\"samples\": [{\"client\", "
                                    "\"region\", \"rtt_ms\", \"samples\"}]} or a CSV "
                                    "file (Content-Type: text/csv); all or nothing", **write,
                         "parameters": [
                             {"name": n, "in": "query", "required": False,
                              "schema": {"type": "string"}}
                             for n in ("dry_run", "wait", "first_line")],
                         "responses": {"200": _json("accepted and stored"),
                                       "422": _json("invalid samples: located problems",
                                                    ERROR),
                                       **_errors(400, 401, 403, 503)}},
            },
            "/v1/regions": {"get": {"summary": "regions with their drain state",
                                    "responses": {"200": _json("regions")}}},
            "/v1/regions/{region}/drain": {
                "post": {"summary": "drain a region", **write, "parameters": _region_param(),
                         "responses": {"200": _json("drained"),
                                       **_errors(401, 403, 404, 503)}},
                "delete": {"summary": "undrain a region", **write,
                           "parameters": _region_param(),
                           "responses": {"200": _json("in service"),
                                         **_errors(401, 403, 404, 503)}},
            },
        },
    }


async def get_openapi(request: Request) -> Response:
    from importlib.metadata import PackageNotFoundError, version

    try:
        current = version("geostream-dns")
    except PackageNotFoundError:
        current = "0"
    return json_response(document(current))


def register(router: Router) -> None:
    router.add("GET", "/openapi.json", get_openapi)
