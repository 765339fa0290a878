"""Latency measurements folded into views: the table, the ingest thread, the checkpoint.

How this works. `LatencyTable` keeps, per (client key, region), a decayed
mean round trip and a decayed sample count. Decay is exponential with a
configurable half-life (`--latency-half-life`, default one hour): a sample
`age` seconds old weighs 2 ** (-age / half_life). Weights are stored scaled
to a fixed reference time (`epoch`), so folding a sample in touches one
entry and nothing is rewritten as time passes; the view carries the factor
that turns stored weights into counts now. The table holds at most
`max_keys` client keys (`--latency-max-keys`); the least recently measured
keys are dropped first.

`LatencyService` owns a table and one ingest thread. Batches are queued
(never processed on the event loop); the thread folds them in, a few
hundred samples at a time with a GIL yield between, and publishes a new
immutable `LatencyView` at most every `PUBLISH_EVERY` seconds (less often
when copying a big table would take more than a tenth of that; only the
shards of the table that changed are copied), handing it to the event loop,
which swaps it into the world with one assignment (`WorldRef.use_latency`).
A query never waits for any of this.

Where it runs. Worker 0 of a server keeps its table in a process of its own
(`adapters/latency_worker.py`: a `LatencyService` there publishes by sending
the table's changes, `take_changes`, which the server applies to its copy
of the view's shards, `apply_changes`); the other workers of `--workers N`,
and `explain` reading a state dir, use one in their own process.

The checkpoint — the whole table as gzip'd JSON lines, written a chunk at a
time — is where measurements survive a restart: a file in the state dir in
embedded mode, a Redis key in production (`adapters/latency_share.py`).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import pathlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import structlog

from geostream_dns.adapters.files import atomic_write_bytes
from geostream_dns.adapters.latency_input import Row, _key_of, _key_text, encode_rows
from geostream_dns.core.latency import (
    SHARDS,
    Entry,
    LatencyKey,
    LatencyView,
    parent_key,
    shard_of,
    shard_parents,
)

log = structlog.get_logger("geostream.latency")

DEFAULT_HALF_LIFE = 3600.0
DEFAULT_MAX_KEYS = 1_000_000
PUBLISH_EVERY = 1.0  # seconds between views while samples arrive
REPUBLISH_EVERY = 60.0  # seconds: a new view even without samples, so counts decay
CHUNK = 128  # rows folded in between GIL yields
CHECKPOINT_EVERY = 60.0  # seconds between checkpoints while measurements change
REBASE_EXPONENT = 400.0  # half-lives past the reference time: stored weights are rescaled
CHECKPOINT_FORMAT = 1
QUEUE_BATCHES = 10_000

# a piece of a table's changes: network keys by shard (entries put or changed,
# keys dropped), then other keys' entries put or changed, and other keys dropped
Changes = tuple[dict[int, tuple[dict[LatencyKey, Entry], list[LatencyKey]]],
                dict[LatencyKey, Entry], list[LatencyKey]]


def encode_key(key: LatencyKey) -> str:
    """A key as text for checkpoints and the fleet's stream: `#` + hex for networks."""
    return _key_text(key)


def decode_key(text: str) -> LatencyKey:
    return _key_of(text)


