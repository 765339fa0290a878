"""The scrape config and the alert rules, checked by promtool; every alert has
unit tests in alerts_test.yml where it fires and where it does not."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.tools import ROOT, output, require_tool, run

PROMETHEUS = ROOT / "deploy" / "prometheus"


def test_promtool_check_config() -> None:
    result = run([require_tool("promtool"), "check", "config", "deploy/prometheus/prometheus.yml"])
    assert result.returncode == 0, output(result)


def test_promtool_check_rules() -> None:
    result = run([require_tool("promtool"), "check", "rules", "deploy/prometheus/alerts.yml"])
    assert result.returncode == 0, output(result)


def test_promtool_test_rules() -> None:
    result = run([require_tool("promtool"), "test", "rules",
                  "deploy/prometheus/alerts_test.yml"])
    assert result.returncode == 0, output(result)
    assert "SUCCESS" in result.stdout, output(result)


def _alerts() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]
            if "alert" in rule}


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts - firing == set(), f"alerts never tested firing: {sorted(alerts - firing)}"
    assert alerts - quiet == set(), f"alerts never tested quiet: {sorted(alerts - quiet)}"


def test_the_required_alerts_exist() -> None:
    alerts = _alerts()
    wanted = {
        "GeoStreamServerDown": "up",
        "GeoStreamZoneProblems": "geostream_config_zone_problems",
        "GeoStreamHealthTargetDown": "geostream_health_target_up",
        "GeoStreamFailOpen": "geostream_route_all_down_total",
        "GeoStreamRedisDown": "geostream_redis_up",
        "GeoStreamFleetOutOfSync": 'geostream_fleet_servers{state="lagging"}',
        "GeoStreamRRLDropping": 'geostream_rrl_actions_total{action="drop"}',
    }
    for name, selector in wanted.items():
        assert name in alerts, f"missing alert {name}"
        assert selector in alerts[name]["expr"], f"{name}: {alerts[name]['expr']}"
        assert alerts[name]["labels"]["severity"] in {"page", "warning", "info"}
        assert {"summary", "description", "runbook"} <= alerts[name]["annotations"].keys()
    # Conditions that must hold a while before anyone is told.
    for name in ("GeoStreamZoneProblems", "GeoStreamFleetOutOfSync"):
        assert alerts[name].get("for"), f"{name} fires at once"


def test_runbooks_point_at_sections_of_the_deploy_docs() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    anchors = {line.lstrip("#").strip().lower() for line in text.splitlines()
               if line.startswith("#")}
    for name, rule in _alerts().items():
        runbook = rule["annotations"]["runbook"]
        assert runbook == f"docs/deploy.md#{name.lower()}", runbook
        assert name.lower() in anchors, f"docs/deploy.md has no heading {name}"


def test_scrape_config_scrapes_the_compose_servers() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {target for job in config["scrape_configs"] for static in job["static_configs"]
               for target in static["targets"]}
    assert {"ns1:8080", "ns2:8080", "prober:8080"} <= targets
    # A `site` target label would rename the metrics' own `site` label.
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            assert "site" not in static.get("labels", {}), job["job_name"]
