"""The installed version of GeoStream DNS (from the package metadata)."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("geostream-dns")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0+source"
