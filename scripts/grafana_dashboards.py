#!/usr/bin/env python3
"""Write GeoStream's Grafana dashboards to deploy/grafana/dashboards/*.json.

The dashboards are kept here, as code, so that a panel is a few readable lines
and every panel gets the same data source, legend and units. The JSON files
are what Grafana provisions; regenerate them after editing this file:

    .venv/bin/python scripts/grafana_dashboards.py          # write the files
    .venv/bin/python scripts/grafana_dashboards.py --check  # exit 1 if they are stale

Every PromQL expression uses only the metrics GET /metrics documents
(docs/metrics.md). Grafana variables used in expressions: `$instance` (a
regex, "All" is `.*`) and `$__rate_interval`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "deploy" / "grafana" / "dashboards"

# The provisioned data source (deploy/grafana/provisioning/datasources/prometheus.yml).
DATASOURCE = {"type": "prometheus", "uid": "geostream-prometheus"}

SEL = 'instance=~"$instance"'          # every GeoStream series is filtered by instance
RATE = "$__rate_interval"

Panel = dict[str, Any]


class Layout:
    """Places panels left to right, 24 grid units to a row; ids count up."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self.x = 0
        self.y = 0
        self.row_height = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def add(self, panel: Panel, w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
           fmt: str = "time_series") -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
            "range": not instant, "instant": instant, "format": fmt}


def timeseries(title: str, description: str, targets: list[dict[str, Any]], unit: str,
               stack: bool = False, min_zero: bool = True) -> Panel:
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                              "showPoints": "never", "spanNulls": False}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    defaults: dict[str, Any] = {"unit": unit, "custom": custom}
    if min_zero:
        defaults["min"] = 0
    return {"type": "timeseries", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right",
                                   "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, description: str, expr: str, unit: str,
         thresholds: list[tuple[float | None, str]] | None = None) -> Panel:
    steps = [{"value": value, "color": color}
             for value, color in (thresholds or [(None, "green")])]
    return {"type": "stat", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": [target(expr, instant=True)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute",
                                                                      "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}}


UP_DOWN = (("down", "red"), ("up", "green"))           # 0, 1
DRAINED = (("in service", "green"), ("drained", "orange"))


def state_timeline(title: str, description: str, expr: str, legend: str,
                   states: tuple[tuple[str, str], tuple[str, str]] = UP_DOWN) -> Panel:
    (zero, zero_color), (one, one_color) = states
    mapping = {"type": "value", "options": {
        "0": {"text": zero, "color": zero_color, "index": 0},
        "1": {"text": one, "color": one_color, "index": 1}}}
    return {"type": "state-timeline", "title": title, "description": description,
            "datasource": DATASOURCE, "targets": [target(expr, legend)],
            "fieldConfig": {"defaults": {"mappings": [mapping],
                                         "thresholds": {"mode": "absolute", "steps": [
                                             {"value": None, "color": zero_color},
                                             {"value": 1, "color": one_color}]},
                                         "color": {"mode": "thresholds"}},
                            "overrides": []},
            "options": {"showValue": "never", "mergeValues": True, "rowHeight": 0.8,
                        "legend": {"showLegend": False}}}


def table(title: str, description: str, expr: str, hide: list[str]) -> Panel:
    return {"type": "table", "title": title, "description": description,
            "datasource": DATASOURCE,
            "targets": [target(expr, instant=True, fmt="table")],
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True},
            "transformations": [{"id": "organize", "options": {
                "excludeByName": {name: True for name in hide}}}]}


def instance_variable() -> dict[str, Any]:
    return {"name": "instance", "label": "server", "type": "query", "datasource": DATASOURCE,
            "query": {"query": "label_values(geostream_build_info, instance)",
                      "refId": "instance"},
            "definition": "label_values(geostream_build_info, instance)",
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1, "hide": 0}


