"""The embedded-mode store: serials only ever increase, across restarts too."""

from __future__ import annotations

import os
import pathlib
import shutil

from geostream_dns.adapters.zones_folder import ZonesFolder

ROOT = pathlib.Path(__file__).resolve().parents[2]


def serial_of(folder: ZonesFolder, origin: str) -> int:
    zones, problems = folder.zones()
    assert problems == []
    return {z.origin: z.serial for z in zones}[origin]


def test_serials_increase_across_edits_and_restarts(tmp_path: pathlib.Path) -> None:
    zones, state = tmp_path / "zones", tmp_path / "state"
    zones.mkdir()
    path = zones / "example.org.yaml"
    shutil.copy(ROOT / "zones" / "example.org.yaml", path)
    os.utime(path, ns=(1_800_000_000 * 10**9,) * 2)

    first = ZonesFolder((zones,), state)
    assert first.poll()[0]
    s1 = serial_of(first, "example.org.")
    assert s1 == 1_800_000_000
    # Two more edits within the same second: the serial still goes up each time.
    for n in (1, 2):
        path.write_text(path.read_text() + f"# edit {n}\n")
        os.utime(path, ns=(1_800_000_000 * 10**9 + n,) * 2)
        assert first.poll()[0]
    s3 = serial_of(first, "example.org.")
    assert s3 == s1 + 2

    # A restart with the file unchanged keeps the serial; the next edit goes on from it.
    second = ZonesFolder((zones,), state)
    second.poll()
    assert serial_of(second, "example.org.") == s3
    path.write_text(path.read_text() + "# edit 3\n")
    os.utime(path, ns=(1_800_000_000 * 10**9 + 3,) * 2)
    assert second.poll()[0]
    assert serial_of(second, "example.org.") == s3 + 1


def test_without_a_state_dir_serials_follow_the_file_time(tmp_path: pathlib.Path) -> None:
    shutil.copy(ROOT / "zones" / "example.org.yaml", tmp_path / "example.org.yaml")
    os.utime(tmp_path / "example.org.yaml", ns=(1_700_000_000 * 10**9,) * 2)
    folder = ZonesFolder((tmp_path,))
    folder.poll()
    assert serial_of(folder, "example.org.") == 1_700_000_000
