"""The last-known-good snapshot file: saves coalesce and never fall behind."""

from __future__ import annotations

import pathlib
import time

from geostream_dns.adapters.state_file import SavedSnapshot, StateFile


def snapshot(generation: int) -> SavedSnapshot:
    return SavedSnapshot(generation, time.time(), "postgresql://db", [])


def test_a_burst_of_saves_writes_only_the_newest(tmp_path: pathlib.Path) -> None:
    state = StateFile(tmp_path, delay=0.2)
    futures = [state.save_later(snapshot(g)) for g in range(1, 51)]
    assert futures[-1].result(timeout=5) is True
    assert [f.result(timeout=5) for f in futures[:-1]] == [False] * 49
    assert state.read().generation == 50


def test_a_steady_stream_of_saves_keeps_the_file_current(tmp_path: pathlib.Path) -> None:
    """Loads every 50 ms for 1.5 s: the file is never more than about `delay`
    behind, instead of falling a `delay` further behind with every load."""
    state = StateFile(tmp_path, delay=0.2)
    started = time.monotonic()
    generation = 0
    lags = []
    while time.monotonic() - started < 1.5:
        generation += 1
        state.save_later(snapshot(generation))
        time.sleep(0.05)
        if state.path.exists():
            lags.append(generation - state.read().generation)
    state.flush()
    assert state.read().generation == generation
    assert lags and max(lags) <= 12, lags  # 0.2 s delay + a write, at 20 loads a second
