"""The latency table in its own process: the changes it sends rebuild the table's
shards exactly (hypothesis, no sockets), they arrive untracked by the cyclic
collector, and a real child process takes rows in, publishes views, keeps its
checkpoint and is replaced when it dies."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import pathlib
import pickle
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geostream_dns.adapters.latency import (
    LatencyTable,
    apply_changes,
    apply_parent_changes,
)
from geostream_dns.adapters.latency_worker import LatencyWorker, _untracked
from geostream_dns.core.latency import SHARDS, LatencyView, shard_of, shard_parents
from tests.support.harness import wait_until

T0 = 1_800_000_000.0
REGIONS = ("us", "eu", "ap")

keys = st.one_of(
    st.binary(min_size=3, max_size=3),
    st.binary(min_size=6, max_size=6),
    st.sampled_from(["EU", "EU-DE", "EU-DE-HE", "NA", "NA-US", "*"]),
)
step = st.tuples(st.lists(keys, min_size=1, max_size=3), st.sampled_from(REGIONS),
                 st.floats(min_value=0.1, max_value=500.0), st.integers(1, 5))


def replica_of(table: LatencyTable, shards: list[dict], parents: list, sent: set[bytes],
               chunk: int) -> set[bytes]:
    """What the server does with one view's worth of the table's changes, pickled as
    they cross the pipe. Returns the parents sent so far."""
    copied: set[int] = set()
    for piece in table.take_changes(chunk):
        apply_changes(shards, copied, _untracked(pickle.loads(pickle.dumps(piece))))
    now = table.parents.keys()
    apply_parent_changes(parents, set(), list(now - sent), list(sent - now))
    return set(now)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(step, max_size=40), min_size=1, max_size=4),
       st.integers(1, 30), st.integers(2, 40))
def test_changes_rebuild_the_tables_shards(views: list, chunk: int, max_keys: int) -> None:
    """Folds, new keys and evictions over several views: after each view's pieces
    (of any size) the copy equals the table, and the dicts of an earlier copy are
    never written to."""
    table = LatencyTable(half_life=60.0, max_keys=max_keys, epoch=T0)
    shards: list[dict] = [{} for _ in range(SHARDS)]
    parents: list = list(shard_parents(()))
    sent: set[bytes] = set()
    earlier: list[tuple[tuple[dict, ...], list[dict]]] = []
    for batch in views:
        for batch_keys, region, rtt, count in batch:
            table.add(batch_keys, region, rtt, count, T0)
        sent = replica_of(table, shards, parents, sent, chunk)
        for index in range(SHARDS):
            assert shards[index] == table.shards[index]
            assert set(parents[index]) == {p for p in table.parents if p[-1] == index}
        earlier.append((tuple(shards), [dict(s) for s in shards]))
    for frozen, contents in earlier:  # copy-on-write: what was published stays as it was
        assert [dict(s) for s in frozen] == contents


def test_network_keys_shard_by_their_last_byte() -> None:
    """The same in every process (unlike hash()), so the child can group by shard."""
    assert shard_of(bytes([81, 2, 69])) == 69
    assert shard_of(bytes(range(6))) == 5
    view = LatencyView(shards=tuple({bytes([1, 2, i]): (("us", 1.0, 1.0),)} if i == 7 else {}
                                    for i in range(SHARDS)))
    assert view.entry(bytes([1, 2, 7])) == (("us", 1.0, 1.0),)


def test_applied_entries_leave_the_shards_untracked() -> None:
    """A shard the collector tracks is walked, every entry, by every full collection."""
    table = LatencyTable(epoch=T0)
    for i in range(3000):
        table.add([bytes([10, i % 256, i // 256]), "EU"], REGIONS[i % 3], 10.0 + i, 1, T0)
    shards: list[dict] = [{} for _ in range(SHARDS)]
    copied: set[int] = set()
    for piece in table.take_changes(500):
        apply_changes(shards, copied, _untracked(pickle.loads(pickle.dumps(piece))))
    assert not [i for i, shard in enumerate(shards) if gc.is_tracked(shard)]
    assert sum(len(shard) for shard in shards) == 3001


def new_worker(tmp_path: pathlib.Path, save_every: float) -> tuple[LatencyWorker, list]:
    views: list[LatencyView] = []
    latency = LatencyWorker(views.append, None, half_life=3600.0, max_keys=1000,
                            checkpoint=tmp_path / "latency.json.gz", save_every=save_every)
    latency.spawn()
    latency.start(None)  # type: ignore[arg-type]
    return latency, views


def test_the_child_takes_rows_in_and_publishes_views(tmp_path: pathlib.Path) -> None:
    latency, views = new_worker(tmp_path, 3600.0)
    try:
        net = bytes([81, 2, 69])
        latency.submit([((net, "EU-GB", "EU"), "eu", 20.0, 3), ((net,), "us", 90.0, 1)],
                       source="probe")
        assert latency.flush()
        view = views[-1]
        assert view.keys == 3 and latency.keys == 3
        mean, count = view.region_stats(net, "eu")  # type: ignore[misc]
        assert mean == pytest.approx(20.0) and count == pytest.approx(3.0, rel=1e-3)
        assert view.region_stats("EU", "eu") is not None
        assert view.has_parent(net[:2]) and not view.has_parent(bytes([81, 3]))
        assert latency.samples_by_source == {"probe": 4}
        # a second view: only what changed crossed the pipe; the first is untouched
        latency.submit([((net,), "eu", 40.0, 3)], source="probe")
        assert latency.flush()
        assert views[-1].generation > view.generation
        assert views[-1].region_stats(net, "eu")[0] == pytest.approx(30.0, rel=1e-3)  # type: ignore[index]
        assert view.region_stats(net, "eu")[0] == pytest.approx(20.0)  # type: ignore[index]
    finally:
        latency.stop()
    # stopping wrote the checkpoint; a new worker reads it
    again, loaded = new_worker(tmp_path, 3600.0)
    try:
        again.load()
        assert again.flush()
        assert loaded[-1].keys == 3
        assert loaded[-1].region_stats(net, "us")[0] == pytest.approx(90.0)  # type: ignore[index]
    finally:
        again.stop()


def test_a_dead_child_is_replaced_and_reads_the_checkpoint(tmp_path: pathlib.Path) -> None:
    latency, views = new_worker(tmp_path, 0.2)
    try:
        net = bytes([10, 20, 30])
        latency.submit([((net,), "ap", 55.0, 2)], source="probe")
        assert latency.flush()
        assert latency.checkpoint is not None
        wait_until(latency.checkpoint.exists, timeout=10)
        pid = latency._process.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not latency.alive, timeout=10)
        # the next rows start a new child, which reads the checkpoint first
        latency.submit([((bytes([10, 20, 31]),), "us", 5.0, 1)], source="probe")
        assert latency.restarts == 1 and latency._process.pid != pid
        assert latency.flush()
        view = views[-1]
        assert view.region_stats(net, "ap")[0] == pytest.approx(55.0)  # type: ignore[index]
        assert view.region_stats(bytes([10, 20, 31]), "us") is not None
    finally:
        latency.stop()


def test_a_cancelled_request_does_not_stop_what_follows(tmp_path: pathlib.Path) -> None:
    """A client that goes away mid-request: the reply that comes later is dropped,
    and requests and views after it go on as before."""
    body = json.dumps({"samples": [{"client": "81.2.69.0/24", "region": "eu",
                                    "rtt_ms": 20}]}).encode()

    async def scenario() -> None:
        views: list[LatencyView] = []
        latency = LatencyWorker(views.append, None, checkpoint=tmp_path / "latency.json.gz")
        latency.spawn()
        latency.start(asyncio.get_running_loop())
        try:
            task = asyncio.ensure_future(
                latency.prepare(body, False, {"eu"}, None, 1, False, "api"))
            await asyncio.sleep(0)
            task.cancel()
            result = await latency.prepare(body, False, {"eu"}, None, 1, False, "api")
            assert result[0] and result[5]  # checked and stored
            assert await asyncio.to_thread(latency.flush)
            assert views[-1].region_stats(bytes([81, 2, 69]), "eu") is not None
        finally:
            await asyncio.to_thread(latency.stop)

    asyncio.run(scenario())
