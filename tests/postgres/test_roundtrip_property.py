"""The round trip, as a property: for any valid zones, apply; export; plan of the export
is empty, and the export means exactly what the files meant."""

from __future__ import annotations

import pathlib
import shutil
import tempfile

import yaml
from hypothesis import HealthCheck, given, settings

from geostream_dns.config.document import zone_document
from geostream_dns.config.loader import load_zone_data, load_zones_dir
from tests.postgres.conftest import cli
from tests.postgres.strategies import zone_sets


def documents(folder: pathlib.Path) -> dict[str, object]:
    zones, problems = load_zones_dir([folder])
    assert not problems, "\n".join(map(str, problems))
    return {z.origin: zone_document(z) for z in zones}


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(zones=zone_sets())
def test_apply_then_export_then_plan_is_empty(migrated_url: str,
                                               zones: dict[str, dict[str, object]]) -> None:
    db = ["--database-url", migrated_url]
    base = pathlib.Path(tempfile.mkdtemp(prefix="gs-roundtrip-"))
    try:
        files, exported = base / "files", base / "export"
        files.mkdir()
        for origin, doc in zones.items():
            (files / f"{origin.rstrip('.')}.yaml").write_text(
                yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        check = cli("check", files)
        assert check.code == 0, check  # the strategy makes valid zones only

        # --force: each example replaces the previous example's zones wholesale,
        # which the safety thresholds would otherwise (rightly) refuse
        applied = cli("apply", files, "--delete-missing", "--force", *db)
        assert applied.code == 0, applied
        assert cli("export", exported, *db).code == 0
        plan = cli("plan", exported, "--delete-missing", *db)
        assert plan.code == 0, plan
        assert plan.out.splitlines()[-1] == "No changes: the database already matches."
        assert documents(exported) == documents(files)
        # Canonical documents are a fixed point of load -> document.
        for origin, doc in documents(files).items():
            assert zone_document(load_zone_data(doc, origin)) == doc
    finally:
        shutil.rmtree(base, ignore_errors=True)
