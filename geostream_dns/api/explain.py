"""`GET /v1/explain?name=&type=&client=[&ecs=]`: the routing decision as JSON."""

from __future__ import annotations

from geostream_dns.api.http import HttpError, Request, Response, Router, json_response
from geostream_dns.core.route.explain import ExplainError, explain


async def get_explain(request: Request) -> Response:
    def arg(key: str, required: bool = True) -> str | None:
        values = request.query.get(key)
        if not values or not values[0]:
            if required:
                raise HttpError(400, f"missing query parameter {key!r}",
                                ["usage: /v1/explain?name=www.example.com&type=A"
                                 "&client=192.0.2.1[&ecs=198.51.100.0/24]"])
            return None
        return values[0]

    app = request.app
    try:
        result = explain(app.world, arg("name") or "",
                         arg("type") or "", arg("client") or "", arg("ecs", required=False))
    except ExplainError as exc:
        raise HttpError(400, str(exc)) from None
    if result.get("alias") is not None:  # the background resolver's view of the target
        import dns.name

        result["alias"]["resolver"] = app.alias.describe(
            dns.name.from_text(result["alias"]["target"]))
    return json_response(result)


def register(router: Router) -> None:
    router.add("GET", "/v1/explain", get_explain)
