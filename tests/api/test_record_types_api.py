"""Every record type through `PUT` and `GET /v1/zones/{zone}`: what is written is read
back the same, and answered as written."""

from __future__ import annotations

import asyncio
import json
import pathlib

import dns.message
import dns.rcode
import dns.rdatatype

from geostream_dns.config.document import zone_document
from geostream_dns.core.resolve import resolve
from tests.api.helpers import http, json_body, make_app, serving
from tests.config.helpers import load, records
from tests.config.test_record_types import EVERY_TYPE, PRESENTATION

TOKEN = {"Authorization": "Bearer t0ken"}


def answer(app: object, name: str, rtype: str) -> list[str]:
    query = dns.message.make_query(name, rtype)
    reply, _ = resolve(query.to_wire(), "127.0.0.1", app.world)  # type: ignore[attr-defined]
    message = dns.message.from_wire(reply)
    want = dns.rdatatype.from_text(rtype)
    return sorted(r.to_text() for rrset in message.answer if rrset.rdtype == want
                  for r in rrset)


def test_every_type_round_trips_through_the_api(zones_dir: pathlib.Path) -> None:
    text = records(EVERY_TYPE)
    expected = zone_document(load(text))

    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        async with serving(app) as (_, port):
            put = await http(port, "PUT", "/v1/zones/example.com",
                             {**TOKEN, "Content-Type": "application/yaml"}, text.encode())
            assert put[0] == 200, put
            got = json_body(await http(port, "GET", "/v1/zones/example.com"))
            assert got == json.loads(json.dumps(expected))
            again = json_body(await http(port, "PUT", "/v1/zones/example.com",
                                         {**TOKEN, "Content-Type": "application/json"},
                                         json.dumps(got).encode()))
            assert again["changed"] is False
            for (name, rtype), data in PRESENTATION.items():
                if name.startswith("sub."):
                    continue  # at the delegation: a referral (DS aside)
                assert answer(app, name, rtype) == sorted(data), (name, rtype)
            assert answer(app, "sub.example.com.", "DS") == sorted(
                PRESENTATION[("sub.example.com.", "DS")])

    asyncio.run(scenario())


ALIASES = """\
'@':
  - {type: ALIAS, ttl: 600, value: www.example.com.}
  - {type: TXT, value: apex}
www: {type: A, ttl: 60, value: 192.0.2.10}
cdn: {type: ALIAS, value: d111111abcdef8.cloudfront.example.net.}
"""


def test_alias_records_round_trip_through_the_api(zones_dir: pathlib.Path) -> None:
    text = records(ALIASES)
    expected = zone_document(load(text))

    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        async with serving(app) as (_, port):
            put = await http(port, "PUT", "/v1/zones/example.com",
                             {**TOKEN, "Content-Type": "application/yaml"}, text.encode())
            assert put[0] == 200, put
            got = json_body(await http(port, "GET", "/v1/zones/example.com"))
            assert got == json.loads(json.dumps(expected))
            by_name = got["records"]
            assert {"type": "ALIAS", "ttl": 600, "value": "www.example.com."} in (
                by_name.get("") or by_name.get("@"))
            assert "d111111abcdef8.cloudfront.example.net." in json.dumps(by_name)
            again = json_body(await http(port, "PUT", "/v1/zones/example.com",
                                         {**TOKEN, "Content-Type": "application/json"},
                                         json.dumps(got).encode()))
            assert again["changed"] is False
            await app.reload()
            # the in-zone ALIAS answers with its target's TTL (60), not its own (600)
            query = dns.message.make_query("example.com.", "A")
            reply, _ = resolve(query.to_wire(), "127.0.0.1", app.world)
            assert reply is not None
            message = dns.message.from_wire(reply)
            assert [(r.ttl, [x.to_text() for x in r]) for r in message.answer] == [
                (60, ["192.0.2.10"])]
            # the external target is not resolved by this app (no resolver): SERVFAIL
            query = dns.message.make_query("cdn.example.com.", "A")
            reply, _ = resolve(query.to_wire(), "127.0.0.1", app.world)
            assert reply is not None
            assert dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL

    asyncio.run(scenario())
