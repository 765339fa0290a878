"""The zone the health tests probe and serve: pools of loopback addresses.

`www` answers every value of the `us` pool (127.0.0.2 and 127.0.0.3), falls
back to the `eu` pool (127.0.0.4) when both are down, and to its own value
192.0.2.10 when the whole chain is. `api` (with `api=True`) has no values of
its own, so an all-down chain answers every value of the pool its rule picked,
the `status: down` one (127.0.0.5) included. Every checked value is probed by
the `web` http check on the port the farm's endpoints listen on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tests.support.zones import http_check, zone_text

US = ("127.0.0.2", "127.0.0.3")
EU = "127.0.0.4"
REGIONS = {"us-east-1": (38.9, -77.4), "eu-central-1": (50.1, 8.7)}

# A routed A record `name`: the pools `us` (the given values) and `eu`, one rule.
ROUTED = """\
{name}:
  type: A
{own_values}  routing:
    pools:
      us:
        region: us-east-1
        answer: all
        values: [{us_values}]
        fallback: eu
      eu:
        region: eu-central-1
        answer: all
        values: [{{value: 127.0.0.4, healthcheck: web}}]
    rules:
      - pool: us
"""


def failover_zone(port: int, *, interval: str = "1s", timeout: str = "500ms",
                  us: Iterable[str] = US, api: bool = False, records: str | None = None,
                  checks: Mapping[str, str] | None = None) -> str:
    """example.com. with `www` (and `api`), or `records` instead, checked on `port`.

    `checks` adds health checks beside `web`.
    """
    checked = ", ".join(f"{{value: {v}, healthcheck: web}}" for v in us)
    if records is None:
        records = ROUTED.format(name="www", own_values="  ttl: 60\n  values: [192.0.2.10]\n",
                                us_values=checked)
        if api:
            records += ROUTED.format(name="api", own_values="",
                                     us_values=checked + ", {value: 127.0.0.5, status: down}")
    web = http_check(port, interval=interval, timeout=timeout)
    return zone_text(records, regions=REGIONS, healthchecks={"web": web, **(checks or {})})
