"""Latency batches checked and summed in a process of their own.

How this works. Taking a sample in costs about 13 µs of CPU in Python — JSON,
checks, GeoIP keys, summing — and the server answers queries in one Python
process, so at tens of thousands of samples a second that work would take the
CPU answering needs. `LatencyWorker` runs it in one child process (spawned,
not forked, so it shares nothing with the event loop): the HTTP handler hands
over the request body as bytes, the child parses and checks it (the same
functions and messages as anywhere else), finds each sample's keys with its
own GeoIP reader and memo, sums the batch per (key, region), and sends back
only those sums and the rows encoded for the fleet's stream. The server then
folds in one entry per (key, region) — a continent once per batch, not once
per sample.

With `serve --user`, the child is started before the server drops root (a
new interpreter may not be readable by the user: a virtualenv in root's
home) and drops to the same user itself before it reads anything.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import pathlib
from collections.abc import Collection
from typing import Any

from geostream_dns.adapters.latency_input import (
    BadInput,
    Row,
    check_batch,
    check_csv,
    expand,
)
from geostream_dns.core.latency import LatencyKey

Sums = list[tuple[LatencyKey, str, float, float]]  # key, region, mean ms, samples

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


def sum_rows(rows: list[Row]) -> Sums:
    """A batch summed per (key, region): (key, region, mean ms, samples)."""
    sums: dict[tuple[LatencyKey, str], list[float]] = {}
    for keys, region, rtt, count in rows:
        weighted = rtt * count
        for key in keys:
            acc = sums.get((key, region))
            if acc is None:
                sums[(key, region)] = [weighted, float(count)]
            else:
                acc[0] += weighted
                acc[1] += count
    return [(key, region, total / n, n) for (key, region), (total, n) in sums.items()]


def prepare(body: bytes, csv_body: bool, regions: Collection[str], peer: str | None,
            first_line: int, dry_run: bool, share: bool
            ) -> tuple[bool, Any, int, int, Sums, bytes | None]:
    """(ok, problems or None, rows, samples, sums, rows encoded for the fleet)."""
    from geostream_dns.adapters.latency_share import encode_rows

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
    rows = expand(samples, _geo)
    return True, None, len(samples), total, sum_rows(rows), encode_rows(rows) if share else None


class LatencyWorker:
    """One child process that checks and sums latency batches (see the module doc)."""

    def __init__(self, geoip: pathlib.Path | None, user: str | None = None) -> None:
        self.geoip = str(geoip) if geoip else None
        self.user = user  # the child runs as this user (serve --user)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init, initargs=(self.geoip, self.user))
        self._pool.submit(int)  # spawn it now, not on the first batch

    async def prepare(self, body: bytes, csv_body: bool, regions: Collection[str],
                      peer: str | None, first_line: int, dry_run: bool, share: bool
                      ) -> tuple[bool, Any, int, int, Sums, bytes | None]:
        if self._pool is None:
            self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, prepare, body, csv_body,
                                              frozenset(regions), peer, first_line,
                                              dry_run, share)
        except concurrent.futures.BrokenExecutor:
            self._pool = None  # the child died: a new one next time
            raise

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
