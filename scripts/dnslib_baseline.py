#!/usr/bin/env python3
"""Baseline for `make bench`: the static records of zones/example.com.yaml served
the way a plain dnslib user would write it (dnslib.server.DNSServer, UDP only).

It is deliberately naive -- one BaseResolver, a dict lookup per query, dnslib's
threaded socketserver -- so GeoStream's numbers have something to be compared to.

    .venv/bin/python scripts/dnslib_baseline.py --port 5353
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import yaml
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

DEFAULT_ZONE = Path(__file__).resolve().parent.parent / "zones" / "example.com.yaml"


def _values(rec: dict) -> list:
    if "values" in rec:
        return list(rec["values"])
    if "value" in rec:
        return [rec["value"]]
    return []


def _rdata(rtype: str, value):
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "MX":
        return MX(value["exchange"], value.get("preference", 10))
    if rtype == "TXT":
        return TXT(value)
    return None


def load_zone(path: Path) -> tuple[DNSLabel, dict[tuple[DNSLabel, str], list[RR]]]:
    doc = yaml.safe_load(path.read_text())
    origin = str(doc.get("zone") or path.name[: -len(".yaml")]).rstrip(".") + "."
    default_ttl = int(doc.get("ttl", 300))
    records: dict[tuple[DNSLabel, str], list[RR]] = {}
    for name, recs in (doc.get("records") or {}).items():
        name = str(name)
        fqdn = origin if name in ("", "@") else f"{name}.{origin}"
        for rec in recs if isinstance(recs, list) else [recs]:
            rtype = rec["type"]
            if rtype not in ("A", "AAAA", "CNAME", "MX", "TXT"):
                continue  # ALIAS, CAA, SRV, NS ... are out of scope for the baseline
            ttl = int(rec.get("ttl", default_ttl))
            # a routed record: just its own `values` (no geo, no health)
            for v in _values(rec):
                rr = RR(fqdn, getattr(QTYPE, rtype), rdata=_rdata(rtype, v), ttl=ttl)
                records.setdefault((DNSLabel(fqdn), rtype), []).append(rr)
    return DNSLabel(origin), records


class StaticResolver(BaseResolver):
    def __init__(self, zone_file: Path):
        self.origin, self.records = load_zone(zone_file)
        self.names = {name for name, _ in self.records}

    def _lookup(self, qname: DNSLabel, qtype: str) -> list[RR]:
        rrs = self.records.get((qname, qtype))
        if rrs is not None:
            return rrs
        # wildcard: *.static.example.com. matches foo.static.example.com.
        for name, rtype in self.records:
            if rtype == qtype and str(name).startswith("*.") and qname.matchGlob(name):
                out = []
                for rr in self.records[(name, rtype)]:
                    rr = copy.copy(rr)
                    rr.rname = qname
                    out.append(rr)
                return out
        return []

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        qtype = QTYPE[request.q.qtype]
        if not qname.matchSuffix(self.origin):
            reply.header.rcode = RCODE.REFUSED
            return reply
        reply.header.aa = 1
        answers = self._lookup(qname, qtype)
        if not answers and qtype != "CNAME":
            cname = self._lookup(qname, "CNAME")
            if cname:
                answers = list(cname)
                answers += self._lookup(DNSLabel(str(cname[0].rdata.label)), qtype)
        for rr in answers:
            reply.add_answer(rr)
        if not answers and qname not in self.names and not self._lookup(qname, "A"):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=5353)
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument("--zone-file", type=Path, default=DEFAULT_ZONE)
    ap.add_argument("--log", action="store_true", help="log every request (slow)")
    args = ap.parse_args()

    resolver = StaticResolver(args.zone_file)
    logger = DNSLogger("request,reply,truncated,error" if args.log else "error", prefix=False)
    server = DNSServer(resolver, port=args.port, address=args.address, logger=logger)
    server.start_thread()
    print(f"dnslib baseline: {len(resolver.records)} RRsets on udp {args.address}:{args.port}",
          flush=True)
    try:
        while server.isAlive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
