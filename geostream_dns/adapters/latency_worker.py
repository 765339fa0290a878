"""The latency table in a process of its own, and the server's copy of its views.

How this works. Taking a sample in costs about 13 µs of CPU in Python — JSON,
checks, GeoIP keys, summing — and folding the sums into the table a few more.
The server answers queries in one Python process: at tens of thousands of
samples a second, that work done there (even on a thread of its own) would
hold the interpreter lock for much of each second, and every answer would
wait for it. So worker 0 keeps its latency table in one child process
(spawned, not forked, so it shares nothing with the event loop), niced below
the server: answering comes first.

* The server sends it work over a pipe, from one sender thread (the event
  loop never blocks on the pipe): HTTP request bodies to check, sum and fold
  in (`prepare`), rows from the prober and the fleet's stream (`submit`),
  checkpoints to load, flush and stop requests.
* The child parses and checks a batch (the same functions and messages as
  anywhere else), finds each sample's keys with its own GeoIP reader, sums it
  per (key, region) and queues the sums for its `LatencyService` — the same
  ingest thread, table, decay, eviction and checkpoint as anywhere else. The
  answer to the request (accepted, problems, rows encoded for the fleet) goes
  back at once; the server appends those rows to the fleet's stream.
* When the child's service publishes, it sends only what changed since its
  last view, in pieces of `CHANGES_CHUNK` keys: the entries put or changed
  and the keys dropped (network keys grouped by shard: a network key's shard
  is its last byte, the same in every process, while strings hash
  differently in each), the /16s gained and lost, then the view's header
  (scale, key count, counters).
* The server's receiving thread only reads the pipe; the event loop applies
  one piece per turn to copies of the shards it touches (entries untracked
  by the cyclic garbage collector first) and, on the header, swaps a new
  immutable `LatencyView` into the world with one assignment. The shards the
  new view replaced are freed later on another thread, a piece at a time,
  not on the loop when it drops the old view. Nothing a query does waits for
  any of this.
* Input is refused (`submit` False, `prepare` RuntimeError: HTTP 503) while
  more than `IN_FLIGHT_MAX` bytes wait for the pipe, so a slow or stuck
  child cannot grow the server's memory.

The checkpoint is written by the child: the state-dir file itself; the
fleet's Redis checkpoint it makes and compresses, and the server only
writes it (on its I/O thread, never the loop).

With `serve --user`, the child is started before the server drops root (a
new interpreter may not be readable by the user: a virtualenv in root's home)
and drops to the same user itself before it reads anything. If it dies, the
next request starts a new one (not more often than every `RESPAWN_BACKOFF`
seconds, doubling up to a minute), which reads the state-dir checkpoint:
what the dead one took in since its last save is lost, and the views it
sent are replaced by the new one's.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import gc
import itertools
import json
import multiprocessing
import os
import pathlib
import pickle
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable
from multiprocessing.connection import Connection
from typing import Any

import structlog

from geostream_dns.adapters.latency import (
    Changes,
    LatencyService,
    LatencyTable,
    apply_changes,
    apply_parent_changes,
    checkpoint_blob,
)
from geostream_dns.adapters.latency_input import (
    BadInput,
    Row,
    Sample,
    check_batch,
    check_csv,
    encode_rows,
    expand,
)
from geostream_dns.core.latency import SHARDS, LatencyKey, LatencyView, shard_parents

log = structlog.get_logger("geostream.latency")

Sums = list[tuple[LatencyKey, str, float, float]]  # key, region, mean ms, samples
Prepared = tuple[bool, Any, int, int, bytes | None, bool]  # see `prepare`

# The child's niceness: the server that answers queries comes first when both
# want the CPU. (Lower still, or SCHED_IDLE, starves ingest below 50,000
# samples/s on two cores that also run the load generator.)
NICE = 10
CHANGES_CHUNK = 100  # keys per piece of a view's changes (a fraction of a millisecond to apply)
# Views are published every second, or less often when many keys changed, so
# the server applies about this many changed keys a second at most (a key that
# changes again before the next view is sent once).
CHANGES_PER_SECOND = 20_000
MAX_PUBLISH_EVERY = 5.0  # seconds: a sample is in the answers this soon at the latest
REQUEST_TIMEOUT = 30.0
IN_FLIGHT_MAX = 64 * 2**20  # bytes waiting for the pipe before new input is refused
RESPAWN_BACKOFF = 1.0  # seconds before a dead child is replaced, doubling ...
RESPAWN_BACKOFF_MAX = 60.0  # ... up to this
CHECKPOINT_NEXT = b"C"  # the next message is a fleet checkpoint, as bytes (not pickled)
GEO_MEMO_MAX = 1_000_000  # networks whose keys the child remembers, at most

_geo: Any = None  # the child's GeoLocator


def _init(geoip: str | None, user: str | None = None) -> None:
    global _geo
    from geostream_dns.adapters.geoip import open_reader, raw_lookup
    from geostream_dns.core.geo import GeoLocator

    # Everything read first (modules, the GeoIP file), then the user's rights.
    _geo = GeoLocator(raw_lookup(open_reader(pathlib.Path(geoip) if geoip else None)),
                      limit=200_000)
    if user is not None and os.geteuid() == 0:
        import encodings.idna  # noqa: F401 - imported on demand by name checks

        from geostream_dns.adapters.privileges import become, lookup_user

        become(lookup_user(user))


_net_keys: dict[bytes, tuple[LatencyKey, ...]] = {}  # network -> the keys it counts for
_net_keys_max = 200_000


def expand_and_sum(samples: list[Sample], keep_rows: bool) -> tuple[Sums, list[Row]]:
    """A batch summed per (key, region) — (key, region, mean ms, samples) — and,
    when `keep_rows`, its rows (as `expand` makes them) for the fleet. The keys
    of a network (its GeoIP place) are remembered, up to `_net_keys_max`
    networks, so a network that reports again costs one dict look-up."""
    global _net_keys
    sums: dict[tuple[LatencyKey, str], list[float]] = {}
    rows: list[Row] = []
    net_keys = _net_keys
    for s in samples:
        client = s.client
        keys: tuple[LatencyKey, ...]
        if isinstance(client, bytes):
            known = net_keys.get(client)
            if known is None:
                if len(net_keys) >= _net_keys_max:
                    net_keys = _net_keys = {}
                known = net_keys[client] = expand([s], _geo)[0][0]
            keys = known
        else:
            keys = client
        region, count = s.region, s.count
        weighted = s.rtt_ms * count
        for key in keys:
            acc = sums.get((key, region))
            if acc is None:
                sums[(key, region)] = [weighted, float(count)]
            else:
                acc[0] += weighted
                acc[1] += count
        if keep_rows:
            rows.append((keys, region, s.rtt_ms, count))
    return [(key, region, total / n, n) for (key, region), (total, n) in sums.items()], rows


def check_and_sum(body: bytes, csv_body: bool, regions: Collection[str], peer: str | None,
                  first_line: int, dry_run: bool, share: bool
                  ) -> tuple[bool, Any, int, int, Sums, bytes | None]:
    """(ok, problems or None, rows, samples, sums, rows encoded for the fleet)."""
    try:
        if csv_body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadInput([f"line ?: the file is not UTF-8 ({exc})"]) from None
            samples = check_csv(text, regions, first_line)
        else:
            try:
                document = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return False, ["request body is not valid JSON", str(exc)], 0, 0, [], None
            samples = check_batch(document, regions, peer)
    except BadInput as exc:
        return False, exc.problems, 0, 0, [], None
    total = sum(s.count for s in samples)
    if dry_run:
        return True, None, len(samples), total, [], None
    sums, rows = expand_and_sum(samples, share)
    return True, None, len(samples), total, sums, encode_rows(rows) if share else None


# -- the child ------------------------------------------------------------------


class _ChildService(LatencyService):
    """The child's service: publishing sends the table's changes to the server."""

    def __init__(self, table: LatencyTable, send: Callable[[Any], None],
                 checkpoint: pathlib.Path | None) -> None:
        super().__init__(table, lambda view: None, checkpoint)
        self.send = send
        self.sent_parents: set[bytes] = set()

    def publish_now(self) -> None:
        # the CPU time it takes, not the wait for the pipe: the server reads it
        # with pauses, on purpose
        started = time.thread_time()
        table = self.table
        with self._view_lock:
            sent = len(table.changed)
            for piece in table.take_changes(CHANGES_CHUNK):
                self.send(("changes", piece))
                time.sleep(0)
            if table.parents_dirty:  # parents as changes too: sets of 50,000 are slow to send
                now = table.parents.keys()
                added, removed = list(now - self.sent_parents), list(self.sent_parents - now)
                self.sent_parents = set(now)
                table.parents_dirty = False
                for start in range(0, len(added), CHANGES_CHUNK):
                    self.send(("parents", added[start:start + CHANGES_CHUNK], []))
                for start in range(0, len(removed), CHANGES_CHUNK):
                    self.send(("parents", [], removed[start:start + CHANGES_CHUNK]))
            table.generation += 1
            self.send(("view", table.count_now(1.0, self.clock()), len(table),
                       self.counters()))
        self.publish_every = min(MAX_PUBLISH_EVERY,
                                 max(1.0, 10 * (time.thread_time() - started),
                                     sent / CHANGES_PER_SECOND))
        self.views += 1
        self.last_publish = time.monotonic()

    def counters(self) -> dict[str, Any]:
        return {"evicted": self.table.evicted, "dropped_batches": self.dropped_batches,
                "samples_by_source": dict(self.samples_by_source), "saves": self.saves,
                "stream_id": self.stream_id}


def _child(requests: Connection, events: Connection, geoip: str | None, user: str | None,
           half_life: float, max_keys: int, checkpoint: str | None,
           save_every: float) -> None:
    """The child process: requests in, replies and view changes out (see the module doc)."""
    import signal

    # The server decides when this ends (a stop request, or its end of the pipe
    # closing): a signal to the whole group or cgroup — Ctrl-C, or systemd
    # stopping the unit — must not end it before it has saved the table.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        os.nice(NICE)
    except OSError:
        pass
    # each network's keys remembered up to the table's own bound: a network that
    # reports again costs a dict look-up, not a GeoIP read (~10 µs)
    global _net_keys_max
    _net_keys_max = max(200_000, min(max_keys, GEO_MEMO_MAX))
    _init(geoip, user)
    lock = threading.Lock()

    def send(message: Any) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with lock:
            events.send_bytes(data)

    def send_checkpoint(blob: bytes) -> None:
        with lock:
            events.send_bytes(CHECKPOINT_NEXT)
            events.send_bytes(blob)

    service = _ChildService(LatencyTable(half_life, max_keys), send,
                            pathlib.Path(checkpoint) if checkpoint else None)
    service.save_every = save_every
    started = False
    while True:
        try:
            message = pickle.loads(requests.recv_bytes())
        except (EOFError, OSError):
            message = ("stop", None)  # the server is gone: keep what we have
        kind, ident = message[0], message[1]
        try:
            reply: Any = None
            if kind == "prepare":
                ok, problems, rows, total, sums, shared = check_and_sum(*message[2:9])
                stored = True
                if ok and not message[7]:  # not a dry run
                    stored = service.submit_sums(sums, total, at=message[9],
                                                 source=message[10])
                reply = (ok, problems, rows, total, shared, stored)
            elif kind == "rows":
                rows, at, source, stream_id = message[2:6]
                while not service.submit(rows, at, source, share=False, stream_id=stream_id):
                    time.sleep(0.05)  # the queue is full: these must not be lost
            elif kind == "stream":
                service.note_stream(message[2])
            elif kind == "load_lines":
                reply = service.load_lines(message[2])
            elif kind == "load":
                service.load()
                reply = len(service.table)
            elif kind == "fleet":
                service.saver = lambda lines: send_checkpoint(
                    checkpoint_blob(lines, service.stream_id))
            elif kind == "start":
                if not started:
                    service.start(None)  # type: ignore[arg-type]
                    started = True
            elif kind == "flush":
                reply = service.flush(message[2]) if started else False
            elif kind == "stop":
                if started:
                    service.stop()
                elif service.changed_since_save:
                    service.save()
                if ident is not None:
                    send(("reply", ident, None))
                return
            if ident is not None:
                send(("reply", ident, reply))
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the table
            log.exception("latency.request_failed", kind=kind)
            if ident is not None:
                send(("error", ident, f"{type(exc).__name__}: {exc}"))


# -- the server's side ------------------------------------------------------------


def _untracked(changes: Changes) -> Changes:
    """A piece of changes whose entries the cyclic garbage collector no longer
    tracks, so the shards they go into stay untracked too.

    Why: entries are tuples of tuples of strings and floats, which can never be
    part of a cycle, but every tuple starts out tracked and is only untracked
    when a collection looks at it. A shard that receives one tracked entry is
    tracked itself, and then every full collection walks all of its entries:
    about 10 ms for a table of 160,000 keys, holding the interpreter lock,
    several times a second while samples pour in. A young-generation collection
    here (tens of microseconds) looks at the new tuples; an outer tuple looked
    at before its inner ones stays tracked, and is rebuilt from them (now
    untracked) and looked at again."""
    gc.collect(0)
    tracked = gc.is_tracked
    late = [(put, key) for put in (*(group[0] for group in changes[0].values()), changes[1])
            for key, entry in put.items() if tracked(entry)]
    if late:
        for put, key in late:
            put[key] = tuple(list(put[key]))  # a new tuple (tuple(t) is t)
        gc.collect(0)
    return changes


def _free(shards: list[dict[LatencyKey, Any]]) -> None:
    """Free the shards of a view no longer in use, one at a time, letting other
    threads run between (each takes tens of microseconds)."""
    while shards:
        shards.pop()
        time.sleep(0.0002)


class LatencyWorker:
    """Worker 0's latency table in a child process, and the views it sends
    (see the module doc). The same surface as `LatencyService` where the server
    uses one: submit, note_stream, load, load_lines, flush, start, stop, and the
    counters the metrics show."""

    def __init__(self, on_view: Callable[[LatencyView], None], geoip: pathlib.Path | None,
                 user: str | None = None, half_life: float = 3600.0,
                 max_keys: int = 1_000_000, checkpoint: pathlib.Path | None = None,
                 save_every: float = 60.0) -> None:
        self.on_view = on_view
        self.geoip = str(geoip) if geoip else None
        self.user = user  # the child runs as this user (serve --user)
        self.half_life = half_life
        self.max_keys = max_keys
        self.checkpoint = checkpoint
        self.save_every = save_every
        self.loop: asyncio.AbstractEventLoop | None = None
        self.on_share: Callable[[bytes, float], None] | None = None  # to the fleet
        self._saver: Callable[[bytes], None] | None = None  # the fleet's checkpoint
        # what the last view said
        self.view: LatencyView | None = None
        self.keys = 0
        self.evicted = 0
        self.dropped_batches = 0  # the child's, and rows this side refused (pipe full)
        self._refused = 0
        self.samples_by_source: dict[str, int] = {}
        self.saves = 0
        self.views = 0
        self.stream_id: str | None = None
        self.restarts = 0
        self._generation = 0  # of views published
        self._buried: list[dict[LatencyKey, Any]] | None = None
        # shares and fleet checkpoints: blocking Redis calls, in order, off the loop
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="latency-io")
        self._shards: list[dict[LatencyKey, Any]] = [{} for _ in range(SHARDS)]
        self._copied: set[int] = set()
        self._parents: list[frozenset[bytes] | set[bytes]] = list(shard_parents(()))
        self._parents_copied: set[int] = set()
        # messages from the child, (child, bytes), handled on the event loop one per turn
        self._inbox: collections.deque[tuple[int, bytes | None]] = collections.deque()
        self._draining = False
        self._process: Any = None
        self._child = 0  # which child is current: its messages are applied, others' not
        self._applied_child = 0
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._in_flight = 0  # bytes posted and not yet written to the pipe
        self._waiting: dict[int, tuple[int, concurrent.futures.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # _respawn holds it while it spawns and posts
        self._started = False
        self._stopping = False
        self._spawned_at = 0.0
        self._respawn_after = 0.0
        self._backoff = RESPAWN_BACKOFF

    # -- the child's life ------------------------------------------------------

    def spawn(self) -> None:
        """Start the child (before the server drops root) and the two pipe threads."""
        context = multiprocessing.get_context("spawn")
        requests_in, requests_out = context.Pipe(duplex=False)
        events_in, events_out = context.Pipe(duplex=False)
        process = context.Process(
            target=_child, name="geostream-latency", daemon=True,
            args=(requests_in, events_out, self.geoip, self.user, self.half_life,
                  self.max_keys, str(self.checkpoint) if self.checkpoint else None,
                  self.save_every))
        process.start()
        requests_in.close()
        events_out.close()
        self._process = process
        self._spawned_at = time.monotonic()
        self._child += 1
        self._outbox.put(None)  # ends the sender of a child that died, if any
        self._outbox = queue.SimpleQueue()
        with self._lock:
            self._in_flight = 0
        threading.Thread(target=self._send_loop, args=(requests_out, self._outbox),
                         name="latency-send", daemon=True).start()
        threading.Thread(target=self._receive_loop, args=(events_in, self._child),
                         name="latency-receive", daemon=True).start()
        if self._saver is not None:
            self._post("fleet", None)

    def _respawn(self) -> bool:
        """A new child after one died: it reads the state-dir checkpoint (what
        the dead one took in since its last save is lost). Not more often than
        the back-off allows: a child that cannot start (say the interpreter is
        not readable after `--user`) must not be started on every request."""
        with self._lock:
            if self._stopping or (self._process is not None and self._process.is_alive()):
                return True
            now = time.monotonic()
            if now < self._respawn_after:
                return False
            if now - self._spawned_at > RESPAWN_BACKOFF_MAX:
                self._backoff = RESPAWN_BACKOFF  # the last one lived a while
            self._respawn_after = now + self._backoff
            self._backoff = min(self._backoff * 2, RESPAWN_BACKOFF_MAX)
            self.restarts += 1
            log.error("latency.process_restarted", restarts=self.restarts)
            self.spawn()
            if self.checkpoint is not None and self.checkpoint.exists():
                self._post("load", None)
            if self._started:
                self._post("start", None)
            return True

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def load(self) -> None:
        """The child reads the state-dir checkpoint, if there is one (waits for it)."""
        if self.checkpoint is not None and self.checkpoint.exists():
            self._call("load")

    def load_lines(self, lines: Iterable[bytes]) -> int:
        """The child takes in a checkpoint's lines (the fleet's); returns the keys read."""
        return int(self._call("load_lines", list(lines)))

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._started = True
        self._post("start", None)

    def stop(self, timeout: float = 10.0) -> None:
        """Let the child finish what is queued and write its checkpoint, then end it."""
        if self._process is None:
            return
        self._stopping = True
        if self._process.is_alive():
            try:
                self._call("stop", timeout=timeout)
            except (TimeoutError, RuntimeError):
                log.warning("latency.stop_timeout")
        self._outbox.put(None)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(2)
        self._process = None
        self._io.shutdown(wait=True)

    @property
    def saver(self) -> Callable[[bytes], None] | None:
        return self._saver

    @saver.setter
    def saver(self, saver: Callable[[bytes], None] | None) -> None:
        """The fleet's checkpoint: the child sends it, made and compressed, when it
        saves (`checkpoint_blob`), and `saver` writes it."""
        self._saver = saver
        if saver is not None and self._process is not None:
            self._post("fleet", None)

    # -- requests --------------------------------------------------------------

    def _post(self, kind: str, ident: int | None, *args: Any, limit: bool = False) -> bool:
        """Queue a message for the child; with `limit`, refuse (False) while more
        than `IN_FLIGHT_MAX` bytes wait for the pipe (the child is slow or gone)."""
        data = pickle.dumps((kind, ident, *args), pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if limit and self._in_flight > IN_FLIGHT_MAX:
                return False
            self._in_flight += len(data)
        self._outbox.put(data)
        return True

    def _request(self, kind: str, *args: Any, limit: bool = False
                 ) -> concurrent.futures.Future[Any]:
        if not self.alive and not self._stopping and not self._respawn():
            raise RuntimeError("the latency process is restarting")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        ident = next(self._ids)
        with self._lock:
            self._waiting[ident] = (self._child, future)
        if not self._post(kind, ident, *args, limit=limit):
            with self._lock:
                self._waiting.pop(ident, None)
            raise RuntimeError("the latency process is behind; retry shortly")
        return future

    def _call(self, kind: str, *args: Any, timeout: float = REQUEST_TIMEOUT) -> Any:
        try:
            return self._request(kind, *args).result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the latency process did not answer {kind!r}") from None

    async def prepare(self, body: bytes, csv_body: bool, regions: Collection[str],
                      peer: str | None, first_line: int, dry_run: bool, source: str
                      ) -> Prepared:
        """Check, sum and fold in one request body: (ok, problems or None, rows,
        samples, rows encoded for the fleet, stored). `stored` is False when the
        child's queue is full; RuntimeError or TimeoutError when it cannot take
        the body now."""
        at = time.time()
        share = self.on_share is not None
        future = self._request("prepare", body, csv_body, frozenset(regions), peer,
                               first_line, dry_run, share, at, source, limit=True)
        result: Prepared = await asyncio.wait_for(asyncio.wrap_future(future),
                                                  REQUEST_TIMEOUT)
        shared = result[4]
        if shared is not None and result[5] and self.on_share is not None:
            await asyncio.wrap_future(self._io.submit(self._share, shared, at))
        return result

    def _share(self, data: bytes, at: float) -> None:
        if self.on_share is not None:
            try:
                self.on_share(data, at)
            except Exception:  # noqa: BLE001 - sharing must never stop ingest
                log.exception("latency.share_failed")

    def submit(self, rows: list[Row], at: float | None = None, source: str = "api",
               share: bool = True, stream_id: str | None = None) -> bool:
        """Rows measured at `at` (default: now), to the child; shared with the fleet
        first when `share`. False when they cannot go now (the child is behind or
        restarting): the fleet's reader tries again, the prober's rows wait for
        its next round."""
        at = time.time() if at is None else at
        if not self.alive and not self._stopping and not self._respawn():
            return False
        if not self._post("rows", None, rows, at, source, stream_id, limit=True):
            self._refused += 1
            return False
        if share and self.on_share is not None:
            self._on_io(self._share, encode_rows(rows), at)
        return True

    def note_stream(self, stream_id: str) -> None:
        self._post("stream", None, stream_id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything sent so far is in a view the event loop was handed."""
        try:
            return bool(self._call("flush", timeout, timeout=timeout + 5))
        except (TimeoutError, RuntimeError):
            return False

    def publish_now(self) -> None:
        self.flush()

    # -- the two pipe threads --------------------------------------------------

    def _send_loop(self, conn: Connection, outbox: queue.SimpleQueue[bytes | None]) -> None:
        while True:
            data = outbox.get()
            if data is None:
                break
            try:
                conn.send_bytes(data)
            except OSError:
                break  # the child is gone: the receiver fails what waits
            finally:
                with self._lock:
                    self._in_flight -= len(data)
        conn.close()

    def _receive_loop(self, conn: Connection, child: int) -> None:
        """The receiving thread only reads: what a message says is done on the
        event loop (`_drain`), so no second thread holds the interpreter lock
        for long, and replies keep their order with the views before them.
        Before the loop runs (loading a checkpoint at start) it is done here.
        A fleet checkpoint (already made and compressed by the child) goes
        straight to the I/O thread, never through the loop."""
        while True:
            try:
                raw: bytes | None = conn.recv_bytes()
                if raw == CHECKPOINT_NEXT:
                    blob = conn.recv_bytes()
                    if self._saver is not None:
                        self._on_io(self._save, blob)
                    continue
            except (EOFError, OSError):
                raw = None  # the child is gone
            loop = self.loop
            handled = False
            if loop is not None and not loop.is_closed():
                self._inbox.append((child, raw))
                try:
                    loop.call_soon_threadsafe(self._kick)
                    handled = True
                except RuntimeError:  # the loop closed meanwhile
                    self._inbox.pop()
            if not handled:
                self._handle(child, raw)
            if raw is None:
                break
        conn.close()

    def _kick(self) -> None:
        if not self._draining:
            self._draining = True
            self._drain()

    def _drain(self) -> None:
        """Handle one message, and the next on the loop's next turn: a burst of
        pieces never keeps the loop from answering for more than one piece."""
        try:
            child, raw = self._inbox.popleft()
        except IndexError:
            self._draining = False
            return
        try:
            self._handle(child, raw)
        except Exception:  # noqa: BLE001 - one bad message must not stop the others
            log.exception("latency.message_failed")
        if self._inbox and self.loop is not None:
            self.loop.call_soon(self._drain)
        else:
            self._draining = False

    def _handle(self, child: int, raw: bytes | None) -> None:
        if raw is None:  # that child ended: fail what still waits for it
            with self._lock:
                ended = [i for i, (c, _) in self._waiting.items() if c == child]
                futures = [self._waiting.pop(i)[1] for i in ended]
            for future in futures:
                if not future.done():
                    future.set_exception(RuntimeError("the latency process ended"))
            if not self._stopping and child == self._child:
                log.error("latency.process_ended")
            return
        message = pickle.loads(raw)
        kind = message[0]
        if kind in ("reply", "error"):
            with self._lock:
                waiter = self._waiting.pop(message[1], None)
            if waiter is not None and not waiter[1].done():  # not cancelled meanwhile
                if kind == "reply":
                    waiter[1].set_result(message[2])
                else:
                    waiter[1].set_exception(RuntimeError(message[2]))
            return
        if child != self._child:
            return  # a dead child's view: its successor sends the whole table again
        if child != self._applied_child:  # the first view of a new child: start over
            self._applied_child = child
            self._shards = [{} for _ in range(SHARDS)]
            self._copied = set()
            self._parents = list(shard_parents(()))
            self._parents_copied = set()
        if kind == "changes":
            apply_changes(self._shards, self._copied, _untracked(message[1]))
        elif kind == "parents":
            apply_parent_changes(self._parents, self._parents_copied, message[1], message[2])
        elif kind == "view":
            self._publish(*message[1:])

    def _on_io(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._io.submit(fn, *args)
        except RuntimeError:  # stopped: nothing is saved or freed on that thread now
            pass

    def _save(self, blob: bytes) -> None:
        try:
            if self._saver is not None:
                self._saver(blob)
        except Exception:  # noqa: BLE001 - a failed save must not stop anything
            log.exception("latency.checkpoint_failed", target="fleet")

    def _publish(self, scale: float, keys: int, counters: dict[str, Any]) -> None:
        # The shards the new view replaces would be freed on the event loop when it
        # drops the old view (tens of milliseconds for a big table, every answer
        # waiting): hold them here and free them a piece at a time, off the loop.
        old = self.view
        if old is not None and self._copied:
            replaced = [old.shards[i] for i in self._copied]
            if self._buried is not None:
                self._on_io(_free, self._buried)
            self._buried = replaced
        self._generation += 1  # the child's count starts again if it is restarted
        view = LatencyView(self._generation, tuple(self._shards), tuple(self._parents), scale,
                           keys)
        self._copied = set()  # the next changes copy what they touch again
        self._parents_copied = set()
        self.view = view
        self.keys = keys
        self.views += 1
        self.evicted = counters["evicted"]
        self.dropped_batches = counters["dropped_batches"] + self._refused
        self.samples_by_source = counters["samples_by_source"]
        self.saves = counters["saves"]
        if counters["stream_id"] is not None:
            self.stream_id = counters["stream_id"]
        self.on_view(view)  # on the event loop (or before it runs)
