"""The real PostgreSQL's per-test databases (tests/postgres/conftest.py) for the
DNSSEC key tests."""

from tests.postgres.conftest import database_url, migrated_url

__all__ = ["database_url", "migrated_url"]
