"""`GET/PUT/DELETE /v1/zones/{zone}` in embedded mode: the zone file's shape, located
422 errors, atomic writes into the zones folder, answers live at once."""

from __future__ import annotations

import asyncio
import json
import pathlib

import dns.message
import dns.name
import dns.rdatatype

from geostream_dns.core.resolve import resolve
from tests.api.helpers import http, json_body, make_app, serving

TOKEN = {"Authorization": "Bearer t0ken"}


def answer(app: object, name: str) -> set[str]:
    query = dns.message.make_query(name, "A")
    reply, _ = resolve(query.to_wire(), "127.0.0.1", app.world)  # type: ignore[attr-defined]
    return {r.to_text() for rrset in dns.message.from_wire(reply).answer for r in rrset}


def test_put_get_yaml_and_delete_a_zone(zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        async with serving(app) as (_, port):
            status, _, body = await http(port, "GET", "/v1/zones/example.com?format=yaml")
            assert status == 200 and body.startswith(b"zone: example.com.")
            doc = json_body(await http(port, "GET", "/v1/zones/example.com"))
            doc["records"]["new"] = {"type": "A", "value": "192.0.2.99"}
            result = await http(port, "PUT", "/v1/zones/example.com",
                                {**TOKEN, "Content-Type": "application/json"},
                                json.dumps(doc).encode())
            assert result[0] == 200, result
            written = json_body(result)
            assert written["changed"] is True
            assert written["plan"] == ["+ new.example.com. A: 192.0.2.99"] or \
                any("new.example.com." in line for line in written["plan"])
            assert written["generation"] == app.generation == 2
            assert answer(app, "new.example.com") == {"192.0.2.99"}  # live at once
            on_disk = (zones_dir / "example.com.yaml").read_text()
            assert "192.0.2.99" in on_disk  # written where the zone came from
            # The same document again: nothing to do.
            again = json_body(await http(port, "PUT", "/v1/zones/example.com",
                                         {**TOKEN, "Content-Type": "application/json"},
                                         json.dumps(doc).encode()))
            assert again["changed"] is False and again["plan"] == []

            # A new zone as YAML lands in the zones folder.
            yaml_zone = on_disk.replace("example.com", "example.net")
            created = await http(port, "PUT", "/v1/zones/example.net",
                                 {**TOKEN, "Content-Type": "application/yaml"},
                                 yaml_zone.encode())
            assert created[0] == 200 and (zones_dir / "example.net.yaml").exists()
            assert answer(app, "www.example.net") == {"192.0.2.10", "192.0.2.11"}

            removed = await http(port, "DELETE", "/v1/zones/example.net", TOKEN)
            assert removed[0] == 200 and json_body(removed)["changed"] is True
            assert not (zones_dir / "example.net.yaml").exists()
            assert dns.name.from_text("example.net.") not in app.world.snapshot.zones
            gone = await http(port, "DELETE", "/v1/zones/example.net", TOKEN)
            assert gone[0] == 404

    asyncio.run(scenario())


def test_invalid_zone_is_422_with_located_problems_and_changes_nothing(
        zones_dir: pathlib.Path) -> None:
    async def scenario() -> None:
        app = make_app(zones_dir, token="t0ken")
        await app.reload()
        before = (zones_dir / "example.com.yaml").read_text()
        async with serving(app) as (_, port):
            bad = before.replace("value: 192.0.2.53", "value: 999.1.1.1")
            line = 1 + before.splitlines().index("  ns1: {type: A, value: 192.0.2.53}")
            result = await http(port, "PUT", "/v1/zones/example.com",
                                {**TOKEN, "Content-Type": "application/yaml"}, bad.encode())
            assert result[0] == 422
            body = json_body(result)
            assert body["error"] == "invalid zone"
            assert body["details"] == [
                f'api/example.com.yaml:{line}: records.ns1.value: "999.1.1.1" is not an IPv4 '
                'address']
            mismatch = await http(port, "PUT", "/v1/zones/example.org",
                                  {**TOKEN, "Content-Type": "application/yaml"},
                                  before.encode())
            assert mismatch[0] == 422
            assert json_body(mismatch)["details"] == [
                'api/example.org.yaml:1: zone: "example.com." does not match the file name '
                '"example.org.yaml"']
            no_token = await http(port, "PUT", "/v1/zones/example.com",
                                  {"Content-Type": "application/yaml"}, before.encode())
            assert no_token[0] == 401
        assert (zones_dir / "example.com.yaml").read_text() == before
        assert app.generation == 1

    asyncio.run(scenario())
