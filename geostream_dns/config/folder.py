"""Which files are zone files: the one scanner every command uses.

`check`, `plan`, `apply`, `explain`, `serve` and the zones API all find zone
files through `zone_files`, so they always agree on what a folder holds: the
`*.yaml` and `*.yml` files directly inside it, sorted, hidden files (a
leading dot: editor swap and backup files) left out. A path given as a file
is taken as it is, whatever its name.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterable

ZONE_SUFFIXES = (".yaml", ".yml")
# A zone name that may become a file name: letters, digits, '-' and '_' in
# labels of 1..63, nothing else (no '/', '\\', NUL, '%', '..', escapes).
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_SAFE_ZONE = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")


def unsafe_zone_name(text: str) -> str | None:
    """Why `text` cannot name a zone file (None when it can): only letters,
    digits, '-' and '_' in dot-separated labels, at most 253 characters, so a
    name can never leave the zones folder."""
    if not text or text == ".":
        return "the zone name is empty"
    if len(text.rstrip(".")) > 253:
        return "the zone name is longer than 253 characters"
    if not _SAFE_ZONE.fullmatch(text):
        return ("a zone name has labels of letters, digits, '-' and '_' only "
                "(no '/', '\\', '%', NUL, empty labels or escapes)")
    return None


def is_zone_file_name(name: str) -> bool:
    return name.endswith(ZONE_SUFFIXES) and not name.startswith(".")


def file_name(origin: str) -> str:
    """The file a zone is written to: ``example.com.`` -> ``example.com.yaml``.
    Raises ValueError for a name that could leave the folder (see `unsafe_zone_name`)."""
    reason = unsafe_zone_name(origin)
    if reason is not None:
        raise ValueError(f"{origin!r}: {reason}")
    return origin.rstrip(".") + ".yaml"


def zone_files(paths: Iterable[pathlib.Path]) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """(zone files found, paths that do not exist). Folders are read one level deep."""
    files: list[pathlib.Path] = []
    missing: list[pathlib.Path] = []
    for path in paths:
        if path.is_dir():
            try:
                entries = sorted(e.name for e in os.scandir(path)
                                 if is_zone_file_name(e.name) and e.is_file())
            except FileNotFoundError:
                missing.append(path)
                continue
            files.extend(path / name for name in entries)
        elif path.exists():
            files.append(path)
        else:
            missing.append(path)
    return files, missing
