"""DNSSEC over HTTP: `GET /v1/dnssec` (every signed zone) and
`GET /v1/zones/{zone}/dnssec` (one zone): keys with their state and key tag,
the DS records for the parent, the signature window being served, and the
rollover step each key waits for (and when it is due). Private keys are never
part of an answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import dns.name

from geostream_dns.adapters.dnssec_keys import KeyRecord, rollover_view, step_due, zone_keys
from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.core.dnssec import ds_records, window


def zone_view(app: Any, zone: str, records: list[KeyRecord]) -> dict[str, Any]:
    secret = app.keys.secret
    ttls = app._ttls(zone)
    views = rollover_view(records, secret)
    by_id = {r.id: r for r in records}
    for view in views:
        due = step_due(by_id[view["id"]], *ttls)
        view["next_step_at"] = due or None
        del view["next_at"], view["wait"], view["zone"]
    keys = zone_keys(records, secret, private=False)
    for view, key in zip(views, keys, strict=True):
        view["dnskey"] = key.dnskey.to_text()
    inception, expiration = window(min(r.created for r in records), time.time())
    return {"zone": zone, "keys": views,
            "ds": [rd.to_text() for rd in ds_records(dns.name.from_text(zone), keys)],
            "signatures": {"inception": inception, "expiration": expiration},
            "rollover": any(view["next_step_at"] for view in views)}


async def _records(app: Any) -> dict[str, list[KeyRecord]]:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, app.keys.all_records)  # type: ignore[no-any-return]


async def get_all(request: Request) -> Response:
    records = await _records(request.app)
    return json_response({"zones": [zone_view(request.app, zone, found)
                                    for zone, found in sorted(records.items())]})


async def get_zone(request: Request) -> Response:
    try:
        zone = dns.name.from_text(request.params["zone"]).to_text().lower()
    except dns.exception.DNSException as exc:
        raise HttpError(400, f"not a zone name: {exc}") from None
    records = (await _records(request.app)).get(zone)
    if not records:
        raise HttpError(404, f"{zone} is not signed (no DNSSEC keys)")
    return json_response(zone_view(request.app, zone, records))


def register(router: Router) -> None:
    router.add("GET", "/v1/dnssec", get_all)
    router.add("GET", "/v1/zones/{zone}/dnssec", get_zone)
