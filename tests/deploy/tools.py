"""Locating and running the external tools the deployment checks use.

Every tool is real (docker-compose, promtool, prometheus, systemd-analyze,
checkov); `make deploy-tools` installs them. A missing tool fails the test
that needs it, loudly: these checks are never skipped.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INSTALL_HINT = ("run `make deploy-tools` (Debian packages docker-compose, prometheus, "
                "systemd; checkov)")


def require_tool(name: str) -> str:
    """The path of NAME on PATH; fails the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}", pytrace=False)
    return path


def checkov() -> str:
    """checkov from its own virtualenv (see the Makefile), else from PATH."""
    candidate = ROOT / ".venv-checkov" / "bin" / "checkov"
    if candidate.exists():
        return str(candidate)
    return require_tool("checkov")


def run(args: list[str], timeout: float = 120, env: dict[str, str] | None = None,
        cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command in the repository, capture its output, never hang."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ), check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(result.args)}\nexit {result.returncode}\n{result.stdout}{result.stderr}"


def checkov_env() -> dict[str, str]:
    """checkov's environment: nothing downloaded (the checks run offline)."""
    env = dict(os.environ)
    env["BC_SKIP_MAPPING"] = "TRUE"
    env["CHECKOV_RUN_SCA_PACKAGE_SCAN_V2"] = "false"
    return env
