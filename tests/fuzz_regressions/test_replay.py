"""Every input the fuzz campaign (`make fuzz`) found crashing or hanging, replayed
through the same check (fuzz/checks.py) and the real code: each must now pass.
Inputs live in tests/fuzz_regressions/<target>/, one file each, named as
libFuzzer saved them."""

from __future__ import annotations

import pathlib
import time

import pytest

from fuzz.checks import TARGETS

HERE = pathlib.Path(__file__).parent
CASES = sorted(p for p in HERE.glob("*/*") if p.is_file() and p.parent.name in TARGETS)


def test_every_folder_is_a_target() -> None:
    folders = {p.name for p in HERE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders <= set(TARGETS), folders - set(TARGETS)
    assert CASES, "no saved inputs"


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.name[:16]}" for p in CASES])
def test_saved_input_passes(path: pathlib.Path) -> None:
    started = time.monotonic()
    TARGETS[path.parent.name](path.read_bytes())
    if path.name.startswith("timeout-"):  # was a hang: must now end quickly (generous bound)
        assert time.monotonic() - started < 5.0
