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
    """Every (check, target): this server's prober state when it probes, each live
    site's verdict in a fleet, and the combined state routing obeys."""
    app = request.app
    manager = app.health
    prober = manager.prober
    fleet = app.fleet
    down = manager.view.down
    targets: list[dict[str, Any]] = []
    now_mono, now_wall = time.monotonic(), time.time()
    for key, check in sorted(app.world.snapshot.health_targets.items()):
        entry: dict[str, Any] = {
            "zone": key[0], "check": key[1], "target": key[2],
            "protocol": check.protocol, "port": check.port,
            "state": "down" if key in down else "up",
            "interval_s": check.interval, "rise": check.rise, "fall": check.fall,
        }
        if check.quorum is not None:
            entry["quorum"] = check.quorum
        state = prober.states.get(key) if prober is not None else None
        if state is not None:
            last = state.last
            entry.update({
                "probed_here": prober is not None and prober.active,
                "local_state": "up" if state.up else "down",
                "since": _iso(prober.wall_since.get(key)) if prober is not None else None,
                "last_result": None if last is None else {
                    "ok": last.ok, "reason": last.reason,
                    "at": _iso(now_wall - (now_mono - state.last_at)
                               if state.last_at is not None else None)},
                "last_latency_s": None if last is None else round(last.latency, 6),
                "consecutive_passes": state.passes,
                "consecutive_failures": state.failures,
                "checks": state.checks,
                "breaker_open": state.breaker_open,
            })
        if fleet is not None:
            entry["sites"] = {site: ("up" if verdicts[key] else "down")
                              for site, verdicts in sorted(fleet.verdicts.items())
                              if site in fleet.live_sites and key in verdicts}
        targets.append(entry)
    out: dict[str, Any] = {"generation": manager.generation,
                           "prober": prober is not None and prober.active,
                           "drained_regions": sorted(manager.drained),
                           "targets": targets}
    if fleet is not None:
        out["fleet"] = {"site": fleet.site, "probe_lease": fleet.leader,
                        "redis_up": fleet.link.up,
                        "health_from": "fleet" if manager.fleet_in_charge else "own prober",
                        "sites_live": sorted(fleet.live_sites), "epoch": fleet.epoch}
    return json_response(out)


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
