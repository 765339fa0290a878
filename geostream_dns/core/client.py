"""Who is asking: the client network a routing decision is made for.

This is the one place that turns (packet source address, ECS option) into a
location and a source prefix, for the query path and for `explain` alike.
The ECS address is used when the query carries one (RFC 7871); a source
prefix of 0 means "no location": the packet's source is not used either, and
every rule that needs a place sees an unknown one (RFC 7871 §7.1.2). Without
ECS the packet's source address counts with its full length.

Text addresses are parsed with `ipaddress` (pure Python, no sockets); this
runs only on memo misses, never for a repeat client network.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from geostream_dns.core.geo import UNKNOWN, GeoLocator, Location
from geostream_dns.core.wire import ClientSubnet


class ClientNet(NamedTuple):
    location: Location
    address: bytes | None  # packed, 4 or 16 bytes; None: no address to route on
    source_prefix: int  # how many leading bits of `address` are known
    from_ecs: bool  # located by the query's ECS option, not its source address

    def located_by(self) -> str:
        """How the client was located, for people."""
        if self.from_ecs:
            if self.address is None:
                return "ECS /0: no location"
            network = ipaddress.ip_network((self.address, self.source_prefix), strict=False)
            return f"ECS {network}"
        if self.address is None:
            return "no client address"
        return f"client address {ipaddress.ip_address(self.address)}"


NOWHERE = ClientNet(UNKNOWN, None, 0, False)
NO_LOCATION = ClientNet(UNKNOWN, None, 0, True)


def packed_address(text: str) -> bytes | None:
    """A textual IP address as packed bytes, IPv4-mapped IPv6 as IPv4; None if it is
    not an address. A zone index (``fe80::1%eth0``) is ignored."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.packed
    return address.packed


def client_net(client: str, ecs: ClientSubnet | None, geo: GeoLocator) -> ClientNet:
    """The network a query is answered for: its ECS subnet, else its source address."""
    if ecs is not None:
        if ecs.source_prefix == 0:
            return NO_LOCATION
        address = ecs.address_bytes()
        return ClientNet(geo.locate(address), address, ecs.source_prefix, True)
    packed = packed_address(client)
    if packed is None:
        return NOWHERE
    return ClientNet(geo.locate(packed), packed, len(packed) * 8, False)
