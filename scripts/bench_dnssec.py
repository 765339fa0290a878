#!/usr/bin/env python3
"""DNSSEC benchmark: signed vs unsigned answers in the same run, the cost of
signing a new routed variant, and the build time of many signed zones.

Runs (dnsperf, every run bounded by -l, all against 127.0.0.1, one server
serving the sample zone with `dnssec:` added):

  static       static names of the sample zone, EDNS, DO=0      (dnsperf -e)
  static+do    the same names with DO=1: signed answers         (dnsperf -D)
  routed       www.example.com A with an ECS option, DO=0       (a warm memo)
  routed+do    the same with DO=1: the signed routed variant    (a warm memo)

The runs alternate `--repeat` times (every other round in reverse order) and
the median of each is reported, with the ratios signed/unsigned (of the
medians, and the median of the round-by-round ratios) and the server's CPU
per answered query. Then, in this process:

  * signing a new routed variant: `_rendered` for decisions never seen, DO=1
    vs DO=0 (the difference is the signing);
  * a compact denial for a name never asked, through `resolve`, DO=1 vs DO=0,
    and the same names again (memoized);
  * building N signed zones (`--zones`, default 10,000) with `build_snapshot`,
    and the same zones unsigned.

    .venv/bin/python scripts/bench_dnssec.py [--seconds 5] [--repeat 3] [--zones 10000]
Results: bench-results/dnssec.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402  (scripts/bench.py: Server, dnsperf runs)

STATIC_NAMES = bench.STATIC_NAMES
ECS = ["-E", f"8:{bench.ECS_OPTION_HEX}"]


def signed_zone_text() -> str:
    return bench.ZONE_FILE.read_text() + "\ndnssec: {algorithm: ecdsap256sha256}\n"


def serve_and_load(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    zones = tmp / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text(signed_zone_text())
    port = bench.free_port()
    http = bench.free_port({port})
    cmd = [str(ROOT / ".venv/bin/geostream-dns"), "serve", "--zones", str(zones),
           "--state-dir", str(tmp / "state"), "--listen", f"127.0.0.1:{port}",
           "--http", f"127.0.0.1:{http}", "--no-probe"]
    pinned = (shutil.which("taskset") is not None)
    server = bench.Server("geostream", bench.pin(1, cmd, pinned), tmp / "server.log")
    try:
        server.wait_ready(port, f"http://127.0.0.1:{http}/ready", 30)
        static_file = tmp / "static.txt"
        static_file.write_text("".join(f"{n} {t}\n" for n, t in STATIC_NAMES))
        routed_file = tmp / "routed.txt"
        routed_file.write_text("www.example.com A\n")
        runs = {"static": (static_file, ["-e"]), "static+do": (static_file, ["-D"]),
                "routed": (routed_file, ["-e", *ECS]), "routed+do": (routed_file, ["-D", *ECS])}
        results: dict[str, list[dict[str, Any]]] = {k: [] for k in runs}
        for round_no in range(args.repeat):
            # every other round in reverse order, so drifting load favours no run
            order = list(runs.items()) if round_no % 2 == 0 else list(reversed(runs.items()))
            for label, (qfile, extra) in order:
                results[label].append(bench.run_dnsperf(
                    server, port, qfile, args.seconds, pinned=pinned, label=label,
                    target="geostream", extra=["-q", "200", *extra]))
    finally:
        server.stop()
    medians = {label: statistics.median(r["qps"] for r in rs) for label, rs in results.items()}
    return {
        "qps": {k: round(v) for k, v in medians.items()},
        "rounds": {k: [round(r["qps"]) for r in rs] for k, rs in results.items()},
        "lost_pct": {k: max(r["lost_pct"] for r in rs) for k, rs in results.items()},
        # server CPU per answered query: steadier than qps on a machine shared with
        # other work (a slowed run loses qps, not CPU per answer)
        "server_cpu_us_per_query": {
            k: round(statistics.median(r["server_cpu_us_per_query"] for r in rs), 2)
            for k, rs in results.items()},
        "signed_static_over_unsigned": round(medians["static+do"] / medians["static"], 3),
        "signed_routed_over_unsigned": round(medians["routed+do"] / medians["routed"], 3),
        # the same ratios round by round (each signed run beside its unsigned one)
        "paired_median": {
            "static": round(statistics.median(
                a["qps"] / b["qps"] for a, b in zip(results["static+do"], results["static"],
                                                    strict=True)), 3),
            "routed": round(statistics.median(
                a["qps"] / b["qps"] for a, b in zip(results["routed+do"], results["routed"],
                                                    strict=True)), 3)},
    }


def variant_cost(count: int) -> dict[str, Any]:
    """Microseconds to render (and for DO=1, sign) a routed variant never seen."""
    import dns.name
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    from geostream_dns.adapters.dnssec_keys import first_keys, signing_of
    from geostream_dns.config.loader import load_zone_text
    from geostream_dns.core.build import build_snapshot
    from geostream_dns.core.resolve import _rendered
    from geostream_dns.core.snapshot import question_key
    from geostream_dns.core.world import World

    zone = load_zone_text(signed_zone_text(), "zones/example.com.yaml")
    assert zone.dnssec is not None
    signing = signing_of(first_keys(zone.origin, zone.dnssec, int(time.time()), None), None,
                         time.time())
    assert signing is not None
    world = World.create(build_snapshot([zone], 1, signing={zone.origin: signing}))
    key = question_key(dns.name.from_text("www.example.com."), dns.rdatatype.A)
    name = world.memo.routed[key]
    out = {}
    for do in (False, True):
        started = time.perf_counter()
        for i in range(count):
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A,
                                        f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
            _rendered(world, dns.rdatatype.A, key, name, ("bench", do, i), (rdata,), do)
        out["signed_us" if do else "unsigned_us"] = round(
            (time.perf_counter() - started) / count * 1e6, 1)
    out["signing_us"] = round(out["signed_us"] - out["unsigned_us"], 1)
    return out


def denial_cost(count: int) -> dict[str, Any]:
    """Microseconds per query for names never asked (each a new compact denial to
    sign for DO=1), through `resolve`, DO=0 vs DO=1; then the same names again
    (the memoized denial)."""
    import random

    import dns.message

    from geostream_dns.adapters.dnssec_keys import first_keys, signing_of
    from geostream_dns.config.loader import load_zone_text
    from geostream_dns.core.build import build_snapshot
    from geostream_dns.core.resolve import resolve
    from geostream_dns.core.world import World

    zone = load_zone_text(signed_zone_text(), "zones/example.com.yaml")
    assert zone.dnssec is not None
    signing = signing_of(first_keys(zone.origin, zone.dnssec, int(time.time()), None), None,
                         time.time())
    assert signing is not None
    out: dict[str, Any] = {}
    rng = random.Random(7)
    for do in (False, True):
        world = World.create(build_snapshot([zone], 1, signing={zone.origin: signing}))
        queries = []
        for _ in range(count):
            label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12))
            queries.append(dns.message.make_query(f"{label}.example.com.", "A", use_edns=0,
                                                  want_dnssec=do).to_wire())
        for run in ("new", "again"):
            started = time.perf_counter()
            for data in queries:
                resolve(data, "127.0.0.1", world)
            out[f"{run}_{'do' if do else 'plain'}_us"] = round(
                (time.perf_counter() - started) / count * 1e6, 1)
    out["signing_us"] = round(out["new_do_us"] - out["new_plain_us"], 1)
    return out


def build_cost(zones_count: int) -> dict[str, Any]:
    """Seconds to build `zones_count` small zones, signed and unsigned."""
    from geostream_dns.adapters.dnssec_keys import first_keys, signing_of
    from geostream_dns.config.loader import load_zone_text
    from geostream_dns.core.build import build_snapshot

    template = """zone: z{i}.example.
