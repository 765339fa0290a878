"""`geostream-dns latency import FILE.csv`: load latency measurements into the running
server, through its API at `--http` (like `drain`).

The file (header `client,region,rtt_ms,samples`) is checked here first; a file
with any bad row is refused whole, each problem named `FILE:LINE: ...`. A
file larger than one request is sent in parts, each numbered by its first
line; every part is checked by the server (`?dry_run=true`) before any is
stored, so a file the server refuses (a region it does not know) stores
nothing either.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys
import urllib.error
import urllib.request
from typing import Any

from geostream_dns.adapters.latency_input import BadInput, check_csv
from geostream_dns.config.settings import DEFAULT_HTTP

PART_BYTES = 512 * 1024  # a request's worth of CSV rows


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "latency", help="latency measurements for `latency` rules")
    inner = p.add_subparsers(dest="latency_command", metavar="SUBCOMMAND", required=True)
    imp: argparse.ArgumentParser = inner.add_parser(
        "import", help="load a CSV file (client,region,rtt_ms,samples) into the server")
    imp.add_argument("file", type=pathlib.Path)
    imp.add_argument("--http", metavar="HOST:PORT",
                     help=f"the server's HTTP endpoint (GEOSTREAM_HTTP, default {DEFAULT_HTTP})")
    imp.add_argument("--token", help="API token (GEOSTREAM_API_TOKEN)")
    imp.set_defaults(func=run_import)


def parts(text: str, size: int = PART_BYTES) -> list[tuple[int, str]]:
    """(first line number, text) pieces of a CSV file, split between rows; the first
    piece holds the header."""
    lines = text.splitlines(keepends=True)
    out: list[tuple[int, str]] = []
    start, length = 1, 0
    chunk: list[str] = []
    for number, line in enumerate(lines, 1):
        if chunk and length + len(line) > size:
            out.append((start, "".join(chunk)))
            start, length = number, 0
            chunk = []
        chunk.append(line)
        length += len(line)
    if chunk:
        out.append((start, "".join(chunk)))
    return out


def _send(url: str, token: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "text/csv"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        result: dict[str, Any] = json.loads(response.read() or b"{}")
        return result


def run_import(args: argparse.Namespace) -> int:
    http = args.http or os.environ.get("GEOSTREAM_HTTP") or DEFAULT_HTTP
    token = args.token or os.environ.get("GEOSTREAM_API_TOKEN") or ""
    name = str(args.file)
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"geostream-dns latency import: cannot read {name}: {exc}", file=sys.stderr)
        return 1
    try:
        samples = check_csv(text, None, source=name)
    except BadInput as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"geostream-dns latency import: {name}: {len(exc.problems)} problem(s); "
              "nothing imported", file=sys.stderr)
        return 1
    pieces = parts(text)
    stored = 0
    try:
        for mode in ("dry_run=true", "wait=true"):
            for first, piece in pieces:
                result = _send(f"http://{http}/v1/latency?{mode}&first_line={first}", token,
                               piece.encode())
                if mode.startswith("wait"):
                    stored += int(result.get("samples", 0))
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
        except ValueError:
            error = {"error": exc.reason, "details": []}
        for detail in error.get("details", []):
            print(re.sub(r"^line (\d+):", rf"{name}:\1:", str(detail)), file=sys.stderr)
        done = "nothing imported" if not stored else f"{stored} samples imported before it"
        print(f"geostream-dns latency import: {exc.code} {error.get('error')}; {done}",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"geostream-dns latency import: cannot reach the server at {http}: {exc}",
              file=sys.stderr)
        return 1
    rows = len(samples)
    print(f"{name}: imported {rows} rows ({stored} samples)")
    return 0