def dashboard(uid: str, title: str, description: str, layout: Layout) -> dict[str, Any]:
    return {"uid": uid, "title": title, "description": description,
            "tags": ["geostream", "dns"], "timezone": "", "editable": True,
            "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "templating": {"list": [instance_variable()]},
            "annotations": {"list": []},
            "links": [{"title": "GeoStream dashboards", "type": "dashboards",
                       "tags": ["geostream"], "asDropdown": True}],
            "panels": layout.panels}


def traffic() -> dict[str, Any]:
    # A share's numerator has no series until the first such query: `or vector(0)`
    # makes the panel say 0% rather than "No data".
    q = f"geostream_dns_queries_total{{{SEL}}}"
    lay = Layout()
    lay.row("Traffic")
    lay.add(stat("Queries/s", "DNS queries answered (or dropped) per second, all servers.",
                 f"sum(rate({q}[{RATE}]))", "reqps"), w=6, h=4)
    lay.add(stat("SERVFAIL share", "Share of queries answered SERVFAIL.",
                 f'(sum(rate(geostream_dns_queries_total{{{SEL}, rcode="SERVFAIL"}}[{RATE}]))'
                 f" or vector(0)) / sum(rate({q}[{RATE}]))",
                 "percentunit", [(None, "green"), (0.001, "orange"), (0.01, "red")]), w=6, h=4)
    lay.add(stat("REFUSED share", "Share of queries for names outside every hosted zone.",
                 f'(sum(rate(geostream_dns_queries_total{{{SEL}, rcode="REFUSED"}}[{RATE}]))'
                 f" or vector(0)) / sum(rate({q}[{RATE}]))", "percentunit"), w=6, h=4)
    lay.add(stat("TCP share", "Share of queries that came over TCP.",
                 f'(sum(rate(geostream_dns_queries_total{{{SEL}, transport="tcp"}}[{RATE}]))'
                 f" or vector(0)) / sum(rate({q}[{RATE}]))", "percentunit"), w=6, h=4)
    lay.add(timeseries("Queries by type", "Queries per second by query type.",
                       [target(f"sum by (qtype) (rate({q}[{RATE}]))", "{{qtype}}")],
                       "reqps", stack=True), w=8)
    lay.add(timeseries("Queries by response code",
                       "Queries per second by response code (DROPPED: no answer sent).",
                       [target(f"sum by (rcode) (rate({q}[{RATE}]))", "{{rcode}}")],
                       "reqps", stack=True), w=8)
    lay.add(timeseries("Queries by transport", "Queries per second over UDP and TCP.",
                       [target(f"sum by (transport) (rate({q}[{RATE}]))", "{{transport}}")],
                       "reqps", stack=True), w=8)
    family = f"geostream_dns_queries_by_family_total{{{SEL}}}"
    lay.add(timeseries("Queries by address family",
                       "Queries per second over IPv4 and IPv6, by transport.",
                       [target(f"sum by (family, transport) (rate({family}[{RATE}]))",
                               "{{family}} {{transport}}")],
                       "reqps", stack=True), w=8, h=7)
    lay.add(timeseries("Queries by server", "Queries per second on each server.",
                       [target(f"sum by (instance) (rate({q}[{RATE}]))", "{{instance}}")],
                       "reqps", stack=True), w=16, h=7)

    lay.row("Answer latency")
    bucket = f"geostream_dns_answer_duration_seconds_bucket{{{SEL}}}"
    lay.add(timeseries(
        "Answer duration quantiles",
        "Time from receiving a query to handing the answer to the socket, all servers.",
        [target(f"histogram_quantile({qu}, sum by (le) (rate({bucket}[{RATE}])))",
                f"p{round(qu * 100)}", ref)
         for qu, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))], "s"))
    lay.add(timeseries(
        "p99 answer duration by server", "99th percentile of the answer duration per server.",
        [target(f"histogram_quantile(0.99, sum by (instance, le) (rate({bucket}[{RATE}])))",
                "{{instance}}")], "s"))
    lay.add(timeseries(
        "Mean answer duration by server", "Average answer duration per server.",
        [target(f"sum by (instance) (rate(geostream_dns_answer_duration_seconds_sum{{{SEL}}}"
                f"[{RATE}])) / sum by (instance) (rate("
                f"geostream_dns_answer_duration_seconds_count{{{SEL}}}[{RATE}]))",
                "{{instance}}")], "s"), w=24, h=7)

    lay.row("Routing")
    lay.add(timeseries(
        "Routed answers by zone and pool",
        "Routed answers per second by the pool that answered (after fallbacks).",
        [target(f"sum by (zone, pool) (rate(geostream_route_decisions_total{{{SEL}}}[{RATE}]))",
                "{{zone}} {{pool}}")], "reqps", stack=True), w=16)
    lay.add(timeseries(
        "Fail-open answers",
        "Routed answers given with the whole fallback chain down (values that failed "
        "their health checks).",
        [target(f"sum by (instance) (rate(geostream_route_all_down_total{{{SEL}}}[{RATE}]))",
                "{{instance}}")], "reqps"), w=8)
    lay.add(state_timeline(
        "Drained regions", "Regions taken out of service with `geostream-dns drain`.",
        f"max by (region) (geostream_region_drained{{{SEL}}})", "{{region}}", DRAINED),
        w=24, h=6)

    lay.row("Caches")
    req = f"geostream_cache_requests_total{{{SEL}}}"
    lay.add(timeseries(
        "Cache hit ratio by tier", "Hits over look-ups, per cache tier.",
        [target(f'sum by (tier) (rate(geostream_cache_requests_total{{{SEL}, result="hit"}}'
                f"[{RATE}])) / sum by (tier) (rate({req}[{RATE}]))", "{{tier}}")],
        "percentunit", min_zero=True))
    lay.add(timeseries(
        "Cache look-ups by tier and result", "Cache look-ups per second.",
        [target(f"sum by (tier, result) (rate({req}[{RATE}]))", "{{tier}} {{result}}")],
        "ops", stack=True))

    lay.row("Response-rate limiting")
    rrl = f"geostream_rrl_actions_total{{{SEL}}}"
    lay.add(timeseries(
        "RRL actions", "UDP responses dropped, or slipped (sent truncated), per second.",
        [target(f"sum by (action) (rate({rrl}[{RATE}]))", "{{action}}")], "reqps",
        stack=True))
    lay.add(timeseries(
        "Limited share of UDP responses", "RRL actions over UDP queries, per server.",
        [target(f"sum by (instance) (rate({rrl}[{RATE}])) / sum by (instance) (rate("
                f'geostream_dns_queries_total{{{SEL}, transport="udp"}}[{RATE}]))',
                "{{instance}}")], "percentunit"))
    return dashboard("geostream-traffic", "GeoStream DNS: traffic and routing",
                     "Queries, answer latency, routing decisions, caches and rate limiting.",
                     lay)


