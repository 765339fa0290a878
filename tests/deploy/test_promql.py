"""Every PromQL expression of the alert rules and the dashboards parses in a
real Prometheus, and uses only the metrics, labels and label values that
GET /metrics documents."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.deploy.expressions import (
    LABEL_VALUES,
    METRICS,
    TARGET_LABELS,
    Expression,
    label_matchers,
    label_names,
    load_expressions,
    metric_names,
)

EXPRESSIONS = load_expressions()


def test_the_files_have_expressions() -> None:
    sources = {expression.source for expression in EXPRESSIONS}
    assert "deploy/prometheus/alerts.yml" in sources
    assert {"deploy/grafana/dashboards/geostream-traffic.json",
            "deploy/grafana/dashboards/geostream-fleet.json"} <= sources
    assert len(EXPRESSIONS) >= 40


def query(prometheus_url: str, promql: str) -> tuple[int, dict[str, object]]:
    body = urllib.parse.urlencode({"query": promql, "time": "1700000000"}).encode()
    request = urllib.request.Request(f"{prometheus_url}/api/v1/query", data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_broken_expression_is_refused(prometheus_url: str) -> None:
    """The check itself: Prometheus answers 400 bad_data to a parse error."""
    status, answer = query(prometheus_url,
                           "sum by (zone (rate(geostream_route_all_down_total[5m]))")
    assert status == 400, answer
    assert answer["errorType"] == "bad_data"


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=str)
def test_expression_parses(prometheus_url: str, expression: Expression) -> None:
    status, answer = query(prometheus_url, expression.promql)
    assert status == 200 and answer["status"] == "success", (
        f"{expression}: {expression.promql!r}: {answer}")


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=str)
def test_expression_uses_known_metrics_and_labels(expression: Expression) -> None:
    names = metric_names(expression.promql)
    assert names, f"{expression}: selects no metric"
    unknown = names - METRICS.keys()
    assert not unknown, f"{expression}: unknown metric(s) {sorted(unknown)}"
    allowed = set(TARGET_LABELS).union(*(METRICS[name] for name in names))
    assert label_names(expression.promql) <= allowed, (
        f"{expression}: labels {sorted(label_names(expression.promql) - allowed)} "
        f"are not labels of {sorted(names)}")
    for label, operator, value in label_matchers(expression.promql):
        if label in LABEL_VALUES and operator == "=":
            assert value in LABEL_VALUES[label], f"{expression}: {label}={value!r}"
