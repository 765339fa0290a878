"""Print the import corpus figures: `.venv/bin/python -m tests.import_corpus.figures`."""

from __future__ import annotations

import pathlib
import tempfile

from tests.import_corpus.corpus import figures, import_all
from tests.import_corpus.serve import answer_check
from tests.support.geoip import write_mmdb


def main() -> None:
    results = import_all()
    with tempfile.TemporaryDirectory(prefix="geostream-corpus-") as folder:
        base = pathlib.Path(folder)
        answers = answer_check(results, base, write_mmdb(base / "city.mmdb"))
    for line in figures(results, answers):
        print(line)
    for wrong in answers.wrong:
        print(f"  not as in the source: {wrong}")


if __name__ == "__main__":
    main()
