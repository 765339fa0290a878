"""The import corpus: each file imported, its records counted, served and queried.

How this works: ``manifest.yaml`` lists every file with its import options.
``import_all`` imports each one (as ``geostream-dns import`` does: convert,
then validate with the zone loader). For the loss count, every source is read
a second time by another parser than the importer's (dnspython for BIND and
Route 53 values, octoDNS itself for octoDNS files) into (owner, type, data)
keys; each key must be imported or named in a warning. ``answer_check``
serves the imported zones with the real server (several runs when two files
hold the same zone) and queries every static record set with dnspython,
comparing data and TTL with the source's.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import yaml

from geostream_dns.config.document import document_yaml, zone_document
from geostream_dns.config.folder import file_name
from geostream_dns.config.importers import (
    Imported,
    import_bind,
    import_octodns,
    import_route53,
)
from geostream_dns.config.loader import load_zone_data
from geostream_dns.core.model import RECORD_TYPES, Zone
from geostream_dns.core.snapshot import compile_zone

CORPUS = pathlib.Path(__file__).resolve().parent
Key = tuple[str, str, str]  # (owner, type, data)
Source = dict[tuple[str, str], tuple[int, set[str]]]  # (owner, type) -> (ttl, data)
_DNS_TYPES = {dns.rdatatype.to_text(t) for t in dns.rdatatype.RdataType}  # URLFWD is not one
_NAMED = set(RECORD_TYPES)


@dataclass
class Result:
    fmt: str
    file: pathlib.Path
    imported: Imported | None = None
    zone: Zone | None = None
    error: str = ""
    source: Source = field(default_factory=dict)
    unreadable: int = 0  # source records no parser could read (each named in a warning)

    @property
    def ok(self) -> bool:
        return self.zone is not None

    @property
    def source_keys(self) -> set[Key]:
        return {(o, t, d) for (o, t), (_, data) in self.source.items() for d in data}

    @property
    def warned_keys(self) -> set[Key]:
        assert self.imported is not None
        return {normal(k) for w in self.imported.warnings for k in w.skipped}

    def lost(self) -> set[Key]:
        """Source records neither imported nor named in a warning."""
        assert self.zone is not None
        kept = imported_keys(self.zone)
        aliased = {owner for owner, rtype, _ in kept if rtype in ("ALIAS", "CNAME")}
        warned = self.warned_keys
        warned_sets = {(owner, rtype) for owner, rtype, _ in warned}
        return {k for k in self.source_keys - kept - warned
                if not (k[2].startswith("ALIAS ") and k[0] in aliased)
                and not (k[1] not in _DNS_TYPES and k[:2] in warned_sets)}


def manifest() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text())
    return data


def import_all() -> list[Result]:
    results = []
    for fmt, entries in manifest().items():
        for entry in entries:
            results.append(import_one(fmt, entry))
    return results


def import_one(fmt: str, entry: dict[str, Any]) -> Result:
    path = CORPUS / entry["file"]
    result = Result(fmt, path)
    ns = entry.get("nameservers")
    try:
        if fmt == "bind":
            result.imported = import_bind(path, entry.get("zone"), ns)
        elif fmt == "octodns":
            result.imported = import_octodns(path, entry.get("zone"), ns)
        else:
            checks = entry.get("health_checks")
            result.imported = import_route53(path, entry.get("zone"), ns,
                                             health_checks=CORPUS / checks if checks else None)
        origin = str(result.imported.document["zone"])
        result.zone = load_zone_data(result.imported.document, file_name(origin))
    except Exception as exc:  # noqa: BLE001 - every failure is a figure of the corpus
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    reader = {"bind": bind_source, "octodns": octodns_source, "route53": route53_source}[fmt]
    result.source, result.unreadable = reader(result)
    return result


# -- what each source holds, read by another parser than the importer's -------------


def _key(owner: dns.name.Name | str, rdata: dns.rdata.Rdata) -> tuple[str, str, str]:
    text = owner.to_text() if isinstance(owner, dns.name.Name) else owner
    return text.lower(), dns.rdatatype.to_text(rdata.rdtype), _wire_text(rdata)


def _wire_text(rdata: dns.rdata.Rdata) -> str:
    """Presentation text after a trip through the wire: equal data, equal text."""
    generic = rdata.to_generic()
    return dns.rdata.from_text(dns.rdataclass.IN, rdata.rdtype, generic.to_text()).to_text()


def normal(key: Key) -> Key:
    """A warning's key, its data read and written again like the source keys."""
    owner, rtype, data = key
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rtype, data, origin=dns.name.root,
                                    relativize=False)
    except Exception:  # noqa: BLE001 - a key that is not record data (an alias, a line)
        return key
    return _key(owner, rdata)


