"""plan / apply / export / history / rollback against a real database."""

from __future__ import annotations

import contextlib
import io
import json
import pathlib
import shutil
import threading

import psycopg

from geostream_dns.cli.apply import apply_files
from geostream_dns.cli.main import build_parser
from geostream_dns.config.document import zone_document
from geostream_dns.config.loader import load_zones_dir
from tests.postgres.conftest import cli
from tests.support.harness import SAMPLE_ZONES as SAMPLES
from tests.support.zones import write_zone


def serials(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {name: int(s) for name, s in conn.execute("SELECT name, serial FROM zones")}


def head(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT generation FROM config_head").fetchone()
        assert row is not None
        return int(row[0])


def documents(*paths: pathlib.Path) -> dict[str, object]:
    zones, problems = load_zones_dir(list(paths))
    assert not problems, problems
    return {z.origin: zone_document(z) for z in zones}


def test_plan_exit_codes_and_lines(migrated_url: str, tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}\n"
                       "old: {type: TXT, value: hello}")

    first = cli("plan", folder, *db)
    assert first.code == 2, first
    assert "+ zone example.com." in first.out
    assert "+   www.example.com. A  ttl: 300, value: 192.0.2.10" in first.out
    assert first.out.rstrip().endswith(
        "Plan: 1 zone to add, 0 to change, 0 to remove; 2 record sets to add, 0 to change, "
        "0 to remove.")
    assert head(migrated_url) == 0  # plan writes nothing

    applied = cli("apply", folder, "--author", "alice", *db)
    assert applied.code == 0, applied
    assert "Applied generation 1." in applied.out
    assert cli("plan", folder, *db).code == 0

    write_zone(folder, "www: {type: A, ttl: 60, values: [192.0.2.10, 192.0.2.11]}\n"
                       "new: {type: AAAA, value: '2001:db8::1'}")
    changed = cli("plan", folder, *db)
    assert changed.code == 2
    lines = changed.out.splitlines()
    assert ("~   www.example.com. A  ttl: 300 -> 60; value: 192.0.2.10 -> (none); "
            "values: (none) -> [192.0.2.10, 192.0.2.11]") in lines
    assert '+   new.example.com. AAAA  ttl: 300, value: "2001:db8::1"' in lines
    assert "-   old.example.com. TXT  ttl: 300, value: hello" in lines
    assert lines[-1] == ("Plan: 0 zones to add, 1 to change, 0 to remove; 1 record set to add, "
                         "1 to change, 1 to remove.")


def test_plan_reports_invalid_files_like_check(migrated_url: str, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.300}")
    check = cli("check", folder)
    for command in ("plan", "apply"):
        result = cli(command, folder, "--database-url", migrated_url)
        assert result.code == 1
        assert result.out == check.out  # the same located problems
        assert "records.www.value" in result.out
    assert head(migrated_url) == 0


def test_apply_bumps_the_serial_of_changed_zones_only_and_notifies(
        migrated_url: str, tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    write_zone(folder, "www: {type: A, value: 192.0.2.20}", "example.org.")
    assert cli("apply", folder, *db).code == 0
    before = serials(migrated_url)

    with psycopg.connect(migrated_url, autocommit=True) as listener:
        listener.execute("LISTEN geostream_config")
        write_zone(folder, "www: {type: A, value: 192.0.2.11}")
        assert cli("apply", folder, *db).code == 0
        payloads = [n.payload for n in listener.notifies(timeout=2.0, stop_after=1)]
    assert payloads == ["2"]
    after = serials(migrated_url)
    assert after["example.com."] > before["example.com."]
    assert after["example.org."] == before["example.org."]
    assert cli("apply", folder, *db).out.startswith("No changes")
    assert head(migrated_url) == 2  # an empty plan makes no generation


def test_saved_plan_applies_exactly_and_a_stale_one_is_refused(
        migrated_url: str, tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    folder = tmp_path / "zones"
    write_zone(folder, "www: {type: A, value: 192.0.2.10}")
    plan_file = tmp_path / "change.plan"
    saved = cli("plan", folder, "--out", plan_file, *db)
    assert saved.code == 2 and plan_file.exists()
    assert json.loads(plan_file.read_text())["base_generation"] == 0
    # Editing the files after planning does not change what the saved plan applies.
    write_zone(folder, "www: {type: A, value: 192.0.2.99}")
    applied = cli("apply", plan_file, *db)
    assert applied.code == 0, applied
    exported = tmp_path / "export"
    assert cli("export", exported, *db).code == 0
    assert "192.0.2.10" in (exported / "example.com.yaml").read_text()

    stale_file = tmp_path / "stale.plan"
    assert cli("plan", folder, "--out", stale_file, *db).code == 2  # against generation 1
    write_zone(tmp_path / "other", "www: {type: A, value: 192.0.2.30}", "example.info.")
    assert cli("apply", tmp_path / "other", *db).code == 0  # the database moves on: 2
    stale = cli("apply", stale_file, *db)
    assert stale.code == 1
    assert stale.err == (f"geostream-dns apply: {stale_file} was computed against generation 1, "
                         f"but the database is now at generation 2: it has changed since; "
                         f"run plan again\n")
    assert head(migrated_url) == 2

    not_a_plan = tmp_path / "notes.txt"
    not_a_plan.write_text("hello")
    result = cli("apply", not_a_plan, *db)
    assert result.code == 1 and "not a saved GeoStream plan" in result.err


def test_zones_missing_from_the_files_are_left_alone_unless_asked(
        migrated_url: str, tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    both, one = tmp_path / "both", tmp_path / "one"
    write_zone(both, "www: {type: A, value: 192.0.2.10}")
    write_zone(both, "www: {type: A, value: 192.0.2.20}", "example.org.")
    write_zone(one, "www: {type: A, value: 192.0.2.10}")
    assert cli("apply", both, *db).code == 0

    plan = cli("plan", one, *db)
    assert plan.code == 0
    assert ("  zone example.org. is in the database but not in the files: left alone "
            "(apply --delete-missing removes it)") in plan.out
    assert cli("apply", one, *db).code == 0
    assert set(serials(migrated_url)) == {"example.com.", "example.org."}

    deleting = cli("plan", one, "--delete-missing", *db)
    assert deleting.code == 2
    assert "- zone example.org." in deleting.out
    assert "-   www.example.org. A  ttl: 300, value: 192.0.2.20" in deleting.out
    org_serial = serials(migrated_url)["example.org."]
    assert cli("apply", one, "--delete-missing", *db).code == 0
    assert set(serials(migrated_url)) == {"example.com."}
    # Re-created, the zone continues from its last serial (secondaries never go back).
    for _ in range(3):  # push the serial ahead of the clock first
        write_zone(both, f"www: {{type: A, value: 192.0.2.{21 + _}}}", "example.org.")
        assert cli("apply", both, *db).code == 0
    ahead = serials(migrated_url)["example.org."]
    assert ahead > org_serial
    assert cli("apply", one, "--delete-missing", *db).code == 0
    assert cli("apply", both, *db).code == 0
    assert serials(migrated_url)["example.org."] > ahead

    # An empty folder with --delete-missing would remove every zone: refused.
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = cli("plan", empty, "--delete-missing", *db)
    assert refused.code == 1 and "no zone files" in refused.err, refused


def test_export_round_trips_the_sample_zones(migrated_url: str, tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    assert cli("apply", SAMPLES, *db).code == 0
    out = tmp_path / "export"
    result = cli("export", out, *db)
    assert result.code == 0, result
    assert sorted(p.name for p in out.iterdir()) == ["example.com.yaml", "example.org.yaml"]
    assert cli("check", out).code == 0
    assert documents(out) == documents(SAMPLES)
    assert cli("plan", out, *db).code == 0

    single = tmp_path / "single"
    assert cli("export", "--zone", "example.org", single, *db).code == 0
    assert [p.name for p in single.iterdir()] == ["example.org.yaml"]
    missing = cli("export", "--zone", "example.net.", tmp_path / "none", *db)
    assert missing.code == 1 and "not in the database: example.net." in missing.err


def test_history_and_rollback(migrated_url: str, tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    v1, v2, v3 = tmp_path / "v1", tmp_path / "v2", tmp_path / "v3"
    write_zone(v1, "www: {type: A, value: 192.0.2.1}")
    write_zone(v2, "www: {type: A, value: 192.0.2.2}")
    write_zone(v2, "www: {type: A, value: 192.0.2.3}", "example.org.")
    write_zone(v3, "www: {type: A, value: 192.0.2.4}\n"
                   "api: {type: CNAME, value: www.example.com.}")
    assert cli("apply", v1, "--author", "alice", *db).code == 0
    assert cli("apply", v2, "--author", "bob", *db).code == 0
    assert cli("apply", v3, "--delete-missing", "--author", "carol", *db).code == 0
    serial_v3 = serials(migrated_url)["example.com."]

    history = cli("history", *db)
    assert history.code == 0, history
    rows = history.out.splitlines()
    assert rows[0].split() == ["GENERATION", "TIME", "(UTC)", "AUTHOR", "KIND", "SUMMARY"]
    assert [(r.split()[0], r.split()[3], r.split()[4]) for r in rows[1:]] == [
        ("3", "carol", "apply"), ("2", "bob", "apply"), ("1", "alice", "apply")]
    assert "zones change 1, remove 1 (example.com., example.org.)" in rows[1]

    detail = cli("history", "2", *db)
    assert "~   www.example.com. A  value: 192.0.2.1 -> 192.0.2.2" in detail.out
    assert "+ zone example.org." in detail.out

    rollback = cli("rollback", "2", "--author", "dave", *db)
    assert rollback.code == 0, rollback
    assert "Rolled back to generation 2 as generation 4." in rollback.out
    exported = tmp_path / "export"
    assert cli("export", exported, *db).code == 0
    assert documents(exported) == documents(v2)  # api removed, example.org. back
    assert serials(migrated_url)["example.com."] > serial_v3  # serials never go back
    latest = cli("history", "--limit", "1", "--json", *db).out
    entry = json.loads(latest)
    assert (entry["generation"], entry["author"], entry["kind"]) == (4, "dave", "rollback")
    assert entry["summary"].startswith("rollback to 2: ")

    assert cli("rollback", "2", *db).out.rstrip().endswith(
        "The database already holds the zones of generation 2.")
    missing = cli("rollback", "9", *db)
    assert missing.code == 1
    assert missing.err == ("geostream-dns rollback: there is no generation 9 "
                           "(the database is at generation 4)\n")


def test_apply_to_the_samples_folder_copy_with_a_bad_file_applies_nothing(
        migrated_url: str, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "zones"
    shutil.copytree(SAMPLES, folder)
    (folder / "broken.example.yaml").write_text("zone: broken.example.\nttl: x\n")
    result = cli("apply", folder, "--database-url", migrated_url)
    assert result.code == 1
    assert "broken.example.yaml" in result.out
    assert head(migrated_url) == 0


def test_two_applies_at_once_queue_up_and_both_land(migrated_url: str,
                                                    tmp_path: pathlib.Path) -> None:
    db = ["--database-url", migrated_url]
    folders = [tmp_path / "a", tmp_path / "b"]
    write_zone(folders[0], "www: {type: A, value: 192.0.2.1}")
    write_zone(folders[1], "www: {type: A, value: 192.0.2.2}", "example.org.")
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def apply(folder: pathlib.Path) -> None:
        args = build_parser().parse_args(["apply", str(folder), *db])
        barrier.wait(timeout=10)
        codes.append(apply_files(args) or 0)

    with contextlib.redirect_stdout(io.StringIO()):
        threads = [threading.Thread(target=apply, args=(f,)) for f in folders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert sorted(codes) == [1, 2]  # both landed, one generation each
    assert head(migrated_url) == 2
    assert set(serials(migrated_url)) == {"example.com.", "example.org."}
    with psycopg.connect(migrated_url) as conn:
        rows = conn.execute("SELECT generation, zone FROM zone_versions ORDER BY generation")
        assert sorted(zone for _, zone in rows) == ["example.com.", "example.org."]
