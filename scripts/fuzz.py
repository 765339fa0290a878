#!/usr/bin/env python3
"""`make fuzz`: run every fuzz target (fuzz/targets.py) for a bounded time.

How this works: each target runs in its own process under atheris/libFuzzer
for FUZZ_SECONDS (`--seconds`), starting from a corpus seeded with real
inputs (DNS queries built with dnspython — EDNS, ECS, cookies, NSID, DO,
CH TXT —, the sample zone files, the import corpus) and grown by the fuzzer
in fuzz-corpus/<target>/. A crash, a hang (`-timeout` seconds for one input)
or running out of memory leaves an artifact in fuzz-artifacts/<target>/;
copy it to tests/fuzz_regressions/<target>/ once fixed, where the test suite
replays it through the same check. Prints executions and findings per
target and writes them to fuzz-artifacts/summary.json; exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = ("wire", "resolve", "zone_loader", "yaml", "import_bind", "import_octodns",
           "import_route53")


def dns_seeds() -> list[bytes]:
    import dns.edns
    import dns.message
    import dns.rdataclass

    seeds = []
    for name, rdtype in (("www.example.com", "A"), ("example.com", "SOA"),
                         ("nothing.example.com", "AAAA"), ("example.org", "ANY"),
                         ("static.example.com", "TXT"), ("example.net", "NS")):
        seeds.append(dns.message.make_query(name, rdtype, use_edns=False).to_wire())
        seeds.append(dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=True,
                                            payload=1232).to_wire())
        ecs = dns.edns.ECSOption("81.2.69.0", 24)
        seeds.append(dns.message.make_query(name, rdtype, use_edns=0,
                                            options=[ecs]).to_wire())
        cookie = dns.edns.GenericOption(dns.edns.COOKIE, bytes(range(8)))
        seeds.append(dns.message.make_query(name, rdtype, use_edns=0,
                                            options=[cookie]).to_wire())
        full_cookie = dns.edns.GenericOption(dns.edns.COOKIE, bytes(range(24)))
        nsid = dns.edns.GenericOption(dns.edns.NSID, b"")
        seeds.append(dns.message.make_query(name, rdtype, use_edns=0,
                                            options=[full_cookie, nsid]).to_wire())
    for name in ("id.server", "hostname.bind", "version.bind"):
        seeds.append(dns.message.make_query(name, "TXT", rdclass=dns.rdataclass.CH).to_wire())
    return seeds


def seed(target: str, corpus: pathlib.Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return 0
    files: list[bytes] = []
    if target in ("wire", "resolve"):
        files = dns_seeds()
        if target == "resolve":  # first byte: client and transport
            files = [bytes([i * 37 % 256]) + q for i, q in enumerate(files)]
    elif target in ("zone_loader", "yaml"):
        files = [p.read_bytes() for p in sorted((ROOT / "zones").glob("*.yaml"))]
    else:
        kind = target.removeprefix("import_")
        files = [p.read_bytes() for p in sorted((ROOT / "tests" / "import_corpus" / kind)
                                                   .rglob("*")) if p.is_file()]
    for i, data in enumerate(files):
        (corpus / f"seed-{i:03d}").write_bytes(data)
    return len(files)


def run(target: str, seconds: int, out: pathlib.Path) -> dict[str, object]:
    corpus = ROOT / "fuzz-corpus" / target
    seeded = seed(target, corpus)
    artifacts = out / target
    artifacts.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in artifacts.iterdir()}
    cmd = [sys.executable, str(ROOT / "fuzz" / "targets.py"), target,
           f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048",
           "-max_len=8192", "-print_final_stats=1", f"-artifact_prefix={artifacts}/",
           str(corpus)]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                              cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})
        log, code = proc.stderr + proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        log, code = str(exc.stderr or ""), -1
    took = time.monotonic() - started
    (artifacts / "last-run.log").write_text(log)
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log) or re.findall(
        r"Done (\d+) runs", log)
    found = sorted(p.name for p in artifacts.iterdir()
                   if p.name not in before and p.name.startswith(("crash-", "timeout-",
                                                                  "oom-", "leak-")))
    cov = re.findall(r"cov: (\d+)", log)
    return {"target": target, "executions": int(runs[-1]) if runs else 0,
            "seconds": round(took, 1), "exit": code, "findings": found,
            "corpus": sum(1 for _ in corpus.iterdir()), "seeded": seeded,
            "coverage": int(cov[-1]) if cov else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int,
                        default=int(os.environ.get("FUZZ_SECONDS", "30")),
                        help="per target (FUZZ_SECONDS, default 30)")
    parser.add_argument("--target", action="append", choices=TARGETS,
                        help="only these targets (repeatable; default all)")
    args = parser.parse_args()
    if args.seconds < 1 or args.seconds > 86_400:
        parser.error("--seconds must be 1..86400")
    out = ROOT / "fuzz-artifacts"
    results = []
    for target in args.target or TARGETS:
        result = run(target, args.seconds, out)
        results.append(result)
        status = "OK" if not result["findings"] and result["exit"] == 0 else "FOUND"
        print(f"{target:15} {result['executions']:>10,} runs in {result['seconds']:>6} s  "
              f"coverage {result['coverage']}  corpus {result['corpus']}  {status} "
              f"{' '.join(result['findings'])}", flush=True)  # type: ignore[arg-type]
    (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    if any(r["findings"] or r["exit"] != 0 for r in results):
        print(f"findings in {out}/<target>/ (each run's output in last-run.log)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