def fleet() -> dict[str, Any]:
    lay = Layout()
    lay.row("Health")
    up = f"geostream_health_target_up{{{SEL}}}"
    lay.add(stat("Targets down", "Health-check targets that every server reports down.",
                 f"count(max by (zone, check, target) ({up}) == 0) or vector(0)", "none",
                 [(None, "green"), (1, "red")]), w=6, h=4)
    lay.add(stat("Targets", "Health-check targets known to the fleet.",
                 f"count(max by (zone, check, target) ({up})) or vector(0)", "none"),
            w=6, h=4)
    lay.add(stat("Live sites", "Sites whose prober has a fresh heartbeat (lowest seen by "
                 "any server).", f"min(geostream_health_sites_live{{{SEL}}})", "none"),
            w=6, h=4)
    lay.add(stat("Health transitions (1h)", "Health state changes in the last hour.",
                 f"sum(increase(geostream_health_transitions_total{{{SEL}}}[1h])) or vector(0)",
                 "none"), w=6, h=4)
    lay.add(state_timeline(
        "Health by target", "The fleet's verdict on each target (down when every server "
        "says so).", f"max by (zone, check, target) ({up})", "{{zone}} {{check}} {{target}}"),
        w=24, h=8)
    lay.add(state_timeline(
        "Health by target and site", "Each live site's own verdict on each target.",
        f"max by (zone, check, target, site) (geostream_health_site_up{{{SEL}}})",
        "{{site}}: {{target}} ({{check}})"), w=24, h=10)
    lay.add(timeseries(
        "Health transitions", "Changes of state per target, by new state.",
        [target(f"sum by (zone, check, target, to) (increase("
                f"geostream_health_transitions_total{{{SEL}}}[{RATE}]))",
                "{{target}} -> {{to}}")], "none"), w=12)
    lay.add(timeseries(
        "Live sites by server", "Sites each server counts as live.",
        [target(f"geostream_health_sites_live{{{SEL}}}", "{{instance}}")], "none"), w=12)

    lay.row("Fleet sync")
    lay.add(timeseries(
        "Servers by state", "The fleet as the servers report it: in sync with the newest "
        "generation, lagging behind it, and probe-only servers.",
        [target("max by (state) (geostream_fleet_servers)", "{{state}}")], "none"), w=12)
    lay.add(timeseries(
        "Configuration generation by server", "Generation of the configuration each "
        "server serves; the lines meet once an apply has reached every server.",
        [target(f"geostream_config_generation{{{SEL}}}", "{{instance}}")], "none",
        min_zero=False), w=12)
    lay.add(stat("Generation spread", "Newest minus oldest generation served.",
                 f"max(geostream_config_generation{{{SEL}}}) - "
                 f"min(geostream_config_generation{{{SEL}}})", "none",
                 [(None, "green"), (1, "orange")]), w=6, h=4)
    lay.add(stat("Zones failing to load", "Zones whose newest version could not be "
                 "loaded, most on any server.",
                 f"max(geostream_config_zone_problems{{{SEL}}}) or vector(0)", "none",
                 [(None, "green"), (1, "red")]), w=6, h=4)
    lay.add(stat("Redis reachable", "Servers that reach Redis over servers that report.",
                 f"sum(geostream_redis_up{{{SEL}}}) / count(geostream_redis_up{{{SEL}}})",
                 "percentunit", [(None, "red"), (1, "green")]), w=6, h=4)
    lay.add(stat("Reload errors (1h)", "Configuration reloads that failed in the last hour.",
                 f"sum(increase(geostream_config_reload_errors_total{{{SEL}}}[1h])) "
                 "or vector(0)", "none", [(None, "green"), (1, "orange")]), w=6, h=4)
    lay.add(state_timeline("Redis by server", "Whether each server reaches Redis.",
                           f"geostream_redis_up{{{SEL}}}", "{{instance}}"), w=12, h=6)
    lay.add(table("Versions", "Servers by GeoStream version.",
                  f"count by (version) (geostream_build_info{{{SEL}}})", ["Time"]),
            w=12, h=6)
    lay.row("DNSSEC")
    lay.add(timeseries(
        "DNSSEC signature validity left", "Days until the signatures each server serves "
        "for a signed zone expire: renewed at 7 days left, so between 7 and 14.",
        [target(f"min by (zone) (geostream_dnssec_signature_expiry_seconds{{{SEL}}}) / 86400",
                "{{zone}}")], "none"), w=12)
    lay.add(table("DNSSEC keys", "Keys of the signed zones by role and state; a rollover "
                  "shows a second key of a role in a state other than active.",
                  f"max by (zone, role, state) (geostream_dnssec_keys{{{SEL}}})", ["Time"]),
            w=12, h=8)
    return dashboard("geostream-fleet", "GeoStream DNS: health and fleet",
                     "Health verdicts by target and site, fleet sync and configuration.", lay)


DASHBOARDS = {"geostream-traffic.json": traffic, "geostream-fleet.json": fleet}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a file differs from what this script writes")
    args = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run scripts/grafana_dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
