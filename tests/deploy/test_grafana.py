"""Grafana provisioning and dashboards hang together: the dashboards are what
scripts/grafana_dashboards.py writes, use the provisioned data source, and sit
where the dashboard provider and docker-compose.yml look for them."""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

from tests.deploy.tools import ROOT, output, run

GRAFANA = ROOT / "deploy" / "grafana"


def _dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text())
            for path in sorted((GRAFANA / "dashboards").glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def test_dashboards_are_up_to_date_with_their_generator() -> None:
    result = run([sys.executable, "scripts/grafana_dashboards.py", "--check"])
    assert result.returncode == 0, output(result)


def test_panels_use_the_provisioned_data_source() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    for name, dashboard in _dashboards().items():
        for panel in _panels(dashboard["panels"]):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, name
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"]


def test_dashboards_are_well_formed() -> None:
    uids = set()
    for name, dashboard in _dashboards().items():
        assert dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        panels = _panels(dashboard["panels"])
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']}"


def test_dashboards_cover_what_operators_need() -> None:
    titles = " | ".join(panel["title"] for dashboard in _dashboards().values()
                        for panel in _panels(dashboard["panels"]))
    exprs = " | ".join(target["expr"] for dashboard in _dashboards().values()
                       for panel in _panels(dashboard["panels"])
                       for target in panel.get("targets", []))
    for wanted in ("by (qtype)", "by (rcode)", "by (transport)",
                   "histogram_quantile(0.99", "by (zone, pool)",
                   "by (zone, check, target)", "by (zone, check, target, site)",
                   "by (state) (geostream_fleet_servers)", "geostream_config_generation",
                   "by (tier)", "geostream_rrl_actions_total"):
        assert wanted in exprs, wanted
    for wanted in ("Queries by type", "Answer duration quantiles", "Health by target and site",
                   "Servers by state", "Cache hit ratio by tier", "RRL actions"):
        assert wanted in titles, wanted


def test_dashboard_provider_path_matches_compose_mount() -> None:
    provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "geostream.yml").read_text())
    (entry,) = provider["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{entry['options']['path']}:ro" in mounts
