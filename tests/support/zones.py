"""Zone files for tests: one standard header, with the test's records below it.

`zone_text(records)` is a whole zone file: the standard header, then
`records` (a YAML snippet, at any indentation) under `records:`, which is
always the last key, so line N of the snippet is file line
`records_line() + N`. The header (16 lines as it stands) is:

    zone: example.com.
    ttl: 300
    soa: (7 lines: primary ns1.example.net., email hostmaster@example.com,
         refresh 7200, retry 900, expire 1209600, negative_ttl 300)
    nameservers: [ns1.example.net., ns2.example.net.]
    regions: us, eu and ap (Virginia, Frankfurt, Singapore)
    healthchecks: web, plain http on port 80

The name servers are outside every test zone, so no test needs glue for
them. Keyword arguments change what a test needs changed: the origin, the
TTLs, the regions and the health checks (each check is a YAML flow mapping,
see `http_check`). `write_zone(folder, records)` writes the text to
`<folder>/<origin>.yaml`, the name the zones folder expects.
"""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Mapping
from typing import Any

Coordinates = tuple[float, float]

REGIONS: dict[str, Coordinates] = {"us": (38.9, -77.4), "eu": (50.1, 8.7), "ap": (1.35, 103.8)}
HEALTHCHECKS: dict[str, str] = {"web": "{protocol: http, port: 80}"}


def zone_header(origin: str = "example.com.", *, ttl: int = 300, negative_ttl: int = 300,
                regions: Mapping[str, Coordinates] = REGIONS,
                healthchecks: Mapping[str, str] = HEALTHCHECKS, dnssec: str | None = None) -> str:
    """The standard header (everything but `records:`) for `origin`."""
    lines = [f"zone: {origin}",
             f"ttl: {ttl}",
             "soa:",
             "  primary: ns1.example.net.",
             "  email: hostmaster@example.com",
             "  refresh: 7200",
             "  retry: 900",
             "  expire: 1209600",
             f"  negative_ttl: {negative_ttl}",
             "nameservers: [ns1.example.net., ns2.example.net.]"]
    if regions:
        lines.append("regions:")
        lines += [f"  {name}: {{lat: {lat}, lon: {lon}}}" for name, (lat, lon) in regions.items()]
    if healthchecks:
        lines.append("healthchecks:")
        lines += [f"  {name}: {check}" for name, check in healthchecks.items()]
    if dnssec is not None:  # e.g. "{algorithm: ed25519}"
        lines.append(f"dnssec: {dnssec}")
    return "\n".join(lines) + "\n"


def zone_text(records: str = "", origin: str = "example.com.", **header: Any) -> str:
    """A zone file: the standard header, then `records` under `records:`."""
    body = textwrap.indent(textwrap.dedent(records), "  ")
    if body and not body.endswith("\n"):
        body += "\n"
    return zone_header(origin, **header) + "records:\n" + body


def records_line(**header: Any) -> int:
    """The line of `records:` in a file made by `zone_text` with these header arguments."""
    return zone_header(**header).count("\n") + 1


def write_zone(folder: pathlib.Path, records: str = "", origin: str = "example.com.",
               **header: Any) -> pathlib.Path:
    """Write `zone_text(records, origin, ...)` to `<folder>/<origin>.yaml` (folder made)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{origin.rstrip('.')}.yaml"
    path.write_text(zone_text(records, origin, **header))
    return path


def http_check(port: int, *, path: str = "/healthz", host: str = "www.example.com",
               interval: str = "1s", timeout: str = "500ms", rise: int = 2,
               fall: int = 2) -> str:
    """An http health check (expects 200 and "ok" in the body), as a YAML flow mapping."""
    return (f"{{protocol: http, port: {port}, path: {path}, host: {host}, "
            f"expect: {{status: [200], body_contains: ok}}, interval: {interval}, "
            f"timeout: {timeout}, rise: {rise}, fall: {fall}}}")
