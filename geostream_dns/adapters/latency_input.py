"""Latency measurements as they arrive: JSON batches and CSV files, strictly checked.

A sample names a client (a prefix such as ``81.2.69.0/24``, an address, or a
geo code such as ``EU-GB``; in a JSON batch it may be left out, and then the
address the batch came from is the client), a region the loaded zones know,
a round trip in milliseconds and, optionally, how many samples it stands for.
A batch is all or nothing: any bad sample rejects the whole batch, and every
problem is reported with where it is (``samples[3].rtt_ms`` in JSON, the line
number in CSV).

`expand` turns a checked sample into rows for the latency table: one per key
it counts for (its /24 or /48 and that network's GeoIP keys; a geo code and
the wider codes above it).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import math
import re
import socket
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from geostream_dns.core.geo import GeoLocator
from geostream_dns.core.latency import LatencyKey, geo_keys, net_key

MAX_BATCH = 10_000  # samples in one POST
MAX_RTT_MS = 60_000.0
MAX_COUNT = 1_000_000
CSV_HEADER = ("client", "region", "rtt_ms", "samples")
CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
_GEO = re.compile(r"^([A-Z]{2})(?:-([A-Z]{2})(?:-([A-Z0-9]{1,3}))?)?$")
YIELD_EVERY = 256  # samples checked between GIL yields (answering goes on meanwhile)


@dataclass(frozen=True, slots=True)
class Sample:
    client: bytes | tuple[str, ...]  # packed /24 or /48 network address, or geo keys
    region: str
    rtt_ms: float
    count: int


class BadInput(ValueError):
    """A batch or file with problems; `problems` lists each, located."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s): {problems[0]}")
        self.problems = problems


def _fast_v4(text: str) -> bytes | None:
    """The /24 key of `a.b.c.d` or `a.b.c.d/nn` (nn >= 24) the quick way, else None."""
    address, _, length = text.partition("/")
    if length and not (length.isdigit() and 24 <= int(length) <= 32):
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, address)
    except OSError:
        return None
    return packed[:3]


def parse_client(text: str) -> bytes | tuple[str, ...]:
    """A client as a /24 (/48) network key, or a geo code with its wider codes."""
    if text[:1].isdigit():
        quick = _fast_v4(text)
        if quick is not None:
            return quick
    code = text.strip()
    match = _GEO.match(code)
    if match is not None:
        continent, country, subdivision = match.groups()
        if continent not in CONTINENTS:
            raise ValueError(f'"{continent}" is not a continent code ({" ".join(CONTINENTS)})')
        return geo_keys(continent, country, subdivision)
    try:
        network = ipaddress.ip_network(code, strict=False)
    except ValueError:
        raise ValueError(f'"{text}" is not a prefix like 81.2.69.0/24, an address or a geo '
                         "code like EU-GB") from None
    least = 24 if network.version == 4 else 48
    if network.prefixlen < least:
        raise ValueError(f'"{text}" is wider than /{least}; give /{least} or longer, or a geo '
                         "code for a wider area")
    address = network.network_address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return net_key(address.ipv4_mapped.packed)
    return net_key(address.packed)


