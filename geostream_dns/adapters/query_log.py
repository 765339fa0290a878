"""The query log (`--query-log FILE`, `--query-log-sample N`): one JSON line per sampled query.

How this works: the transports never format or write anything. For one query
in N (a countdown the transport keeps inline) they call `offer`, which appends
one small tuple — the time, the transport, the query's bytes as received, the
client address, the `Outcome` and the duration — to a bounded list, or, when
the list is full, only counts the query as dropped. A writer task on the
event loop swaps the list for an empty one every `flush_interval` seconds and
hands the batch to a thread of its own, which parses the question and the
Client Subnet option out of the bytes, formats the lines and appends them to
the file with one `write`. So a slow disk or a burst of queries costs the
query path at most a dropped log line, never a wait.

The file is opened with O_APPEND: the workers of `--workers N` share it, each
batch landing whole. `reopen()` (SIGHUP) closes and reopens it on the writer
thread, between two batches, for log rotation.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import pathlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype
import structlog

from geostream_dns.core.outcome import Outcome
from geostream_dns.core.wire import MalformedQuery, parse_query

log = structlog.get_logger("geostream.query_log")

BUFFER_LIMIT = 20_000  # queries waiting for the writer; beyond that they are dropped
FLUSH_INTERVAL = 0.2  # seconds between two batches
CLIENT_PREFIX = {4: 24, 6: 48}  # the client network logged: the address truncated to this

# (time, transport, query bytes, client address, outcome, duration in ns)
Entry = tuple[float, str, bytes, str, Outcome, int]


class QueryLog:
    """The bounded buffer the transports feed, and the writer that empties it."""

    def __init__(self, path: pathlib.Path, every: int = 1, *, limit: int = BUFFER_LIMIT,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        if every < 1:
            raise ValueError(f"--query-log-sample must be 1 or more, not {every}")
        self.path = path
        self.every = every
        self.countdown = every  # decremented by the transports; offer() at zero
        self.limit = limit
        self.flush_interval = flush_interval
        self.buffer: list[Entry] = []
        self.written = 0  # lines written (writer thread)
        self.dropped = 0  # queries not queued: the buffer was full (event loop)
        self.lost = 0  # queued lines a failed write lost (writer thread)
        self.write_errors = 0
        try:
            self._fd = self._open()
        except OSError as exc:
            raise OSError(f"--query-log {path}: {exc.strerror}") from None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="query-log")
        self._task: asyncio.Task[None] | None = None

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    # -- the query path --

    def offer(self, transport: str, data: bytes, client: str, outcome: Outcome,
              elapsed_ns: int) -> None:
        """Queue one sampled query (called by a transport; never blocks, never raises)."""
        self.countdown = self.every
        buffer = self.buffer
        if len(buffer) >= self.limit:
            self.dropped += 1
            return
        buffer.append((time.time(), transport, data, client, outcome, elapsed_ns))

    # -- the writer --

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.flush_interval)
            if self.buffer:
                batch, self.buffer = self.buffer, []
                await loop.run_in_executor(self._executor, self._write, batch)

    def _write(self, batch: list[Entry]) -> None:
        """Format and append one batch (writer thread)."""
        data = "".join(map(format_entry, batch)).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self.lost += len(batch)
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 1000 == 0:
                log.error("query_log.write_failed", path=str(self.path), error=str(exc),
                          errors=self.write_errors)
            return
        self.written += len(batch)

    def reopen(self) -> None:
        """Close and reopen the file between two batches (after a log rotation)."""
        self._executor.submit(self._reopen)

    def _reopen(self) -> None:
        try:
            fd = self._open()
        except OSError as exc:
            log.error("query_log.reopen_failed", path=str(self.path), error=str(exc))
            return
        old, self._fd = self._fd, fd
        os.close(old)
        log.info("query_log.reopened", path=str(self.path))

    def close(self) -> None:
        """Write what is buffered and close the file (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
        batch, self.buffer = self.buffer, []
        if batch:
            self._executor.submit(self._write, batch)
        self._executor.shutdown(wait=True)
        os.close(self._fd)


# -- formatting (writer thread) ----------------------------------------------------------
#
# A line is made of pieces that repeat from query to query: the question and
# its ECS option, the outcome, the client network, the second. Each piece is
# JSON-encoded once and memoized (bounded tables, used by the writer thread
# alone), so a line costs a few look-ups and one join.

MEMO_LIMIT = 50_000
_questions: dict[bytes, str] = {}
_outcomes: dict[Outcome, str] = {}
_clients: dict[str, str] = {}
_seconds: dict[int, str] = {}


def format_entry(entry: Entry) -> str:
    when, transport, data, client, outcome, elapsed_ns = entry
    key = data[2:]  # everything but the ID
    question = _questions.get(key)
    if question is None:
        question = _remember(_questions, key, _question_json(data, outcome))
    result = _outcomes.get(outcome)
    if result is None:
        result = _remember(_outcomes, outcome, _outcome_json(outcome))
    network = _clients.get(client)
    if network is None:
        network = _remember(_clients, client, json.dumps(client_network(client)))
    second = int(when)
    stamp = _seconds.get(second)
    if stamp is None:
        stamp = _remember(_seconds, second, datetime.datetime.fromtimestamp(
            second, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    micros = int((when - second) * 1_000_000)
    return (f'{{"time":"{stamp}.{micros:06d}Z","transport":"{transport}",'
            f'"client":{network},{question},{result},'
            f'"duration_s":{round(elapsed_ns / 1e9, 7)}}}\n')


def _remember(table: dict[Any, str], key: Any, value: str) -> str:
    if len(table) >= MEMO_LIMIT:
        table.clear()
    table[key] = value
    return value


def _question_json(data: bytes, outcome: Outcome) -> str:
    name, qtype, ecs = _question(data)
    if qtype is None and outcome.rcode >= 0:
        qtype = outcome.qtype
    type_text = dns.rdatatype.to_text(qtype) if qtype is not None else None  # type: ignore[arg-type]
    return (f'"ecs":{json.dumps(ecs)},"name":{json.dumps(name)},'
            f'"type":{json.dumps(type_text)}')


def _outcome_json(outcome: Outcome) -> str:
    rcode = dns.rcode.to_text(outcome.rcode) if outcome.rcode >= 0 else "DROPPED"  # type: ignore[arg-type]
    return (f'"rcode":{json.dumps(rcode)},"zone":{json.dumps(outcome.zone or None)},'
            f'"rule":{json.dumps(outcome.rule)},"pool":{json.dumps(outcome.pool)},'
            f'"scope":{json.dumps(outcome.scope)}')


def _question(data: bytes) -> tuple[str | None, int | None, str | None]:
    """(name, type, ECS as ADDRESS/PREFIX) of a query, as far as it can be read."""
    ecs = None
    try:
        query = parse_query(data)
    except MalformedQuery as exc:
        if not exc.question:
            return None, None, None
        question = exc.question
    else:
        question = query.question
        subnet = query.edns.ecs if query.edns is not None else None
        if subnet is not None:
            try:
                address = ipaddress.ip_address(subnet.address_bytes())
                ecs = f"{address}/{subnet.source_prefix}"
            except ValueError:
                ecs = None
    try:
        name, used = dns.name.from_wire(question, 0)
    except dns.exception.DNSException:
        return None, None, ecs
    qtype = int.from_bytes(question[used:used + 2], "big") if len(question) >= used + 2 else None
    return name.to_text(), qtype, ecs


def client_network(client: str) -> str:
    """The client's address truncated to its network (/24 for IPv4, /48 for IPv6)."""
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return client
    prefix = CLIENT_PREFIX[address.version]
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
