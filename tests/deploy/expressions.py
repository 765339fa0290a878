"""Every PromQL expression of the project's alert rules and Grafana dashboards.

`load_expressions()` reads them from the files (deploy/prometheus/alerts.yml,
deploy/grafana/dashboards/*.json) and returns each with where it came from and
a form Prometheus accepts as it is (`promql`): Grafana's variables replaced by
values that select everything (`$instance` -> `.*`, `$__rate_interval` -> `1m`)
and a variable's `label_values(SELECTOR, LABEL)` query reduced to SELECTOR.

The deployment tests send each one to a real Prometheus to check that it
parses; a test that scrapes running GeoStream servers can use the same list to
check that each one returns data.

`METRICS` is the metrics contract the expressions are written against: names
and label names of GET /metrics (plus Prometheus's own `up`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

# Grafana variables -> values that select every series. Longest names first.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${instance}": ".*",
    "$instance": ".*",
}

# Target labels every scraped series has, and the histogram bucket label.
TARGET_LABELS = frozenset({"instance", "job"})

METRICS: dict[str, frozenset[str]] = {
    "geostream_dns_queries_total": frozenset({"transport", "qtype", "rcode"}),
    "geostream_dns_queries_by_family_total": frozenset({"transport", "family"}),
    "geostream_dns_answer_duration_seconds_bucket": frozenset({"le"}),
    "geostream_dns_answer_duration_seconds_sum": frozenset(),
    "geostream_dns_answer_duration_seconds_count": frozenset(),
    "geostream_config_generation": frozenset(),
    "geostream_config_reload_errors_total": frozenset(),
    "geostream_health_target_up": frozenset({"zone", "check", "target"}),
    "geostream_health_transitions_total": frozenset({"zone", "check", "target", "to"}),
    "geostream_health_site_up": frozenset({"zone", "check", "target", "site"}),
    "geostream_route_decisions_total": frozenset({"zone", "pool"}),
    "geostream_route_all_down_total": frozenset(),
    "geostream_region_drained": frozenset({"region"}),
    "geostream_cache_requests_total": frozenset({"tier", "result"}),
    "geostream_rrl_actions_total": frozenset({"action"}),
    "geostream_redis_up": frozenset(),
    "geostream_health_sites_live": frozenset(),
    "geostream_fleet_servers": frozenset({"state"}),
    "geostream_config_zone_problems": frozenset(),
    "geostream_build_info": frozenset({"version"}),
    "geostream_dnssec_signature_expiry_seconds": frozenset({"zone"}),
    "geostream_dnssec_keys": frozenset({"zone", "role", "state"}),
    "up": frozenset(),
}

# Label values fixed by the contract, where an expression names one.
LABEL_VALUES: dict[str, frozenset[str]] = {
    "action": frozenset({"slip", "drop"}),
    "state": frozenset({"insync", "lagging", "prober"}),
    "transport": frozenset({"udp", "tcp"}),
    "family": frozenset({"ipv4", "ipv6"}),
    "result": frozenset({"hit", "miss"}),
    "to": frozenset({"up", "down"}),
}


@dataclasses.dataclass(frozen=True)
class Expression:
    source: str       # file, relative to the repository
    where: str        # alert name, or dashboard / panel / query
    expr: str         # as written in the file
    promql: str       # as Prometheus accepts it

    def __str__(self) -> str:
        return f"{self.source}: {self.where}"


def render(expr: str) -> str:
    """Grafana's variables replaced; label_values(SELECTOR, LABEL) -> SELECTOR."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", expr, re.S)
    if match:
        expr = match.group(1)
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def alert_expressions(path: pathlib.Path = ALERTS) -> Iterator[Expression]:
    document = yaml.safe_load(path.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            yield Expression(str(path.relative_to(ROOT)), f"{group['name']}/{name}",
                             rule["expr"], rule["expr"])


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_expressions(folder: pathlib.Path = DASHBOARDS) -> Iterator[Expression]:
    for path in sorted(folder.glob("*.json")):
        dashboard = json.loads(path.read_text())
        source = str(path.relative_to(ROOT))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            yield Expression(source, f"{dashboard['title']} / variable ${variable['name']}",
                             text, render(text))
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                yield Expression(source,
                                 f"{dashboard['title']} / {panel['title']} / {target['refId']}",
                                 target["expr"], render(target["expr"]))


def load_expressions() -> list[Expression]:
    """Every alert and dashboard expression of the repository."""
    return [*alert_expressions(), *dashboard_expressions()]


# ---- static checks of names and labels ----------------------------------------------

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_FUNCTIONS_AND_KEYWORDS = frozenset({
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "histogram_quantile", "vector", "scalar", "time", "abs", "absent", "clamp_min",
    "clamp_max", "ceil", "floor", "round", "sort", "sort_desc", "label_replace", "label_join",
    "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "changes", "resets", "deriv", "predict_linear", "timestamp", "e", "inf",
    "nan", "atan2",
})


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not functions,
    keywords, label names or durations)."""
    text = _strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)                     # matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)                      # ranges
    names = set()
    for match in _IDENT.finditer(text):
        start = match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue                                            # 1m, 0.99e...
        name = match.group(0)
        if name.lower() in _FUNCTIONS_AND_KEYWORDS:
            continue
        names.add(name)
    return names


def label_names(expr: str) -> set[str]:
    """Label names an expression matches on or aggregates by."""
    text = _strip_strings(expr)
    labels: set[str] = set()
    for block in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels.update(name.strip() for name in block.split(",") if name.strip())
    return labels


def label_matchers(expr: str) -> list[tuple[str, str, str]]:
    """(label, operator, value) of every matcher."""
    return re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', expr)
