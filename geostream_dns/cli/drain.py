"""`geostream-dns drain REGION` / `undrain REGION`: through the running server's API."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from geostream_dns.config.settings import DEFAULT_HTTP


def register(sub: Any) -> None:
    for name, helptext in (("drain", "take every pool value in a region out of service"),
                           ("undrain", "put a drained region back into service")):
        p: argparse.ArgumentParser = sub.add_parser(name, help=helptext)
        p.add_argument("region")
        p.add_argument("--http", metavar="HOST:PORT",
                       help=f"the server's HTTP endpoint (GEOSTREAM_HTTP, default {DEFAULT_HTTP})")
        p.add_argument("--token", help="API token (GEOSTREAM_API_TOKEN)")
        p.set_defaults(func=run, drain=name == "drain")


def run(args: argparse.Namespace) -> int:
    http = args.http or os.environ.get("GEOSTREAM_HTTP") or DEFAULT_HTTP
    token = args.token or os.environ.get("GEOSTREAM_API_TOKEN") or ""
    url = f"http://{http}/v1/regions/{urllib.parse.quote(args.region, safe='')}/drain"
    request = urllib.request.Request(url, method="POST" if args.drain else "DELETE")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    verb = "drain" if args.drain else "undrain"
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            error = exc.reason
        print(f"geostream-dns {verb}: {exc.code} {error}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"geostream-dns {verb}: cannot reach the server at {http}: {exc}",
              file=sys.stderr)
        return 1
    state = "drained" if args.drain else "in service"
    note = "" if body.get("changed") else " (already)"
    print(f"region {args.region}: {state}{note}")
    return 0
