"""Run a farm of passing HTTP(S) endpoints in a process of its own.

    python -m tests.health.endpoint_farm --cert C --key K --http PORT HOST... --https PORT HOST...

Prints "ready" once every endpoint listens and serves until stdin closes (or
SIGTERM). The loop-lag test uses it so that the endpoints' own work (TLS
handshakes, Python code holding the GIL) does not count as lag of the
prober's event loop, which is what that test measures.
"""

from __future__ import annotations

import argparse
import pathlib
import signal
import sys
import threading

from tests.health.conftest import Cert, Farm


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--http", nargs="+", default=[], metavar="PORT HOST")
    parser.add_argument("--https", nargs="+", default=[], metavar="PORT HOST")
    args = parser.parse_args()
    cert = Cert(pathlib.Path(args.cert), pathlib.Path(args.key))
    farm = Farm()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        if args.http:
            port = int(args.http[0])
            for host in args.http[1:]:
                farm.endpoint(host, port)
        if args.https:
            port = int(args.https[0])
            for host in args.https[1:]:
                farm.endpoint(host, port, tls=cert.server_context())
        print("ready", flush=True)
        def watch_stdin() -> None:
            sys.stdin.read()  # returns when the parent closes our stdin (or dies)
            done.set()

        threading.Thread(target=watch_stdin, daemon=True).start()
        done.wait(120.0)  # bounded even if the parent forgets us
    finally:
        farm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
