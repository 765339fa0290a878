"""Serve imported corpus zones with the real server and ask for every static record."""

from __future__ import annotations

import pathlib

from tests.e2e.conftest import finish, launch
from tests.import_corpus.corpus import Answers, Result, ask, batches, served_sets, write_zones


def answer_check(results: list[Result], base: pathlib.Path) -> Answers:
    """One server per batch of distinct zones (`--no-probe`: the corpus's health checks
    name addresses that are not ours to probe)."""
    answers = Answers()
    for i, batch in enumerate(batches(results)):
        folder = base / f"batch{i}"
        write_zones(batch, folder / "zones")
        server = launch(folder, zones_dir=folder / "zones", http=False, extra=["--no-probe"])
        try:
            for result in batch:
                ask(server.host, server.port, served_sets(result), answers)
        finally:
            finish(server)
    return answers
