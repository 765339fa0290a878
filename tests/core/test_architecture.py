"""The core stays pure: it imports nothing that does I/O or belongs to an outer layer.

Walks every module of `geostream_dns/core` and checks each import statement
(at any depth, `TYPE_CHECKING` blocks included) against the forbidden list:
the outer layers of this package (config, adapters, api, cli, app) and the
libraries that do I/O, logging or metrics.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

CORE = pathlib.Path(__file__).resolve().parents[2] / "geostream_dns" / "core"
FORBIDDEN = (
    "geostream_dns.config", "geostream_dns.adapters", "geostream_dns.api",
    "geostream_dns.cli", "geostream_dns.app",
    "asyncio", "socket", "logging", "structlog", "prometheus_client", "psycopg",
    "psycopg_pool", "redis", "time", "threading", "subprocess", "os",
)


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(CORE.parents[1]).with_suffix("").parts[:-1])
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            out.append((node.lineno, module))
    return out


def forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


CORE_FILES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=[str(p.relative_to(CORE)) for p in CORE_FILES])
def test_core_module_imports_nothing_forbidden(path: pathlib.Path) -> None:
    bad = [f"{path.name}:{line}: {module}" for line, module in imports(path) if forbidden(module)]
    assert not bad, "the core must stay pure:\n" + "\n".join(bad)


def test_the_walk_sees_imports_and_flags_forbidden_ones(tmp_path: pathlib.Path) -> None:
    # The check itself can fail: a planted import of each kind is found.
    assert forbidden("geostream_dns.adapters.udp") and forbidden("redis.asyncio")
    assert forbidden("socket") and not forbidden("socketserver_like") and not forbidden("dns.name")
    found = {m for _, m in imports(CORE / "resolve.py")}
    assert "geostream_dns.core.world" in found and "dns.name" in found
    assert len(CORE_FILES) > 15
