"""Health and drain routes: `GET /v1/health`, `GET /v1/regions`, drain and undrain."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.errors import StoreUnavailable


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")


async def get_health(request: Request) -> Response:
    manager = request.app.health
    prober = manager.prober
    targets: list[dict[str, Any]] = []
    if prober is not None:
        now_mono, now_wall = time.monotonic(), time.time()
        for key in sorted(prober.states):
            state = prober.states[key]
            check = prober.targets[key].check
            last = state.last
            targets.append({
                "zone": key[0], "check": key[1], "target": key[2],
                "protocol": check.protocol, "port": check.port,
                "state": "up" if state.up else "down",
                "since": _iso(prober.wall_since.get(key)),
                "last_result": None if last is None else {
                    "ok": last.ok, "reason": last.reason,
                    "at": _iso(now_wall - (now_mono - state.last_at)
                               if state.last_at is not None else None)},
                "last_latency_s": None if last is None else round(last.latency, 6),
                "consecutive_passes": state.passes,
                "consecutive_failures": state.failures,
                "checks": state.checks,
                "breaker_open": state.breaker_open,
                "interval_s": state.interval, "rise": state.rise, "fall": state.fall,
            })
    return json_response({"generation": manager.generation,
                          "prober": prober is not None,
                          "drained_regions": sorted(manager.drained),
                          "targets": targets})


def regions_of(app: Any) -> dict[str, dict[str, Any]]:
    """Every region named in a served zone: name -> {zones, lat, lon}."""
    out: dict[str, dict[str, Any]] = {}
    for tree in app.world.snapshot.zones.values():
        zone = tree.model
        for name, region in zone.regions.items():
            entry = out.setdefault(name, {"zones": [], "lat": region.lat, "lon": region.lon})
            entry["zones"].append(zone.origin)
    return out


async def get_regions(request: Request) -> Response:
    manager = request.app.health
    regions = regions_of(request.app)
    names = sorted(set(regions) | manager.drained)
    return json_response({"regions": [
        {"region": name, **regions.get(name, {"zones": [], "lat": None, "lon": None}),
         "drained": name in manager.drained,
         "drained_since": _iso(manager.drained_since.get(name))}
        for name in names]})


async def _set_drain(request: Request, drained: bool) -> Response:
    region = request.params["region"]
    manager = request.app.health
    if region not in regions_of(request.app) and region not in manager.drained:
        raise HttpError(404, "unknown region", [f"no served zone defines region {region!r}"])
    try:
        changed = await manager.drain(region, drained, author=request.client)
    except StoreUnavailable as exc:
        raise HttpError(503, "cannot store the drain: the database is unreachable",
                        [str(exc)]) from None
    return json_response({"region": region, "drained": drained, "changed": changed,
                          "generation": manager.generation})


async def post_drain(request: Request) -> Response:
    return await _set_drain(request, True)


async def delete_drain(request: Request) -> Response:
    return await _set_drain(request, False)


def register(router: Router) -> None:
    router.add("GET", "/v1/health", get_health)
    router.add("GET", "/v1/regions", get_regions)
    router.add("POST", "/v1/regions/{region}/drain", post_drain)
    router.add("DELETE", "/v1/regions/{region}/drain", delete_drain)