ttl: 300
soa: {{primary: ns1.example.net., email: hostmaster@example.net, refresh: 7200, retry: 900,
      expire: 1209600, negative_ttl: 300}}
nameservers: [ns1.example.net., ns2.example.net.]
dnssec: {{algorithm: ecdsap256sha256}}
records:
  '': {{type: MX, values: [{{preference: 10, exchange: mail.z{i}.example.}}]}}
  www: {{type: A, values: [192.0.2.1, 192.0.2.2]}}
  mail: {{type: A, value: 192.0.2.3}}
  api: {{type: CNAME, value: www.z{i}.example.}}
  txt: {{type: TXT, value: "v=spf1 -all"}}
"""
    zones = [load_zone_text(template.format(i=i), f"zones/z{i}.example.yaml")
             for i in range(zones_count)]
    now = time.time()
    started = time.perf_counter()
    signing = {}
    for z in zones:
        assert z.dnssec is not None
        found = signing_of(first_keys(z.origin, z.dnssec, int(now), None), None, now)
        assert found is not None
        signing[z.origin] = found
    keys_s = time.perf_counter() - started
    out: dict[str, Any] = {"zones": zones_count, "keys_made_s": round(keys_s, 2)}
    for label, sign in (("unsigned_s", None), ("signed_s", signing)):
        gc.disable()
        started = time.perf_counter()
        snapshot = build_snapshot(zones, 1, signing=sign)
        out[label] = round(time.perf_counter() - started, 2)
        gc.enable()
        out[label.replace("_s", "_answers")] = len(snapshot.answers)
        del snapshot
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5, help="length of each dnsperf run")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the dnsperf runs")
    ap.add_argument("--zones", type=int, default=10_000, help="signed zones to build")
    ap.add_argument("--variants", type=int, default=2000, help="new routed variants to sign")
    ap.add_argument("--skip-load", action="store_true", help="no dnsperf runs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "dnssec.json")
    args = ap.parse_args()
    if not args.skip_load and not shutil.which("dnsperf"):
        print("bench: dnsperf not found (apt-get install dnsperf)", file=sys.stderr)
        return 2
    result: dict[str, Any] = {}
    if not args.skip_load:
        with tempfile.TemporaryDirectory(prefix="bench-dnssec-") as tmp:
            result["load"] = serve_and_load(args, Path(tmp))
        print(json.dumps(result["load"], indent=1), flush=True)
    result["routed_variant"] = variant_cost(args.variants)
    print(json.dumps(result["routed_variant"]), flush=True)
    result["denial"] = denial_cost(args.variants)
    print(json.dumps(result["denial"]), flush=True)
    result["build"] = build_cost(args.zones)
    print(json.dumps(result["build"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"bench: results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
