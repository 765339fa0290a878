"""One zone-folder scanner: check, plan/apply, explain, serve and the API see the same files."""

from __future__ import annotations

import pathlib

from geostream_dns.adapters.zones_folder import ZonesFolder
from geostream_dns.config.folder import file_name, zone_files
from geostream_dns.config.loader import load_zones_dir
from tests.config.helpers import BASE


def zone(origin: str) -> str:
    return BASE.replace("example.com", origin.rstrip("."))


def test_every_reader_sees_the_same_zone_files(tmp_path: pathlib.Path) -> None:
    (tmp_path / "example.com.yaml").write_text(zone("example.com."))
    (tmp_path / "example.org.yml").write_text(zone("example.org."))
    (tmp_path / ".example.net.yaml").write_text(zone("example.net."))  # hidden: editor file
    (tmp_path / "example.info.yaml.bak").write_text(zone("example.info."))
    (tmp_path / "notes.txt").write_text("not a zone")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "example.edu.yaml").write_text(zone("example.edu."))

    files, missing = zone_files([tmp_path])
    assert [f.name for f in files] == ["example.com.yaml", "example.org.yml"] and not missing

    # check / plan / apply / explain
    checked, problems = load_zones_dir([tmp_path])
    assert problems == []
    # serve (embedded mode) and the zones API, which write through the same store
    folder = ZonesFolder((tmp_path,), tmp_path / "state")
    folder.poll()
    served, standing = folder.zones()
    assert standing == []
    assert sorted(z.origin for z in checked) == sorted(z.origin for z in served) == [
        "example.com.", "example.org."]
    assert sorted(pathlib.Path(z.source).name for z in served) == [f.name for f in files]


def test_a_file_named_on_the_command_line_is_taken_whatever_its_name(
        tmp_path: pathlib.Path) -> None:
    path = tmp_path / ".example.com.yaml"
    path.write_text(zone("example.com."))
    files, missing = zone_files([path, tmp_path / "absent"])
    assert files == [path] and missing == [tmp_path / "absent"]


def test_zone_file_names() -> None:
    assert file_name("example.com.") == "example.com.yaml"
    assert file_name("example.com") == "example.com.yaml"
