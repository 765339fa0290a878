"""deploy/systemd/geostream-dns.service: `systemd-analyze verify` accepts it and
`systemd-analyze security` rates its exposure low.

The unit runs /opt/geostream-dns/bin/geostream-dns, which `verify` requires to
exist; the test verifies a copy whose ExecStart names this checkout's
installed geostream-dns instead, and nothing else changed. systemd-analyze
works on unit files without a running systemd, so it runs in containers too.
"""

from __future__ import annotations

import pathlib

from tests.deploy.tools import ROOT, output, require_tool, run

UNIT = ROOT / "deploy" / "systemd" / "geostream-dns.service"
INSTALLED = "/opt/geostream-dns/bin/geostream-dns"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def checkable_copy(tmp_path: pathlib.Path) -> pathlib.Path:
    binary = ROOT / ".venv" / "bin" / "geostream-dns"
    assert binary.exists(), "make venv first"
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED} ") == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={binary} "))
    return copy


def test_systemd_analyze_verify(tmp_path: pathlib.Path) -> None:
    result = run([require_tool("systemd-analyze"), "verify", str(checkable_copy(tmp_path))],
                 timeout=60)
    assert result.returncode == 0, output(result)
    # verify exits 0 on unknown keys and bad values (it ignores them): any word
    # about the unit is a mistake in it.
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if UNIT.name in line or "Unknown" in line or "ignoring" in line]
    assert complaints == [], output(result)


def test_systemd_analyze_security(tmp_path: pathlib.Path) -> None:
    result = run([require_tool("systemd-analyze"), "security", "--offline=yes",
                  "--threshold=20", str(checkable_copy(tmp_path))], timeout=60)
    assert result.returncode == 0, output(result)
    assert "Overall exposure level" in result.stdout, output(result)


def test_unprivileged_on_port_53_and_hardened() -> None:
    unit = settings()
    assert unit["ExecStart"] == [f"{INSTALLED} serve"]
    assert unit.get("DynamicUser") == ["yes"] or unit.get("User"), "runs as a user"
    assert unit["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert any(":53" in value and "GEOSTREAM_LISTEN" in value for value in unit["Environment"])
    assert unit["EnvironmentFile"] == ["/etc/geostream-dns/geostream-dns.env"]
    assert unit["StateDirectory"] == ["geostream-dns"]
    assert "GEOSTREAM_STATE_DIR=%S/geostream-dns" in unit["Environment"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "ProtectControlGroups", "RestrictSUIDSGID",
                "LockPersonality", "MemoryDenyWriteExecute"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"]
    assert "@system-service" in unit["SystemCallFilter"]