def _rtt(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of milliseconds, got {value!r}")
    rtt = float(value)
    if not math.isfinite(rtt) or not 0 < rtt <= MAX_RTT_MS:
        raise ValueError(f"{value!r} is not in (0, {MAX_RTT_MS:g}] ms")
    return rtt


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ValueError(f"{value!r} is not a whole number in 1..{MAX_COUNT}")
    return value


def _region(value: Any, regions: Collection[str] | None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a region name, got {value!r}")
    if regions is not None and value not in regions:
        raise ValueError(f'unknown region "{value}"')
    return value


def check_batch(body: Any, regions: Collection[str], peer: str | None) -> list[Sample]:
    """A JSON batch `{"samples": [...]}` -> samples; BadInput lists every problem."""
    problems: list[str] = []
    if not isinstance(body, dict) or set(body) != {"samples"}:
        raise BadInput(['expected {"samples": [{"client": ..., "region": ..., '
                        '"rtt_ms": ...}, ...]}'])
    items = body["samples"]
    if not isinstance(items, list) or not items:
        raise BadInput(["samples: expected a non-empty list"])
    if len(items) > MAX_BATCH:
        raise BadInput([f"samples: {len(items)} samples; at most {MAX_BATCH} per batch"])
    out: list[Sample] = []
    known = frozenset(regions)
    for i, item in enumerate(items):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            time.sleep(0)
        # the common case, checked quickly; anything else gets the full check below
        if type(item) is dict and 2 <= len(item) <= 4:
            client_text = item.get("client", peer)
            region, rtt, count = item.get("region"), item.get("rtt_ms"), item.get("samples", 1)
            if (type(client_text) is str and region in known
                    and (type(rtt) is float or type(rtt) is int) and 0 < rtt <= MAX_RTT_MS
                    and type(count) is int and 1 <= count <= MAX_COUNT
                    and len(item) == 2 + ("client" in item) + ("samples" in item)):
                try:
                    client = parse_client(client_text)
                except ValueError:
                    pass
                else:
                    out.append(Sample(client, region, float(rtt), count))
                    continue
        _check_sample(item, f"samples[{i}]", known, peer, problems, out)
    if problems:
        raise BadInput(problems)
    return out


def _check_sample(item: Any, where: str, regions: Collection[str], peer: str | None,
                  problems: list[str], out: list[Sample]) -> None:
    """The full check of one sample: every problem, located."""
    if not isinstance(item, dict):
        problems.append(f"{where}: expected an object")
        return
    before = len(problems)
    for key in sorted(set(item) - {"client", "region", "rtt_ms", "samples"}):
        problems.append(f"{where}.{key}: unknown key")
    for key in ("region", "rtt_ms"):
        if key not in item:
            problems.append(f"{where}.{key}: missing required key")
    client: bytes | tuple[str, ...] | None = None
    client_text = item.get("client", peer)
    if not isinstance(client_text, str):
        problems.append(f"{where}.client: missing, and the sender's address is unknown"
                        if client_text is None else
                        f"{where}.client: expected a prefix, an address or a geo code")
    else:
        try:
            client = parse_client(client_text)
        except ValueError as exc:
            problems.append(f"{where}.client: {exc}")
    values: list[Any] = []
    for key, check in (("region", lambda v: _region(v, regions)), ("rtt_ms", _rtt),
                       ("samples", _count)):
        if key not in item and key != "samples":
            continue
        try:
            values.append(check(item.get(key, 1)))
        except ValueError as exc:
            problems.append(f"{where}.{key}: {exc}")
    if len(problems) == before and client is not None:
        out.append(Sample(client, values[0], values[1], values[2]))


def check_csv(text: str, regions: Collection[str] | None, first_line: int = 1,
              source: str = "") -> list[Sample]:
    """A CSV file with the header `client,region,rtt_ms,samples` -> samples; BadInput
    names the line (counted from `first_line`) of every problem. `regions` None:
    any region name (the server that takes the file checks them)."""
    where = f"{source}:" if source else "line "
    problems: list[str] = []
    out: list[Sample] = []
    reader = csv.reader(io.StringIO(text))
    header_seen = first_line > 1
    for n, row in enumerate(reader):
        if n % YIELD_EVERY == YIELD_EVERY - 1:
            time.sleep(0)
        line = first_line + reader.line_num - 1
        if not header_seen:
            header_seen = True
            cells = tuple(c.strip().lower() for c in row)
            if cells not in (CSV_HEADER, CSV_HEADER[:3]):
                problems.append(f"{where}{line}: expected the header "
                                f"{','.join(CSV_HEADER)}, got {','.join(row)!r}")
                break
            continue
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) not in (3, 4):
            problems.append(f"{where}{line}: expected 3 or 4 columns "
                            f"(client,region,rtt_ms[,samples]), got {len(row)}")
            continue
        client_text, region_text, rtt_text = (c.strip() for c in row[:3])
        count_text = row[3].strip() if len(row) == 4 else ""
        try:
            client = parse_client(client_text)
            region = _region(region_text, regions)
            try:
                rtt_value: Any = float(rtt_text)
            except ValueError:
                raise ValueError(f"rtt_ms: {rtt_text!r} is not a number") from None
            rtt = _rtt(rtt_value)
            count = _count(int(count_text)) if count_text else 1
        except ValueError as exc:
            problems.append(f"{where}{line}: {exc}")
            continue
        out.append(Sample(client, region, rtt, count))
    else:
        if not header_seen:
            problems.append(f"{where}{first_line}: empty file; expected the header "
                            f"{','.join(CSV_HEADER)}")
    if problems:
        raise BadInput(problems)
    return out


Row = tuple[tuple[LatencyKey, ...], str, float, int]  # keys a sample counts for, region, ms, n


def expand(samples: Iterable[Sample], geo: GeoLocator) -> list[Row]:
    """Rows for the latency table: each sample with every key it counts for."""
    rows: list[Row] = []
    for i, s in enumerate(samples):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            time.sleep(0)
        client = s.client
        if isinstance(client, bytes):
            address = client + bytes((4 if len(client) == 3 else 16) - len(client))
            loc = geo.locate(address)
            keys: tuple[LatencyKey, ...] = (client, *geo_keys(loc.continent, loc.country,
                                                               loc.subdivision))
        else:
            keys = client
        rows.append((keys, s.region, s.rtt_ms, s.count))
    return rows


def encode_rows(rows: list[Row]) -> bytes:
    """Rows as JSON for the fleet's stream (network keys as `#` + hex)."""
    return json.dumps([[[_key_text(k) for k in keys], region, rtt, count]
                       for keys, region, rtt, count in rows], separators=(",", ":")).encode()


def decode_rows(data: bytes) -> list[Row]:
    rows: list[Row] = []
    for i, (keys, region, rtt, count) in enumerate(json.loads(data)):
        if i % YIELD_EVERY == YIELD_EVERY - 1:
            time.sleep(0)
        rows.append((tuple(_key_of(k) for k in keys), str(region), float(rtt), int(count)))
    return rows


def _key_text(key: LatencyKey) -> str:
    return "#" + key.hex() if isinstance(key, bytes) else key


def _key_of(text: str) -> LatencyKey:
    if text.startswith("#"):
        raw = bytes.fromhex(text[1:])
        if len(raw) not in (3, 6):
            raise ValueError(f"bad network key {text!r}")
        return raw
    if not text or len(text) > 16:
        raise ValueError(f"bad key {text!r}")
    return text
