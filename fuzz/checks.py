"""The fuzz targets' checks, without the fuzzer: what each target feeds to the
real code and what must never happen (see fuzz/targets.py). tests/fuzz_regressions
replays saved inputs through these same functions."""

from __future__ import annotations

import functools
import pathlib
import random
import tempfile
from collections.abc import Callable

import dns.exception
import dns.message

from geostream_dns.config import yamlpos
from geostream_dns.config.importers import (
    ConvertError,
    import_bind,
    import_octodns,
    import_route53,
)
from geostream_dns.config.loader import load_zone_data, load_zone_text
from geostream_dns.core import wire
from geostream_dns.core.resolve import resolve
from geostream_dns.errors import ConfigError, WireError

ROOT = pathlib.Path(__file__).resolve().parents[1]


@functools.cache
def sample_world() -> object:
    """The sample zones with the bundled GeoIP database: a real, routed world."""
    from geostream_dns.adapters.geoip import open_reader, raw_lookup
    from geostream_dns.config.loader import load_zones_dir
    from geostream_dns.core.build import build_snapshot
    from geostream_dns.core.geo import GeoLocator
    from geostream_dns.core.world import World

    zones, problems = load_zones_dir([ROOT / "zones"])
    assert zones and not problems, problems
    return World.create(build_snapshot(zones, 1), geo=GeoLocator(raw_lookup(open_reader(None))),
                        rng=random.Random(1))


CLIENTS = ("127.0.0.1", "192.0.2.1", "81.2.69.142", "2001:db8::1", "::1", "175.16.199.1")


def check_reply(query: bytes, reply: bytes | None) -> None:
    """What every reply must be: a DNS message answering this query."""
    if reply is None:
        return
    if len(query) >= 2 and reply[:2] != query[:2]:
        raise AssertionError("reply ID differs from the query's")
    if len(reply) < 12 or not reply[2] & 0x80:
        raise AssertionError("reply without QR=1 or shorter than a header")
    try:
        dns.message.from_wire(reply, ignore_trailing=False)
    except dns.message.UnknownTSIGKey:  # pragma: no cover - never in a reply of ours
        raise
    except dns.exception.DNSException as exc:
        if query_is_parseable(query):  # a good query must get a fully valid reply
            raise AssertionError(f"reply to a valid query does not parse: {exc!r}") from exc


def query_is_parseable(query: bytes) -> bool:
    try:
        dns.message.from_wire(query)
    except Exception:  # noqa: BLE001 - anything dnspython refuses
        return False
    return True


def fuzz_resolve(data: bytes) -> None:
    """Any bytes from any client, over UDP or TCP: a reply or silence, never an error."""
    if not data:
        return
    selector, query = data[0], data[1:]
    client = CLIENTS[selector % len(CLIENTS)]
    reply, _outcome = resolve(query, client, sample_world(), bool(selector & 0x80))  # type: ignore[arg-type]
    check_reply(query, reply)


def fuzz_wire(data: bytes) -> None:
    """The hand parser: header, question, OPT, ECS (and any option, cookies too)."""
    try:
        query = wire.parse_query(data)
    except WireError:
        pass
    else:
        if query.edns is not None:
            wire.udp_limit(query.edns)
            if query.edns.ecs is not None:
                if not 0 <= query.edns.ecs.source_prefix <= 128:
                    raise AssertionError("ECS source prefix out of range")
    try:
        wire.read_name(data, 0)
    except WireError:
        pass
    try:
        wire.parse_ecs(data)
    except WireError:
        pass


def fuzz_zone_loader(data: bytes) -> None:
    """A zone file's text: a Zone or a ConfigError with located problems."""
    text = data.decode("utf-8", "replace")
    try:
        load_zone_text(text, "fuzz/example.com.yaml")
    except ConfigError as exc:
        if not exc.problems:
            raise AssertionError("ConfigError without a problem") from exc


def _imported(convert: Callable[..., object], suffix: str, data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    with tempfile.TemporaryDirectory(dir=_tmp()) as folder:
        path = pathlib.Path(folder) / f"example.com.{suffix}"
        path.write_text(text)
        try:
            imported = convert(path, None, ["ns1.example.com."], text=text)
        except ConvertError:
            return
        document = imported.document  # type: ignore[attr-defined]
        try:
            load_zone_data(document, "fuzz/example.com.yaml")  # what `import` does next
        except ConfigError:
            pass


@functools.cache
def _tmp() -> str:
    shm = pathlib.Path("/dev/shm")
    return str(shm) if shm.is_dir() else tempfile.gettempdir()


def fuzz_import_bind(data: bytes) -> None:
    _imported(import_bind, "zone", data)


def fuzz_import_octodns(data: bytes) -> None:
    _imported(import_octodns, "yaml", data)


def fuzz_import_route53(data: bytes) -> None:
    _imported(import_route53, "json", data)


def fuzz_yaml(data: bytes) -> None:
    """The position-keeping YAML loader and its guard alone."""
    try:
        yamlpos.load(data.decode("utf-8", "replace"))
    except yamlpos.yaml.YAMLError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "resolve": fuzz_resolve,
    "wire": fuzz_wire,
    "zone_loader": fuzz_zone_loader,
    "yaml": fuzz_yaml,
    "import_bind": fuzz_import_bind,
    "import_octodns": fuzz_import_octodns,
    "import_route53": fuzz_import_route53,
}