class LatencyTable:
    """Decayed means and counts per (client key, region); one thread owns it."""

    def __init__(self, half_life: float = DEFAULT_HALF_LIFE,
                 max_keys: int = DEFAULT_MAX_KEYS, epoch: float | None = None) -> None:
        self.half_life = half_life
        self.max_keys = max_keys
        self.epoch = time.time() if epoch is None else epoch
        self.shards: list[dict[LatencyKey, Entry]] = [{} for _ in range(SHARDS)]
        # every key, least recently measured first: a plain dict kept in order by
        # removing and adding a key again when it is measured (half the memory of
        # an OrderedDict); eviction takes the oldest in batches (see _evict)
        self.recency: dict[LatencyKey, None] = {}
        self.parents: dict[bytes, int] = {}  # /16 or /32 -> network keys inside it
        self.dirty: set[int] = set(range(SHARDS))
        # keys put, changed or dropped since the last view or `take_changes`: what a
        # copy of the table elsewhere needs to catch up (`latency_worker`)
        self.changed: set[LatencyKey] = set()
        self.parents_dirty = True
        self.samples = 0
        self.evicted = 0
        self.generation = 0
        self._published: tuple[dict[LatencyKey, Entry], ...] = tuple({} for _ in range(SHARDS))
        self._parents_view: tuple[frozenset[bytes], ...] = shard_parents(())

    def __len__(self) -> int:
        return len(self.recency)

    def factor(self, at: float) -> float:
        """The stored weight of one sample measured at wall time `at` (the reference
        time moves first when that weight would grow too large)."""
        exponent = (at - self.epoch) / self.half_life
        if exponent > REBASE_EXPONENT:
            self.rebase(at)
            exponent = 0.0
        return 2.0 ** max(exponent, -1000.0)

    def add(self, keys: Iterable[LatencyKey], region: str, rtt_ms: float, count: float,
            at: float) -> None:
        weight = count * self.factor(at)
        for key in keys:
            self._fold(key, region, rtt_ms, weight)
        self.samples += int(count)

    def add_rows(self, rows: Iterable[Row], at: float) -> int:
        """Fold in a batch measured at `at`: samples for the same (key, region) are
        summed first, so a hot key (a continent) costs one update per batch.
        Returns the samples folded in."""
        sums: dict[tuple[LatencyKey, str], list[float]] = {}
        samples = 0
        for i, (keys, region, rtt, count) in enumerate(rows):
            samples += count
            weighted = rtt * count
            for key in keys:
                pair = (key, region)
                acc = sums.get(pair)
                if acc is None:
                    sums[pair] = [weighted, float(count)]
                else:
                    acc[0] += weighted
                    acc[1] += count
            if i % CHUNK == CHUNK - 1:
                time.sleep(0)  # let the event loop answer
        factor = self.factor(at)
        fold = self._fold
        for i, ((key, region), (total, n)) in enumerate(sums.items()):
            fold(key, region, total / n, n * factor)
            if i % CHUNK == CHUNK - 1:
                time.sleep(0)
        self.samples += samples
        return samples

    def add_sums(self, sums: Iterable[tuple[LatencyKey, str, float, float]], at: float) -> None:
        """Fold in a batch already summed per (key, region): (key, region, mean, samples)."""
        factor = self.factor(at)
        fold = self._fold
        for i, (key, region, mean, n) in enumerate(sums):
            fold(key, region, mean, n * factor)
            if i % CHUNK == CHUNK - 1:
                time.sleep(0)

    def _fold(self, key: LatencyKey, region: str, rtt_ms: float, weight: float) -> None:
        index = shard_of(key)
        shard = self.shards[index]
        entry = shard.get(key)
        if entry is None:
            shard[key] = ((region, rtt_ms, weight),)
            self.recency[key] = None
            if isinstance(key, bytes):
                parent = parent_key(key)
                seen = self.parents.get(parent, 0)
                self.parents[parent] = seen + 1
                if not seen:
                    self.parents_dirty = True
            if len(self.recency) > self.max_keys:
                self._evict()
        else:
            for i, (name, mean, w) in enumerate(entry):
                if name == region:
                    total = w + weight
                    shard[key] = (*entry[:i], (name, (mean * w + rtt_ms * weight) / total,
                                               total), *entry[i + 1:])
                    break
            else:
                shard[key] = (*entry, (region, rtt_ms, weight))
            recency = self.recency
            del recency[key]
            recency[key] = None
        self.dirty.add(index)
        self.changed.add(key)

    def set_entry(self, key: LatencyKey, entry: Entry) -> None:
        """Put a whole entry (weights already scaled to this table's epoch)."""
        index = shard_of(key)
        shard = self.shards[index]
        if key not in shard:
            self.recency[key] = None
            if isinstance(key, bytes):
                parent = parent_key(key)
                self.parents[parent] = self.parents.get(parent, 0) + 1
                self.parents_dirty = True
        else:
            del self.recency[key]
            self.recency[key] = None
        shard[key] = entry
        self.dirty.add(index)
        self.changed.add(key)
        if len(self.recency) > self.max_keys:
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently measured keys: down to 99% of the bound at once,
        so the scan past the front of `recency` is paid once per batch."""
        excess = len(self.recency) - self.max_keys
        if excess <= 0:
            return
        batch = excess + self.max_keys // 100
        for key in list(islice(self.recency, batch)):
            del self.recency[key]
            index = shard_of(key)
            del self.shards[index][key]
            self.dirty.add(index)
            self.changed.add(key)
            self.evicted += 1
            if isinstance(key, bytes):
                parent = parent_key(key)
                left = self.parents[parent] - 1
                if left:
                    self.parents[parent] = left
                else:
                    del self.parents[parent]
                    self.parents_dirty = True

    def rebase(self, now: float) -> None:
        """Move the reference time to `now` (rare: every few hundred half-lives)."""
        scale = 2.0 ** max(-(now - self.epoch) / self.half_life, -1000.0)
        for index, shard in enumerate(self.shards):
            for key, entry in shard.items():
                shard[key] = tuple((r, m, w * scale) for r, m, w in entry)
            self.changed.update(shard)
            self.dirty.add(index)
        self.epoch = now

    def view(self, now: float, extra: dict[str, Any] | None = None) -> LatencyView:
        """A new immutable view: changed shards copied, the others shared."""
        published = list(self._published)
        for index in sorted(self.dirty):
            published[index] = dict(self.shards[index])
            time.sleep(0)  # one shard at a time: answering goes on between copies
        self.dirty.clear()
        self.changed.clear()
        self._published = tuple(published)
        if self.parents_dirty:
            self._parents_view = shard_parents(self.parents)
            self.parents_dirty = False
        self.generation += 1
        scale = self.count_now(1.0, now)
        return LatencyView(self.generation, self._published, self._parents_view, scale,
                           len(self.recency), extra or {})

    def take_changes(self, chunk: int = 500) -> Iterator[Changes]:
        """What changed since the last call (or view), in pieces of about `chunk`
        keys: network keys grouped by shard (a piece holds whole shards, so
        applying it copies few), other keys loose (their shard depends on the
        process's hashes). Applied in order to the shards of the last view
        (`apply_changes`), the pieces give the table's shards now."""
        changed, self.changed = self.changed, set()
        self.dirty.clear()
        shards = self.shards
        groups: dict[int, tuple[dict[LatencyKey, Entry], list[LatencyKey]]] = {}
        loose_put: dict[LatencyKey, Entry] = {}
        loose_dropped: list[LatencyKey] = []
        for key in changed:
            index = shard_of(key)
            entry = shards[index].get(key)
            if type(key) is bytes:
                group = groups.get(index)
                if group is None:
                    group = groups[index] = ({}, [])
                if entry is None:
                    group[1].append(key)
                else:
                    group[0][key] = entry
            elif entry is None:
                loose_dropped.append(key)
            else:
                loose_put[key] = entry
        piece: dict[int, tuple[dict[LatencyKey, Entry], list[LatencyKey]]] = {}
        size = 0
        for index in sorted(groups):
            put, dropped = groups[index]
            items = list(put.items())
            start = 0
            while start < len(items) or dropped:  # a big group is cut across pieces
                room = chunk - size
                part = dict(items[start:start + room])
                start += len(part)
                gone, dropped = dropped[:room - len(part)], dropped[room - len(part):]
                piece[index] = (part, gone)
                size += len(part) + len(gone)
                if size >= chunk:
                    yield piece, {}, []
                    piece, size = {}, 0
        if piece:
            yield piece, {}, []
        loose = list(loose_put.items())
        for start in range(0, len(loose), chunk):
            yield {}, dict(loose[start:start + chunk]), []
        for start in range(0, len(loose_dropped), chunk):
            yield {}, {}, loose_dropped[start:start + chunk]

    def count_now(self, weight: float, now: float) -> float:
        exponent = -(now - self.epoch) / self.half_life
        if exponent > REBASE_EXPONENT:  # a clock far behind the reference time
            return weight * 2.0 ** REBASE_EXPONENT
        return weight * 2.0 ** max(exponent, -1000.0)

    # -- checkpoint ------------------------------------------------------

    def dump_lines(self, now: float, chunk: int = 2000) -> Iterator[bytes]:
        """The table as JSON lines: a header, then rows [key, [[region, ms, count]...]]
        in chunks, least recently measured first (so a load keeps recency)."""
        head = {"format": CHECKPOINT_FORMAT, "written_at": now, "half_life": self.half_life}
        yield json.dumps(head).encode() + b"\n"
        batch: list[Any] = []
        for key in list(self.recency):
            entry = self.shards[shard_of(key)].get(key)
            if entry is None:
                continue
            batch.append([encode_key(key),
                          [[r, round(m, 3), self.count_now(w, now)] for r, m, w in entry]])
            if len(batch) >= chunk:
                yield json.dumps(batch, separators=(",", ":")).encode() + b"\n"
                batch = []
                time.sleep(0)
        if batch:
            yield json.dumps(batch, separators=(",", ":")).encode() + b"\n"

    def load_lines(self, lines: Iterable[bytes]) -> int:
        """Read a checkpoint written by `dump_lines`; returns the keys read.
        ValueError when it is not a checkpoint of ours."""
        it = iter(lines)
        head = json.loads(next(it))
        if not isinstance(head, dict) or head.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("not a latency checkpoint of this format")
        written = float(head["written_at"])
        read = 0
        for line in it:
            if not line.strip():
                continue
            for key_text, stats in json.loads(line):
                key = decode_key(key_text)
                factor = self.factor(written)
                entry = tuple((str(r), float(m), float(c) * factor)
                              for r, m, c in stats
                              if math.isfinite(float(m)) and float(c) > 0)
                if entry:
                    self.set_entry(key, entry)
                    read += 1
            time.sleep(0)
        return read


Publish = Callable[[LatencyView], None]


def checkpoint_blob(lines: list[bytes], stream_id: str | None) -> bytes:
    """The fleet's checkpoint as stored in Redis: the table's lines, gzip'd, with
    the id of the last stream entry applied in the header."""
    head = json.loads(lines[0])
    head["stream_id"] = stream_id
    return gzip.compress(b"".join([json.dumps(head).encode() + b"\n", *lines[1:]]), 5)


def _writable(shards: list[Any], copied: set[int], index: int,
              copy: Callable[[Any], Any] = dict.copy) -> Any:
    """Shard `index`, copied the first time it is written to since the last view
    (`copied` names those already copied): a published view's never changes."""
    if index not in copied:
        shards[index] = copy(shards[index])
        copied.add(index)
    return shards[index]


def apply_parent_changes(shards: list[frozenset[bytes] | set[bytes]], copied: set[int],
                         added: Iterable[bytes], removed: Iterable[bytes]) -> None:
    """Parent keys added and removed, into `shards` (copy-on-write, as `_writable`)."""
    for parent in added:
        _writable(shards, copied, parent[-1], set).add(parent)
    for parent in removed:
        _writable(shards, copied, parent[-1], set).discard(parent)


def apply_changes(shards: list[dict[LatencyKey, Entry]], copied: set[int],
                  changes: Changes) -> None:
    """Apply a piece of `take_changes` output to `shards` (copy-on-write, as
    `_writable`)."""
    groups, put, dropped = changes
    for index, (group_put, group_dropped) in groups.items():
        shard = _writable(shards, copied, index)
        # pairs, not the dict: a dict that was ever tracked by the cyclic collector
        # would make an empty shard it is merged into tracked as well
        shard.update(group_put.items())
        for key in group_dropped:
            shard.pop(key, None)
    for key, entry in put.items():
        _writable(shards, copied, shard_of(key))[key] = entry
    for key in dropped:
        _writable(shards, copied, shard_of(key)).pop(key, None)


class LatencyService:
    """The ingest thread around a table (see the module doc).

    `submit(rows, at, source)` queues rows (from any thread); `on_view` is
    called on `loop` with each new view; `on_rows` (optional, called on the
    ingest thread) sees every batch that came from this server, to share it
    with the fleet."""

    def __init__(self, table: LatencyTable, on_view: Publish,
                 checkpoint: pathlib.Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.on_view = on_view
        self.checkpoint = checkpoint
        self.clock = clock
        self.queue: queue.Queue[Any] = queue.Queue(QUEUE_BATCHES)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.samples_by_source: dict[str, int] = {}
        self.rejected_batches = 0
        self.dropped_batches = 0
        self.views = 0
        self.saves = 0
        self.publish_every = PUBLISH_EVERY
        self.save_every = CHECKPOINT_EVERY
        self.view: LatencyView | None = None
        self.last_publish = 0.0
        self.on_share: Callable[[bytes, float], None] | None = None  # to the fleet
        self.saver: Callable[[list[bytes]], None] | None = None  # the fleet's checkpoint
        self.stream_id: str | None = None  # the newest fleet stream entry applied
        self.changed_since_save = False
        self.last_save = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._view_lock = threading.Lock()

    # -- what the metrics and the API show ----------------------------------

    @property
    def keys(self) -> int:
        return len(self.table)

    @property
    def max_keys(self) -> int:
        return self.table.max_keys

    @property
    def half_life(self) -> float:
        return self.table.half_life

    @property
    def evicted(self) -> int:
        return self.table.evicted

    # -- life cycle ------------------------------------------------------

    def load_lines(self, lines: Iterable[bytes]) -> int:
        """Take in a checkpoint's lines (the fleet's; before the thread starts)."""
        return self.table.load_lines(lines)

    def load(self) -> None:
        """Read the state-dir checkpoint, if any (before the thread starts)."""
        if self.checkpoint is None or not self.checkpoint.exists():
            return
        started = time.perf_counter()
        try:
            with gzip.open(self.checkpoint, "rb") as f:
                keys = self.table.load_lines(f)
        except (OSError, ValueError, TypeError, KeyError, EOFError) as exc:
            log.error("latency.checkpoint_unreadable", path=str(self.checkpoint),
                      error=str(exc))
            return
        log.info("latency.loaded", path=str(self.checkpoint), keys=keys,
                 duration_s=round(time.perf_counter() - started, 3))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.publish_now()
        self._thread = threading.Thread(target=self._run, name="latency-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, write the checkpoint, end the thread."""
        if self._thread is None:
            return
        self._stopping = True
        self.queue.put(None)
        self._thread.join(timeout)
        self._thread = None

    # -- input -----------------------------------------------------------

    def submit(self, rows: list[Row], at: float | None = None, source: str = "api",
               share: bool = True, stream_id: str | None = None) -> bool:
        """Queue rows measured at `at` (default: now); False if the queue is full.
        `share`: pass them to the fleet; `stream_id`: the fleet stream entry they are."""
        try:
            self.queue.put_nowait((rows, self.clock() if at is None else at, source, share,
                                   stream_id))
        except queue.Full:
            self.dropped_batches += 1
            return False
        return True

    def submit_sums(self, sums: list[tuple[LatencyKey, str, float, float]], samples: int,
                    at: float | None = None, source: str = "api",
                    shared: bytes | None = None) -> bool:
        """Queue a batch summed per (key, region) elsewhere (`latency_worker`), with its
        rows encoded for the fleet (`shared`); False if the queue is full."""
        try:
            self.queue.put_nowait(("sums", sums, samples, self.clock() if at is None else at,
                                   source, shared))
        except queue.Full:
            self.dropped_batches += 1
            return False
        return True

    def note_stream(self, stream_id: str) -> None:
        """A fleet stream entry that needs nothing applied (this server's own)."""
        try:
            self.queue.put_nowait(("stream", stream_id))
        except queue.Full:
            pass

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is in a published view (tests, CLI)."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)

    # -- the ingest thread -----------------------------------------------

    def _run(self) -> None:
        while True:
            table = self.table
            wait = max(0.01, self.publish_every - (time.monotonic() - self.last_publish))
            if not table.dirty:
                wait = min(REPUBLISH_EVERY, self.save_every)
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                item = False
            if item is None:
                self.publish_now()
                if self.changed_since_save:
                    self.save()
                return
            if isinstance(item, threading.Event):
                self.publish_now()
                item.set()
                continue
            if isinstance(item, tuple) and item[0] == "stream":
                self.stream_id = item[1]
            elif isinstance(item, tuple) and item[0] == "sums":
                _, sums, samples, at, source, shared = item
                table.add_sums(sums, at)
                table.samples += samples
                self.samples_by_source[source] = self.samples_by_source.get(source, 0) + samples
                self.changed_since_save = True
                if shared is not None and self.on_share is not None:
                    try:
                        self.on_share(shared, at)
                    except Exception:  # noqa: BLE001 - sharing must never stop ingest
                        log.exception("latency.share_failed")
            elif item is not False:
                rows, at, source, share, stream_id = item
                self._fold(rows, at, source)
                self.changed_since_save = True
                if stream_id is not None:
                    self.stream_id = stream_id
                if share and self.on_share is not None:
                    try:
                        self.on_share(encode_rows(rows), at)
                    except Exception:  # noqa: BLE001 - sharing must never stop ingest
                        log.exception("latency.share_failed")
            due = time.monotonic() - self.last_publish
            if (table.dirty and due >= self.publish_every) or due >= REPUBLISH_EVERY:
                self.publish_now()
            if (self.changed_since_save
                    and time.monotonic() - self.last_save >= self.save_every):
                self.save()

    def _fold(self, rows: list[Row], at: float, source: str) -> None:
        n = self.table.add_rows(rows, at)
        self.samples_by_source[source] = self.samples_by_source.get(source, 0) + n

    def publish_now(self) -> None:
        started = time.perf_counter()
        with self._view_lock:
            view = self.table.view(self.clock())
        # a big table that changes everywhere costs a copy of every shard per view:
        # keep that under a tenth of the ingest thread's time
        self.publish_every = max(PUBLISH_EVERY, 10 * (time.perf_counter() - started))
        self.view = view
        self.views += 1
        self.last_publish = time.monotonic()
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.on_view, view)
            except RuntimeError:  # the loop closed meanwhile
                pass
        else:
            self.on_view(view)

    def save(self) -> None:
        """Write the checkpoint: the state-dir file (atomically) and, in a fleet, Redis.
        Runs on the ingest thread, which owns the table."""
        self.last_save = time.monotonic()
        self.changed_since_save = False
        lines = list(self.table.dump_lines(self.clock()))
        if self.checkpoint is not None:
            try:
                atomic_write_bytes(self.checkpoint, gzip.compress(b"".join(lines), 5),
                                   durable=False)
            except OSError as exc:
                log.error("latency.checkpoint_failed", path=str(self.checkpoint),
                          error=str(exc))
        if self.saver is not None:
            try:
                self.saver(lines)
            except Exception:  # noqa: BLE001 - a failed save must not stop ingest
                log.exception("latency.checkpoint_failed", target="fleet")
        self.saves += 1