def _add(source: Source, owner: Any, ttl: int, rdata: dns.rdata.Rdata) -> None:
    o, t, d = _key(owner, rdata)
    known_ttl, data = source.get((o, t), (ttl, set()))
    data.add(d)
    source[(o, t)] = (min(known_ttl, ttl), data)


@contextmanager
def _cwd(path: pathlib.Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def bind_source(result: Result) -> tuple[Source, int]:
    """dnspython's whole-file reader (``$INCLUDE`` from the file's folder), given the file
    without the lines the importer reported it could not read."""
    assert result.imported is not None and result.zone is not None
    unreadable = {(w.file, w.line) for w in result.imported.warnings
                  if any(k[0] == "?" for k in w.skipped)}
    lines: list[str] = []
    depth = 0  # inside the parentheses of a skipped record
    for i, line in enumerate(result.file.read_text().splitlines(), 1):
        code = line.split(";", 1)[0]
        if (str(result.file), i) in unreadable or depth:
            depth += code.count("(") - code.count(")")
            line = "; skipped"
        lines.append(line)
    for file, line in unreadable - {(str(result.file), i) for i in range(len(lines) + 1)}:
        raise AssertionError(f"{file}:{line}: unreadable line in an included file")
    origin = dns.name.from_text(result.zone.origin)
    with _cwd(result.file.parent):
        zone = dns.zone.from_text("\n".join(lines) + "\n", origin, relativize=False,
                                  check_origin=False, allow_include=True)
    source: Source = {}
    for name, node in zone.nodes.items():
        for rdataset in node.rdatasets:
            for rdata in rdataset:
                _add(source, name, rdataset.ttl, rdata)
    return source, len(unreadable)


def octodns_source(result: Result) -> tuple[Source, int]:
    """octoDNS's own YamlProvider, loading the file into an octoDNS zone."""
    assert result.zone is not None
    from octodns.provider.yaml import YamlProvider
    from octodns.zone import Zone as OctoZone

    with tempfile.TemporaryDirectory() as folder:
        target = pathlib.Path(folder) / file_name(result.zone.origin)
        target.write_text(result.file.read_text())
        provider = YamlProvider("corpus", folder, enforce_order=False, supports_root_ns=True)
        octo = OctoZone(result.zone.origin, [])
        provider.populate(octo, lenient=True)
    source: Source = {}
    for record in octo.records:
        if record._type == "URLFWD":  # not DNS data: a provider's redirect service
            rdatas = [f"URLFWD {v}" for v in record.values]
            key = (record.fqdn.lower(), "URLFWD")
            source[key] = (record.ttl, set(rdatas))
            continue
        for rr in record.to_rrset().rdatas:
            try:
                rdata = dns.rdata.from_text(dns.rdataclass.IN, record._type, rr,
                                            origin=dns.name.root, relativize=False)
            except Exception:  # noqa: BLE001 - octoDNS text dnspython cannot read
                source.setdefault((record.fqdn.lower(), record._type), (record.ttl, set()))
                source[(record.fqdn.lower(), record._type)][1].add(rr)
                continue
            _add(source, record.fqdn, record.ttl, rdata)
    return source, 0


_OCTAL = re.compile(r"\\([0-7]{3})")


def _r53_name(text: str) -> str:
    text = text.strip().rstrip(".") + "."
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text).lower()


def route53_source(result: Result) -> tuple[Source, int]:
    """The export's JSON, with each value read by dnspython."""
    data = json.loads(result.file.read_text())
    source: Source = {}
    for rrset in data["ResourceRecordSets"]:
        owner, rtype = _r53_name(rrset["Name"]), rrset["Type"]
        ttl = int(rrset.get("TTL", 0))
        if "AliasTarget" in rrset:
            target = _r53_name(rrset["AliasTarget"]["DNSName"])
            source.setdefault((owner, rtype), (ttl, set()))[1].add(f"ALIAS {target}")
        if "TrafficPolicyInstanceId" in rrset:
            key = (owner, rtype)
            source.setdefault(key, (ttl, set()))[1].add(
                f"traffic policy {rrset['TrafficPolicyInstanceId']}")
        for record in rrset.get("ResourceRecords") or []:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rtype, record["Value"],
                                        origin=dns.name.root, relativize=False)
            _add(source, owner, ttl, rdata)
    return source, 0


