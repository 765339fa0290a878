"""Serve imported corpus zones with the real server and ask for every static record."""

from __future__ import annotations

import pathlib

from tests.import_corpus.corpus import Answers, Result, ask, batches, served_sets, write_zones
from tests.support.harness import running


def answer_check(results: list[Result], base: pathlib.Path, geoip: pathlib.Path) -> Answers:
    """One server per batch of distinct zones (`--no-probe`: the corpus's health checks
    name addresses that are not ours to probe), on the test GeoIP database `geoip`."""
    answers = Answers()
    for i, batch in enumerate(batches(results)):
        folder = base / f"batch{i}"
        write_zones(batch, folder / "zones")
        with running(folder, zones=folder / "zones", geoip=geoip, http=False,
                     args=["--no-probe"]) as server:
            for result in batch:
                ask(server.host, server.port, served_sets(result), answers)
    return answers
