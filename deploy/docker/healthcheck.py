#!/usr/bin/env python3
"""Container health check: exit 0 when GET /health on GEOSTREAM_HTTP answers 200.

GEOSTREAM_HTTP is the address the server listens on (default 127.0.0.1:8080).
A wildcard address (0.0.0.0, [::]) is reached through the matching loopback
address, since that is where a check running inside the container can reach it.
Exits 1 (unhealthy) on any error, and when the HTTP endpoint is turned off.
"""

from __future__ import annotations

import os
import sys
import urllib.request

WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def health_url(http: str) -> str:
    host, sep, port = http.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"GEOSTREAM_HTTP={http!r} is not HOST:PORT")
    host = host.strip("[]")
    host = WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/health"


def main() -> int:
    http = os.environ.get("GEOSTREAM_HTTP", "127.0.0.1:8080")
    try:
        url = health_url(http)
        with urllib.request.urlopen(url, timeout=3) as response:
            status = response.status
    except Exception as exc:  # any failure means unhealthy
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: GET {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