def imported_keys(zone: Zone) -> set[Key]:
    """What the imported zone holds: its record sets, pool values, apex NS and SOA."""
    keys: set[Key] = set()
    for rs in zone.rrsets:
        if rs.alias:
            keys.add((rs.name, "ALIAS", rs.alias))
        for rdata in rs.rdatas:
            keys.add(_key(rs.name, rdata))
        for pool in (rs.routing.pools.values() if rs.routing else ()):
            for value in pool.values:
                keys.add(_key(rs.name, value.rdata))
    for ns in zone.nameservers:
        keys.add((zone.origin, "NS", ns))
    soa = compile_zone(zone).soa.rdatas[0]
    keys.add(_key(zone.origin, soa))
    return keys


# -- serving and asking ---------------------------------------------------------


@dataclass
class Answers:
    asked: int = 0  # source records asked for
    exact: int = 0  # answered with the source's data and TTL
    wrong: list[str] = field(default_factory=list)


def served_sets(result: Result) -> list[tuple[str, str, int, set[str]]]:
    """(owner, type, ttl, data) of every source record set the zone answers statically."""
    assert result.zone is not None
    zone = result.zone
    cuts = [dns.name.from_text(rs.name) for rs in zone.rrsets if rs.rtype == "NS"]
    static = {(rs.name, rs.rtype) for rs in zone.rrsets
              if rs.routing is None and rs.alias is None}
    out = []
    for (owner, rtype), (ttl, data) in sorted(result.source.items()):
        name = dns.name.from_text(owner)
        below = any(name.is_subdomain(c) and not (rtype == "DS" and name == c) for c in cuts)
        if rtype not in _DNS_TYPES:
            continue  # not DNS data (octoDNS URLFWD)
        written = rtype if rtype in _NAMED else f"TYPE{int(dns.rdatatype.from_text(rtype))}"
        if below or (owner, written) not in static:
            continue
        out.append((owner, rtype, ttl, data))
    return out




def batches(results: list[Result]) -> list[list[Result]]:
    """Groups of imported files whose zones differ, to serve together."""
    out: list[list[Result]] = []
    for result in results:
        if not result.ok:
            continue
        for batch in out:
            if all(r.zone.origin != result.zone.origin for r in batch):  # type: ignore[union-attr]
                batch.append(result)
                break
        else:
            out.append([result])
    return out


def write_zones(batch: list[Result], folder: pathlib.Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for result in batch:
        assert result.zone is not None
        (folder / file_name(result.zone.origin)).write_text(
            document_yaml(zone_document(result.zone)))


def ask(host: str, port: int, sets: list[tuple[str, str, int, set[str]]],
        answers: Answers) -> None:
    for owner, rtype, ttl, data in sets:
        query = dns.message.make_query(owner, rtype)
        reply = dns.query.tcp(query, host, port=port, timeout=5)
        got = {r.to_text() for rrset in reply.answer if rrset.rdtype == query.question[0].rdtype
               for r in rrset}
        ttls = {rrset.ttl for rrset in reply.answer if rrset.rdtype == query.question[0].rdtype}
        answers.asked += len(data)
        if got == data and ttls == {ttl}:
            answers.exact += len(data)
        else:
            answers.wrong.append(f"{owner} {rtype}: source {sorted(data)} ttl {ttl}, "
                                 f"served {sorted(got)} ttl {sorted(ttls)}")


def figures(results: list[Result], answers: Answers) -> list[str]:
    lines = []
    for fmt in ("bind", "octodns", "route53"):
        mine = [r for r in results if r.fmt == fmt]
        ok = [r for r in mine if r.ok]
        lines.append(f"{fmt}: {len(ok)}/{len(mine)} files import "
                     f"({100 * len(ok) / max(len(mine), 1):.0f}%)")
        for r in mine:
            if not r.ok:
                lines.append(f"  refused: {r.file.name}: {r.error}")
    ok = [r for r in results if r.ok]
    source = sum(len(r.source_keys) + r.unreadable for r in ok)
    warned = sum(len(r.source_keys & r.warned_keys) + r.unreadable for r in ok)
    lost = sum(len(r.lost()) for r in ok)
    lines.append(f"records: {source} in the sources, {source - warned - lost} imported, "
                 f"{warned} skipped with a warning, {lost} lost silently")
    share = 100 * answers.exact / max(answers.asked, 1)
    lines.append(f"answers: {answers.exact}/{answers.asked} static records answered exactly as "
                 f"in the source ({share:.1f}%)")
    return lines


def by_file(results: list[Result]) -> dict[str, Result]:
    return {str(r.file.relative_to(CORPUS)): r for r in results}
