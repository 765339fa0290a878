"""What the database commands share: options, the connection, zone documents, errors.

``plan``, ``apply``, ``export``, ``history``, ``rollback`` and ``migrate`` read
``--database-url`` or ``DATABASE_URL``. Every error they can meet (database
unreachable, schema missing, stale plan, ...) ends as one line on stderr and
exit code 1, never a traceback (``guarded``).
"""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import pathlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

from geostream_dns.config.document import Document, zone_document
from geostream_dns.config.loader import load_zones_dir
from geostream_dns.errors import ConfigError, GeoStreamError, Problem

EXIT_ERROR = 1


class UsageError(GeoStreamError):
    """The command line is incomplete."""


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", metavar="URL",
                        help="PostgreSQL URL (DATABASE_URL), e.g. "
                             "postgresql://postgres@127.0.0.1/geostream")


def add_author_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--author", metavar="NAME",
                        help="who makes the change, for the history (default: the OS user)")


def database_url(args: argparse.Namespace) -> str:
    url: str | None = getattr(args, "database_url", None) or os.environ.get("DATABASE_URL")
    if not url:
        raise UsageError("no database: give --database-url URL or set DATABASE_URL")
    return url


def author(args: argparse.Namespace) -> str:
    if getattr(args, "author", None):
        return str(args.author)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def open_database(args: argparse.Namespace) -> Any:
    """A pooled ``adapters.pg.Database`` (imported here: ``check`` needs no psycopg)."""
    from geostream_dns.adapters.pg import Database

    return Database(database_url(args))


def guarded(name: str) -> Callable[[Callable[[argparse.Namespace], int]],
                                   Callable[[argparse.Namespace], int]]:
    """Run a command; GeoStream errors become ``geostream-dns NAME: message`` and exit 1."""
    def wrap(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        @functools.wraps(func)
        def run(args: argparse.Namespace) -> int:
            try:
                return func(args)
            except ConfigError as exc:
                print_problems(exc.problems)
                return EXIT_ERROR
            except GeoStreamError as exc:
                print(f"geostream-dns {name}: {exc}", file=sys.stderr)
                return EXIT_ERROR
            except OSError as exc:
                print(f"geostream-dns {name}: {exc}", file=sys.stderr)
                return EXIT_ERROR
            except KeyboardInterrupt:
                return 130
        return run
    return wrap


def print_problems(problems: Iterable[Problem]) -> None:
    for problem in sorted(problems, key=lambda p: (p.file, p.line)):
        print(problem)
    sys.stdout.flush()


def wanted_documents(paths: list[pathlib.Path]) -> dict[str, Document]:
    """Validate zone files exactly as ``check`` does; raises ConfigError with every problem."""
    zones, problems = load_zones_dir(paths)
    if problems:
        raise ConfigError(problems)
    if not zones:
        # Most likely a wrong path; with --delete-missing it would remove every zone.
        raise UsageError("no zone files (*.yaml, *.yml) in "
                         + ", ".join(str(p) for p in paths))
    return {zone.origin: zone_document(zone) for zone in zones}


def zone_origin(text: str) -> str:
    return text.strip().lower().rstrip(".") + "."
