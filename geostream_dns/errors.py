"""One exception root for GeoStream DNS; each class's docstring is its message."""

from __future__ import annotations

from dataclasses import dataclass


class GeoStreamError(Exception):
    """GeoStream DNS error."""


class WireError(GeoStreamError):
    """Malformed DNS message (answered with FORMERR when the header is readable)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One located configuration problem: ``file:line: field.path: message``."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ConfigError(GeoStreamError):
    """Invalid configuration; carries every problem found, not just the first (and the
    warnings found beside them)."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        self.warnings = warnings or []
        super().__init__("\n".join(str(p) for p in problems))


class StoreUnavailable(GeoStreamError):
    """The configuration store (PostgreSQL) cannot be reached."""


class CacheUnavailable(GeoStreamError):
    """The shared cache (Redis) cannot be reached."""


class WriteRefused(GeoStreamError):
    """The store cannot take this write (say, no zones folder to write a new zone into)."""
