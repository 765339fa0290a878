"""Latency measurements shared by a fleet through Redis, and kept across restarts.

How this works. Every batch a server takes in (`POST /v1/latency`, `latency
import`, its prober's round trips) is appended, as the rows it became, to the
Redis stream `latency:samples` (under `--redis-prefix`; approximately the
newest `STREAM_MAX` batches are kept). Each server runs one thread that
reads the stream with a blocking `XREAD` (one second at most) and passes
every other server's batches to its own latency table, so a sample posted
to any server is in every server's answers within a couple of seconds.

Every `CHECKPOINT_EVERY` seconds (and when it stops) a server writes its
whole table, with the id of the last stream entry it applied, to
`latency:checkpoint`. A server that starts loads that checkpoint, then
replays the stream after its id (its own earlier batches included), so
measurements survive restarts of any or every server as long as Redis keeps
its data. Without Redis (down, or embedded mode) the state dir's checkpoint
file does the same for one server; a server whose Redis is down goes on
measuring alone and rejoins the stream when Redis answers again.

No Redis call is ever made on the event loop: the reader is a thread and
the writes happen on a thread of the latency table's (`latency_worker`).
"""

from __future__ import annotations

import gzip
import io
import json
import threading
import time
from typing import TYPE_CHECKING, Any

__all__ = ["LatencyShare", "decode_rows", "encode_rows"]

import structlog

from geostream_dns.adapters.latency import LatencyService, checkpoint_blob

if TYPE_CHECKING:
    from geostream_dns.adapters.latency_worker import LatencyWorker
from geostream_dns.adapters.latency_input import decode_rows, encode_rows
from geostream_dns.adapters.redis_link import REDIS_ERRORS, RedisLink

log = structlog.get_logger("geostream.latency")

STREAM_MAX = 100_000  # batches kept in the stream (approximately)
READ_BLOCK_MS = 1000
READ_COUNT = 50
CHECKPOINT_EVERY = 60.0


class LatencyShare:
    def __init__(self, link: RedisLink, service: LatencyService | LatencyWorker,
                 server_id: str) -> None:
        self.link = link
        self.service = service
        self.server_id = server_id
        self.stream = link.key("latency", "samples")
        self.checkpoint_key = link.key("latency", "checkpoint")
        self.last_id = "0"  # the newest stream entry applied
        self.boot_id = "0"  # entries after this one from this server are already applied
        self.sent = 0
        self.received = 0
        self.failures = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_checkpoint = time.monotonic()

    # -- start -------------------------------------------------------------

    def load(self) -> bool:
        """Take the fleet's checkpoint into the table (before the table's thread
        starts); False when Redis does not answer or holds none."""
        client = self.link.sync_client()
        try:
            newest: Any = client.xrevrange(self.stream, count=1)
            self.boot_id = newest[0][0].decode() if newest else "0"
            data: Any = client.get(self.checkpoint_key)
        except REDIS_ERRORS as exc:
            self.link.lost(exc)
            log.warning("latency.fleet_unreachable", error=str(exc))
            return False
        if data is None:
            return False
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(bytes(data))) as f:
                head = json.loads(f.readline())
                self.last_id = str(head.get("stream_id", "0"))
                f.seek(0)
                keys = self.service.load_lines(f)
        except (OSError, ValueError, TypeError, KeyError, EOFError) as exc:
            log.error("latency.checkpoint_unreadable", source="redis", error=str(exc))
            self.last_id = "0"
            return False
        log.info("latency.loaded", source="redis", keys=keys, stream_id=self.last_id)
        return True

    def start(self) -> None:
        # the last stream entry the table holds, for its checkpoints until it applies more
        self.service.note_stream(self.last_id)
        self.service.on_share = self.publish
        if isinstance(self.service, LatencyService):
            self.service.saver = self.save
        else:
            self.service.saver = self.save_blob
        self._thread = threading.Thread(target=self._read, name="latency-fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(READ_BLOCK_MS / 1000 + 2)

    # -- writes, never on the event loop ------------------------------------------

    def publish(self, data: bytes, at: float) -> None:
        """Append a batch this server took in (rows, encoded) to the fleet's stream."""
        if not self.link.up and self.failures and time.monotonic() < self._retry_at:
            return
        try:
            self.link.sync_client().xadd(
                self.stream, {"s": self.server_id, "t": repr(at), "d": data},
                maxlen=STREAM_MAX, approximate=True)
            self.sent += 1
            self.failures = 0
        except REDIS_ERRORS as exc:
            self.failures += 1
            self._retry_at = time.monotonic() + self.link.lost(exc)

    _retry_at = 0.0

    def save(self, lines: list[bytes]) -> None:
        """Write the checkpoint from the table's lines (an in-process table)."""
        self.save_blob(checkpoint_blob(lines, self.service.stream_id or self.last_id))

    def save_blob(self, blob: bytes) -> None:
        """Write the checkpoint, made already (by the latency process)."""
        try:
            self.link.sync_client().set(self.checkpoint_key, blob)
        except REDIS_ERRORS as exc:
            self.link.lost(exc)

    # -- the reader thread ---------------------------------------------------

    def _read(self) -> None:
        client = None
        while not self._stop.is_set():
            try:
                if client is None:  # its reads wait up to READ_BLOCK_MS in Redis
                    client = self.link.blocking_client(READ_BLOCK_MS / 1000)
                result: Any = client.xread({self.stream: self.last_id}, count=READ_COUNT,
                                           block=READ_BLOCK_MS)
            except REDIS_ERRORS as exc:
                self._stop.wait(self.link.lost(exc))
                continue
            for _stream, entries in result or ():
                for entry_id, fields in entries:
                    self._apply(entry_id.decode(), fields)

    def _apply(self, entry_id: str, fields: dict[bytes, bytes]) -> None:
        self.last_id = entry_id
        sender = fields.get(b"s", b"").decode(errors="replace")
        if sender == self.server_id and _after(entry_id, self.boot_id):
            self.service.note_stream(entry_id)
            return  # taken in here already
        try:
            at = float(fields[b"t"])
            rows = decode_rows(fields[b"d"])
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("latency.bad_stream_entry", id=entry_id, error=str(exc))
            return
        self.received += 1
        while not self.service.submit(rows, at, "fleet", share=False, stream_id=entry_id):
            if self._stop.wait(0.05):
                return


def _after(a: str, b: str) -> bool:
    """Is stream id `a` later than `b`?"""
    def parts(x: str) -> tuple[int, int]:
        ms, _, seq = x.partition("-")
        return int(ms or 0), int(seq or 0)
    return parts(a) > parts(b)
