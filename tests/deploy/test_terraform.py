"""terraform/: every file parses (python-hcl2); variables are typed and
described, secrets are sensitive and have no default; module calls pass only
variables the module declares and every required one; the NS delegation is an
output; every regional AWS resource names its region; checkov passes, with any
suppression explained in place."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import hcl2
import pytest

from tests.deploy.tools import ROOT, checkov, checkov_env, output, run

TERRAFORM = ROOT / "terraform"
FILES = sorted(TERRAFORM.rglob("*.tf"))
SECRET_NAME = re.compile(r"(token|password|secret|private_key)$")
META_ARGUMENTS = {"source", "version", "for_each", "count", "providers", "depends_on"}
# AWS resources and data sources that are global: no `region` argument.
GLOBAL_AWS = re.compile(r"^aws_(iam_.*|caller_identity|partition)$")


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse(path: pathlib.Path) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = hcl2.load(handle)
    return document


def blocks(document: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """name -> body of every block of one kind (variable, output, module)."""
    found = {}
    for entry in document.get(kind, []):
        for name, body in entry.items():
            found[unquote(name)] = body
    return found


def typed_blocks(document: dict[str, Any], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource or data block."""
    found = []
    for entry in document.get(kind, []):
        for type_name, named in entry.items():
            for name, body in named.items():
                found.append((unquote(type_name), unquote(name), body))
    return found


def directory(folder: pathlib.Path, kind: str) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tf")):
        merged.update(blocks(parse(path), kind))
    return merged


MODULE_DIRS = sorted({path.parent for path in FILES})


def rel(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_parses(path: pathlib.Path) -> None:
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize("folder", MODULE_DIRS, ids=rel)
def test_variables_are_typed_described_and_secrets_have_no_default(
        folder: pathlib.Path) -> None:
    for name, body in directory(folder, "variable").items():
        where = f"{rel(folder)}: variable {name}"
        assert body.get("type"), f"{where} has no type"
        assert str(unquote(body.get("description", ""))).strip(), f"{where} has no description"
        if SECRET_NAME.search(name):
            assert body.get("sensitive") is True, f"{where} is a secret: sensitive = true"
        if body.get("sensitive"):
            assert "default" not in body, f"{where} is sensitive and has a default"


@pytest.mark.parametrize("folder", MODULE_DIRS, ids=rel)
def test_outputs_are_described(folder: pathlib.Path) -> None:
    for name, body in directory(folder, "output").items():
        assert str(unquote(body.get("description", ""))).strip(), \
            f"{rel(folder)}: output {name} has no description"


def module_calls() -> list[tuple[pathlib.Path, str, dict[str, Any]]]:
    calls = []
    for folder in MODULE_DIRS:
        for name, body in directory(folder, "module").items():
            calls.append((folder, name, body))
    return calls


def test_there_are_module_calls_to_check() -> None:
    called = {str((folder / unquote(body["source"])).resolve().relative_to(ROOT))
              for folder, _, body in module_calls()}
    assert {"terraform/modules/geostream-fleet", "terraform/modules/geostream-zones",
            "terraform/modules/geostream-fleet/modules/network",
            "terraform/modules/geostream-fleet/modules/nodes"} <= called


@pytest.mark.parametrize("call", module_calls(), ids=lambda call: f"{rel(call[0])}:{call[1]}")
def test_module_calls_match_the_module_variables(
        call: tuple[pathlib.Path, str, dict[str, Any]]) -> None:
    folder, name, body = call
    target = (folder / unquote(body["source"])).resolve()
    assert target.is_dir(), f"module {name}: no folder {target}"
    declared = directory(target, "variable")
    passed = {key for key in body if key not in META_ARGUMENTS and not key.startswith("__")}
    unknown = passed - declared.keys()
    assert not unknown, f"module {name} passes undeclared variables {sorted(unknown)}"
    required = {var for var, spec in declared.items() if "default" not in spec}
    missing = required - passed
    assert not missing, f"module {name} leaves required variables unset: {sorted(missing)}"


def test_the_ns_delegation_is_an_output() -> None:
    fleet = directory(TERRAFORM / "modules" / "geostream-fleet", "output")
    for name in ("ns_records", "ns_address_records", "nameserver_addresses",
                 "load_balancer_dns_names"):
        assert name in fleet, f"geostream-fleet has no output {name}"
    example = directory(TERRAFORM / "examples" / "fleet", "output")
    for name in ("ns_records", "ns_address_records", "nameserver_addresses"):
        assert name in example, f"examples/fleet has no output {name}"
    # Every module output the example reads exists.
    for name, body in example.items():
        for used in re.findall(r"module\.fleet\.(\w+)", str(body["value"])):
            assert used in fleet, f"examples/fleet output {name} reads module.fleet.{used}"


def test_the_example_spans_several_regions() -> None:
    (fleet,) = [body for _, name, body in module_calls() if name == "fleet"]
    regions = fleet["regions"]
    assert len(regions) >= 2
    cidrs = [unquote(spec["cidr_block"]) for spec in regions.values()]
    assert len(set(cidrs)) == len(cidrs)


def test_every_regional_aws_resource_names_its_region() -> None:
    """One provider serves every region: a resource without `region` would land
    in the provider's region, silently."""
    fleet = TERRAFORM / "modules" / "geostream-fleet"
    for path in sorted(fleet.rglob("*.tf")):
        document = parse(path)
        for kind in ("resource", "data"):
            for type_name, name, body in typed_blocks(document, kind):
                if not type_name.startswith("aws_") or GLOBAL_AWS.match(type_name):
                    continue
                assert "region" in body, f"{rel(path)}: {type_name}.{name} has no region"


def test_zones_go_through_the_v1_api() -> None:
    zones = TERRAFORM / "modules" / "geostream-zones"
    (resource,) = [body for path in zones.glob("*.tf")
                   for type_name, _, body in typed_blocks(parse(path), "resource")
                   if type_name == "restapi_object"]
    assert unquote(resource["create_method"]) == "PUT"
    assert unquote(resource["create_path"]) == "/v1/zones/{id}"
    assert unquote(resource["update_method"]) == "PUT"
    assert unquote(resource["update_path"]) == "/v1/zones/{id}"
    provider_text = (TERRAFORM / "examples" / "zones" / "versions.tf").read_text()
    assert 'Authorization = "Bearer ${var.api_token}"' in provider_text
    assert directory(TERRAFORM / "examples" / "zones", "variable")["api_token"]["sensitive"]


def test_checkov_suppressions_say_why() -> None:
    for path in FILES:
        for line in path.read_text().splitlines():
            if "checkov:skip" in line:
                match = re.search(r"checkov:skip=(CKV2?_[A-Z]+_\d+):(.+)", line)
                assert match and len(match.group(2).strip()) >= 30, \
                    f"{rel(path)}: a suppression needs its reason: {line.strip()}"


def test_checkov() -> None:
    result = run([checkov(), "--directory", "terraform", "--framework", "terraform",
                  "--compact", "--quiet", "--skip-download"], env=checkov_env(), timeout=300)
    assert result.returncode == 0, output(result)
    assert "Failed checks: 0" in result.stdout, output(result)
