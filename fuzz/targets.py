"""Coverage-guided fuzz targets (atheris/libFuzzer) for the code that reads input
from strangers: the DNS wire parser and resolver, the zone loader and the importers.

How this works: `python fuzz/targets.py TARGET [libFuzzer options] [corpus dirs]`
runs one target under atheris with the package instrumented for coverage. Each
target feeds the bytes it is given to the real code and fails (an uncaught
exception, which atheris reports as a crash and saves as `crash-*`) only on
what must never happen: an exception other than the documented error of the
function, or a reply that breaks the DNS rules the server promises (not a DNS
message, a wrong ID, QR unset). libFuzzer's `-timeout` turns a hang into a
`timeout-*` artifact. `scripts/fuzz.py` runs every target for a bounded time
and tests/fuzz_regressions replays what was found.
"""

from __future__ import annotations

import pathlib
import sys

import atheris

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

with atheris.instrument_imports():
    from fuzz.checks import TARGETS, fuzz_resolve, sample_world


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    if target is fuzz_resolve:
        sample_world()  # built once, before the clock starts
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
