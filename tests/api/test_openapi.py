"""`/openapi.json` describes exactly the routes the server registers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from geostream_dns.api.http import default_router
from geostream_dns.api.openapi import document


def test_every_route_is_described_and_nothing_else() -> None:
    router = default_router(CollectorRegistry())
    registered = {(r.method.lower(), r.pattern) for r in router.routes}
    described = {(method, path) for path, item in document("1")["paths"].items()
                 for method in item}
    assert registered == described


def test_writes_need_the_bearer_token_and_say_their_errors() -> None:
    drain = document("1")["paths"]["/v1/regions/{region}/drain"]
    for method in ("post", "delete"):
        assert drain[method]["security"] == [{"bearer": []}]
        assert {"401", "403", "404"} <= set(drain[method]["responses"])
    explain = document("1")["paths"]["/v1/explain"]["get"]
    required = {p["name"] for p in explain["parameters"] if p["required"]}
    assert required == {"name", "type", "client"}
