"""Hypothesis strategies: valid zone documents in the many shapes people write them,
every record type included.

Valid by construction (the test checks that too): no record types beside a
CNAME, one delegation at most (out-of-zone name servers, so no glue, and its
DS records), nameservers outside the zone, routing only on A records with
every rule after the last catch-all left out, an apex ALIAS to an in-zone name
that has an address or to a name outside every zone. Shapes vary on purpose —
``value`` or ``values``, one record or a list under a label, '@' or '',
upper-case labels, TXT as a string or a list of strings, durations as ``5s``,
``500ms`` or numbers, defaults written out or not — so the round trip has
something to normalise.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

TTL = st.integers(0, 2**31 - 1)
LABEL = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,8}", fullmatch=True)
TARGET = LABEL.map(lambda label: f"{label.lower()}.example.net.")
# TXT and CAA text: anything but U+0000, which PostgreSQL's jsonb cannot hold.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
               max_size=300)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
COORD_LAT = st.floats(-90, 90)
COORD_LON = st.floats(-180, 180)
KM = st.floats(-20000, 20000) | st.integers(-20000, 20000)
GEOS = st.sampled_from(["EU", "NA", "AS", "EU-DE", "EU-FR", "NA-US", "NA-US-CA", "OC-AU"])
SUBNETS = st.sampled_from(["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "198.51.100.128/25"])


def one_or_many(draw: Any, values: list[Any], key_single: str = "value") -> dict[str, Any]:
    if len(values) == 1 and draw(st.booleans()):
        return {key_single: values[0]}
    return {"values": values}


HEX = st.integers(1, 40).flatmap(lambda n: st.binary(min_size=n, max_size=n)).map(bytes.hex)
B64 = st.binary(min_size=1, max_size=40).map(lambda b: __import__("base64").b64encode(b).decode())
U8, U16 = st.integers(0, 255), st.integers(0, 65535)
TARGET_OR_ROOT = TARGET | st.just(".")
# One record of several character-strings (DNS-SD): each at most 255 bytes.
STRINGS = st.lists(st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
                           max_size=60), min_size=2, max_size=4)


def _digest(size: int) -> Any:
    return st.binary(min_size=size, max_size=size).map(bytes.hex)


def _generic(data: bytes) -> str:
    return f"\\# {len(data)} {data.hex()}" if data else "\\# 0"


STRUCTURED: dict[str, Any] = {
    "SSHFP": st.sampled_from([(1, 20), (2, 32)]).flatmap(lambda t: st.fixed_dictionaries({
        "algorithm": st.integers(1, 4), "fingerprint_type": st.just(t[0]),
        "fingerprint": _digest(t[1])})),
    "TLSA": st.sampled_from([(0, HEX), (1, _digest(32)), (2, _digest(64))]).flatmap(
        lambda t: st.fixed_dictionaries({
            "certificate_usage": st.integers(0, 3), "selector": st.integers(0, 1),
            "matching_type": st.just(t[0]), "certificate_association_data": t[1]})),
    "NAPTR": st.fixed_dictionaries({
        "order": U16, "preference": U16, "flags": st.sampled_from(["S", "A", "U", ""]),
        "service": st.from_regex(r"[A-Za-z0-9+:]{0,12}", fullmatch=True),
        "regexp": st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        "replacement": TARGET_OR_ROOT}),
    "URI": st.fixed_dictionaries({
        "priority": U16, "weight": U16,
        "target": st.from_regex(r"https?://[a-z]{1,10}\.example\.com/[a-z]{0,5}",
                                fullmatch=True)}),
    "LOC": st.fixed_dictionaries({
        "lat_degrees": st.integers(0, 89), "lat_minutes": st.integers(0, 59),
        "lat_seconds": st.integers(0, 59999).map(lambda ms: ms / 1000),
        "lat_direction": st.sampled_from(["N", "S"]),
        "long_degrees": st.integers(0, 179), "long_minutes": st.integers(0, 59),
        "long_seconds": st.integers(0, 59999).map(lambda ms: ms / 1000),
        "long_direction": st.sampled_from(["E", "W"]),
        "altitude": st.integers(-10000000, 100000000).map(lambda cm: cm / 100),
        "size": st.sampled_from([0, 1, 10, 100]),
        "precision_horz": st.sampled_from([0, 10, 10000]),
        "precision_vert": st.sampled_from([0, 10, 100])}),
    "DS": st.sampled_from([(1, 20), (2, 32)]).flatmap(lambda t: st.fixed_dictionaries({
        "key_tag": U16, "algorithm": st.sampled_from([8, 13, 15]),
        "digest_type": st.just(t[0]), "digest": _digest(t[1])})),
    "HTTPS": st.one_of(
        st.fixed_dictionaries({"svcpriority": st.just(0), "targetname": TARGET}),
        st.fixed_dictionaries({
            "svcpriority": st.integers(1, 65535), "targetname": TARGET_OR_ROOT,
            "svcparams": st.fixed_dictionaries({}, optional={
                "alpn": st.lists(st.sampled_from(["h2", "h3", "http/1.1"]), min_size=1,
                                 unique=True),
                "port": U16,
                "ipv4hint": st.lists(IPV4, min_size=1, max_size=2),
                "key65000": st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True)})})),
    "CERT": B64.map(lambda b: f"PGP 0 0 {b}"),
    "OPENPGPKEY": B64,
    "HINFO": st.tuples(*[st.from_regex(r"[A-Za-z0-9-]{1,10}", fullmatch=True)] * 2).map(
        lambda t: f'"{t[0]}" "{t[1]}"'),
    "RP": st.tuples(TARGET, TARGET).map(" ".join),
}
STRUCTURED["SMIMEA"] = STRUCTURED["TLSA"]
STRUCTURED["SVCB"] = STRUCTURED["HTTPS"]
# Types a label may hold besides A, AAAA, TXT, MX, SRV, CAA and PTR.
MORE_TYPES = [*STRUCTURED.keys() - {"DS"}, "SPF", "TYPE65280", "TYPE49"]


@st.composite
def rdata_values(draw: Any, rtype: str) -> list[Any]:
    strategy: Any = {
        "A": IPV4,
        "AAAA": IPV6,
        "TXT": TEXT | STRINGS,
        "SPF": TEXT,
        "TYPE65280": st.binary(max_size=30).map(_generic),
        "TYPE49": st.binary(min_size=1, max_size=30).map(_generic),
        "PTR": TARGET,
        **STRUCTURED,
        "MX": st.fixed_dictionaries({"preference": st.integers(0, 65535), "exchange": TARGET}),
        "SRV": st.fixed_dictionaries({"priority": st.integers(0, 65535),
                                      "weight": st.integers(0, 65535),
                                      "port": st.integers(0, 65535), "target": TARGET}),
        "CAA": st.fixed_dictionaries({
            "flags": st.integers(0, 255),
            "tag": st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
            "value": TEXT}),
    }[rtype]
    values = draw(st.lists(strategy, min_size=1, max_size=3, unique_by=_identity(rtype)))
    return list(values)


def _identity(rtype: str) -> Any:
    import ipaddress
    import json

    if rtype in ("A", "AAAA"):
        return lambda v: ipaddress.ip_address(v)
    if rtype in ("TXT", "SPF"):
        return lambda v: json.dumps(v)
    return lambda v: json.dumps(v, sort_keys=True).lower()


@st.composite
def healthcheck(draw: Any) -> dict[str, Any]:
    protocol = draw(st.sampled_from(["http", "https", "tcp"]))
    check: dict[str, Any] = {"protocol": protocol}
    if protocol == "tcp" or draw(st.booleans()):
        check["port"] = draw(st.integers(1, 65535))
    if protocol != "tcp":
        if draw(st.booleans()):
            check["path"] = "/" + draw(st.from_regex(r"[a-z]{0,8}", fullmatch=True))
        if draw(st.booleans()):
            check["host"] = draw(TARGET).rstrip(".")
        if draw(st.booleans()):
            expect: dict[str, Any] = {}
            if draw(st.booleans()):
                expect["status"] = draw(st.lists(st.integers(100, 599), min_size=1, max_size=3))
            if draw(st.booleans()):
                expect["body_contains"] = draw(TEXT.filter(bool))
            check["expect"] = expect
    if protocol == "https" and draw(st.booleans()):
        check["verify_tls"] = draw(st.booleans())
    seconds = draw(st.integers(1, 60))
    if draw(st.booleans()):
        check["interval"] = draw(st.sampled_from([f"{seconds}s", seconds, float(seconds)]))
        ms = draw(st.integers(1, seconds * 1000 - 1))  # "3000ms" is 3.0000000000000004 s
        if draw(st.booleans()):
            check["timeout"] = draw(st.sampled_from([f"{ms}ms", ms / 1000]))
    for key in ("rise", "fall"):
        if draw(st.booleans()):
            check[key] = draw(st.integers(1, 100))
    return check


@st.composite
def routing(draw: Any, regions: list[str], checks: list[str], has_values: bool) -> dict[str, Any]:
    names = [f"p{i}" for i in range(draw(st.integers(1, 3)))]
    pools: dict[str, Any] = {}
    for name in names:
        pool: dict[str, Any] = {}
        if regions and draw(st.booleans()):
            pool["region"] = draw(st.sampled_from(regions))
        if draw(st.booleans()):
            pool["answer"] = draw(st.sampled_from(["weighted", "all", "multivalue"]))
        values = []
        for address in draw(st.lists(IPV4, min_size=1, max_size=3, unique=True)):
            if draw(st.booleans()):
                values.append(address)
                continue
            item: dict[str, Any] = {"value": address}
            if draw(st.booleans()):
                item["weight"] = draw(st.integers(1, 100))
            if checks and draw(st.booleans()):
                item["healthcheck"] = draw(st.sampled_from(checks))
            if draw(st.booleans()):
                item["status"] = draw(st.sampled_from(["up", "down", "obey"]))
            values.append(item)
        pool["values"] = values
        others = [n for n in names if n != name]
        if others and draw(st.booleans()):
            pool["fallback"] = draw(st.sampled_from(others))
        pools[name] = pool
    rules: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            rules.append({"geos": draw(st.lists(GEOS, min_size=1, max_size=3, unique=True)),
                          "pool": draw(st.sampled_from(names))})
        else:
            rules.append({"subnets": draw(st.lists(SUBNETS, min_size=1, max_size=2,
                                                   unique=True)),
                          "pool": draw(st.sampled_from(names))})
    located = [n for n in names if "region" in pools[n]]
    if not has_values or not rules or draw(st.booleans()):
        if located and draw(st.booleans()):
            nearest = draw(st.lists(st.sampled_from(located), min_size=1, unique=True))
            rule: dict[str, Any] = {"nearest": nearest}
            biased = draw(st.lists(st.sampled_from(nearest), unique=True))
            if biased:
                rule["bias"] = {n: draw(KM) for n in biased}
            rules.append(rule)
        else:
            rules.append({"pool": draw(st.sampled_from(names))})
    return {"pools": pools, "rules": rules}


@st.composite
def zone_document(draw: Any, origin: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc["zone"] = draw(st.sampled_from([origin, origin.rstrip("."), origin.upper()]))
    doc["ttl"] = draw(TTL)
    doc["soa"] = {"primary": draw(TARGET), "email": f"hostmaster@{origin.rstrip('.')}",
                  "refresh": draw(TTL), "retry": draw(TTL), "expire": draw(TTL),
                  "negative_ttl": draw(TTL)}
    if draw(st.booleans()):
        doc["soa"]["serial"] = draw(st.integers(1, 2**32 - 1))
    doc["nameservers"] = draw(st.lists(TARGET, min_size=1, max_size=3, unique=True))
    region_names = draw(st.lists(st.from_regex(r"[a-z]{2}-[a-z]{2,6}-[1-3]", fullmatch=True),
                                 max_size=3, unique=True))
    if region_names or draw(st.booleans()):
        doc["regions"] = {name: {"lat": draw(COORD_LAT), "lon": draw(COORD_LON)}
                          for name in region_names}
    check_names = draw(st.lists(st.sampled_from(["web", "api", "tcp-check"]), max_size=2,
                                unique=True))
    if check_names:
        doc["healthchecks"] = {name: draw(healthcheck()) for name in check_names}
    records: dict[str, Any] = {}
    addressed: list[str] = []
    labels = draw(st.lists(LABEL, max_size=6, unique_by=str.lower))
    for label in labels:
        if draw(st.booleans()) and draw(st.booleans()):
            label = f"*.{label}"
        if draw(st.integers(0, 5)) == 0:
            entry: dict[str, Any] = {"type": "CNAME", "value": draw(TARGET)}
            if draw(st.booleans()):
                entry["ttl"] = draw(TTL)
            records[label] = entry
            continue
        entries = []
        for rtype in draw(st.lists(st.sampled_from(["A", "AAAA", "TXT", "MX", "SRV", "CAA",
                                                    "PTR", *MORE_TYPES]),
                                   min_size=1, max_size=3, unique=True)):
            entry = {"type": draw(st.sampled_from([rtype, rtype.lower()]))}
            if draw(st.booleans()):
                entry["ttl"] = draw(TTL)
            routed = rtype == "A" and draw(st.integers(0, 2)) == 0
            has_values = not routed or draw(st.booleans())
            if has_values:
                entry.update(one_or_many(draw, draw(rdata_values(rtype))))
            if routed:
                entry["routing"] = draw(routing(region_names, check_names, has_values))
            if rtype in ("A", "AAAA") and not label.startswith("*"):
                addressed.append(label)
            entries.append(entry)
        records[label] = entries if len(entries) > 1 or draw(st.booleans()) else entries[0]
    if draw(st.booleans()):  # a delegation with its DS records
        records["zz-deleg"] = [{"type": "NS", "values": draw(st.lists(TARGET, min_size=1,
                                                                       max_size=2, unique=True))},
                               {"type": "DS", **one_or_many(draw, draw(rdata_values("DS")))}]
    apex: list[dict[str, Any]] = []
    if addressed and draw(st.booleans()):
        apex.append({"type": "ALIAS", "value": f"{draw(st.sampled_from(addressed)).lower()}."
                                               f"{origin}"})
    elif draw(st.booleans()):  # a target outside every hosted zone (a CDN's name)
        apex.append({"type": "ALIAS", "value": draw(TARGET)})
    if draw(st.booleans()):
        apex.append({"type": "TXT", **one_or_many(draw, draw(rdata_values("TXT")))})
    if apex:
        records[draw(st.sampled_from(["@", ""]))] = apex
    if records or draw(st.booleans()):
        doc["records"] = records
    return doc


ORIGINS = ["example.com.", "example.org.", "z1.example.", "sub.example.info."]


@st.composite
def zone_sets(draw: Any) -> dict[str, dict[str, Any]]:
    origins = draw(st.lists(st.sampled_from(ORIGINS), min_size=1, max_size=3, unique=True))
    return {origin: draw(zone_document(origin)) for origin in origins}
