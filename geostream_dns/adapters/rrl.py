"""Response-rate limiting on the UDP transport: who is charged for what.

How this works: after `resolve`, the UDP transport asks `ResponseLimiter.check`
what to do with the reply. The account charged is (client network, kind):
the network is the source address cut to `--rrl-prefix-v4` (default /24) or
`--rrl-prefix-v6` (default /56) bits; the kind is the question (name and
type, lower-cased) for an answer (NODATA and referrals included), or the zone
for NXDOMAIN, or the zone and "error" for every other response code (REFUSED
for a name we do not host counts under zone ""). `core.rrl.RateLimiter`
keeps the balances; this module adds the networks, the exemptions
(`--rrl-exempt`, default loopback) and the counts of what it did.

TCP is never limited, and neither is a query that held a valid server cookie
(the transport skips the check: `Outcome.cookie`): neither can come from a
forged address. The per-query cost for a client under its limit is a memo
look-up of its network, a slice of the question and one account update.
"""

from __future__ import annotations

import ipaddress
from time import monotonic

from geostream_dns.config.settings import RrlSettings, parse_exempt
from geostream_dns.core.outcome import Outcome
from geostream_dns.core.rrl import SEND, RateLimiter
from geostream_dns.core.wire import LOWER, NOERROR, NXDOMAIN

NETWORK_MEMO_LIMIT = 100_000  # source addresses whose network is remembered


class ResponseLimiter:
    """The UDP transport's limiter (see the module doc)."""

    __slots__ = ("limiter", "exempt", "prefix_v4", "prefix_v6", "networks", "drops", "slips")

    def __init__(self, settings: RrlSettings) -> None:
        self.limiter = RateLimiter(settings.rate, settings.window, settings.slip,
                                   settings.table_size)
        self.exempt = parse_exempt(settings.exempt)
        self.prefix_v4 = settings.prefix_v4
        self.prefix_v6 = settings.prefix_v6
        # source address -> its network's key; b"" for an exempt address
        self.networks: dict[str, bytes] = {}
        self.drops = 0
        self.slips = 0

    def check(self, data: bytes, client: str, outcome: Outcome) -> int:
        """SEND, DROP or SLIP for the UDP reply to `data` from `client`."""
        network = self.networks.get(client)
        if network is None:
            network = self.network(client)
        if not network:
            return SEND
        rcode = outcome.rcode
        if rcode == NOERROR:
            key: tuple[bytes, object] | tuple[bytes, str, bool] = (
                network, data[12:data.find(0, 12) + 5].translate(LOWER))
        else:
            key = (network, outcome.zone, rcode == NXDOMAIN)
        return self.limiter.charge(key, monotonic())

    def network(self, client: str) -> bytes:
        """The key of `client`'s network (b"" when it is exempt), memoized."""
        try:
            address = ipaddress.ip_address(client.partition("%")[0])
        except ValueError:
            key = b"?" + client.encode()  # not an address: charged on its own
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            if any(address in network for network in self.exempt):
                key = b""
            elif address.version == 4:
                key = b"4" + (int(address) >> (32 - self.prefix_v4)).to_bytes(4, "big")
            else:
                key = b"6" + (int(address) >> (128 - self.prefix_v6)).to_bytes(16, "big")
        networks = self.networks
        if len(networks) >= NETWORK_MEMO_LIMIT:
            networks.clear()
        networks[client] = key
        return key

    @property
    def accounts(self) -> int:
        return len(self.limiter)
