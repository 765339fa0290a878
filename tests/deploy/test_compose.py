"""docker-compose.yml: valid for docker-compose (`config -q`), and the fleet it
describes is the one the documentation promises."""

from __future__ import annotations

import os
from typing import Any

import yaml

from tests.deploy.tools import ROOT, output, require_tool, run


def _config() -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if key != "GEOSTREAM_API_TOKEN"}
    result = run([require_tool("docker-compose"), "-f", "docker-compose.yml", "config"],
                 env=env, timeout=60)
    assert result.returncode == 0, output(result)
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_docker_compose_config_is_valid() -> None:
    result = run([require_tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"],
                 timeout=60)
    assert result.returncode == 0, output(result)
    assert result.stderr.strip() == "", output(result)


def test_the_fleet() -> None:
    services = _config()["services"]
    assert {"postgres", "redis", "migrate", "zones", "ns1", "ns2", "prober", "prometheus",
            "grafana"} <= services.keys()

    assert services["migrate"]["command"] == ["migrate"]
    assert "DATABASE_URL" in services["migrate"]["environment"]
    assert services["zones"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"

    sites, ids = set(), set()
    for name in ("ns1", "ns2", "prober"):
        service = services[name]
        command = service["command"]
        assert command[0] == "serve"
        ids.add(command[command.index("--server-id") + 1])
        env = service["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "GEOSTREAM_API_TOKEN", "GEOSTREAM_SITE"} <= env.keys()
        sites.add(env["GEOSTREAM_SITE"])
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert len(sites) == 3, sites
    assert len(ids) == 3, ids
    assert "--probe-only" in services["prober"]["command"]
    assert "--probe-only" not in services["ns1"]["command"]


def port_mapping(port: str | dict[str, Any]) -> tuple[str, str, str, str]:
    """(host address, published port, container port, protocol) of a port entry,
    in the short form (HOST:PUBLISHED:TARGET/PROTO) or the long one."""
    if isinstance(port, dict):
        return (str(port.get("host_ip", "")), str(port.get("published", "")),
                str(port["target"]), str(port.get("protocol", "tcp")))
    mapping, _, protocol = port.partition("/")
    host, published, target = ([""] * 3 + mapping.split(":"))[-3:]
    return host, published, target, protocol or "tcp"


def test_ports_are_published_on_loopback_only_where_useful() -> None:
    services = _config()["services"]
    published = {name: [port_mapping(port) for port in service.get("ports", [])]
                 for name, service in services.items()}
    assert {name for name, ports in published.items() if ports} == \
        {"ns1", "ns2", "prometheus", "grafana"}
    for name, ports in published.items():
        for host, *_ in ports:
            assert host == "127.0.0.1", (name, ports)
    dns = {(port, protocol) for name in ("ns1", "ns2")
           for _, port, target, protocol in published[name] if target == "8053"}
    assert dns == {("8053", "udp"), ("8053", "tcp"), ("8054", "udp"), ("8054", "tcp")}, dns


def test_mounted_files_exist() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
