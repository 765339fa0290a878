"""DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).

How this works: a client sends a COOKIE option holding its 8-byte client
cookie and, once it has one, the server cookie it was given. The server
cookie is 16 bytes: version 1, three reserved bytes, a 32-bit timestamp
(seconds, serial arithmetic), and SipHash-2-4, keyed by the server secret,
of client cookie | version | reserved | timestamp | client address (4 or 16
bytes). Every server of a fleet holds the same secret, so any of them
accepts a cookie another made. A cookie is valid when its hash matches under
the current secret or the previous one (kept through a rotation) and its
timestamp is at most an hour old and at most five minutes ahead.

`Cookies.respond` is what a reply needs: the COOKIE option to send back (the
client cookie and a server cookie: the one presented, when it is valid, made
with the current secret and under half an hour old, else a fresh one) and
whether the query held a valid server cookie (such a query is never rate
limited). A bad server cookie is not an error: the client simply gets a new
one.

The core reads no clock: the adapters set `now` (Unix seconds) once a second
and `use(secret, previous)` when the fleet's secret changes.
"""

from __future__ import annotations

import ipaddress
import struct
from hmac import compare_digest

from siphashc import siphash

OPTION_COOKIE = 10
OPTION_NSID = 3
CLIENT_COOKIE_LEN = 8
SECRET_LEN = 16
MAX_AGE = 3600  # a server cookie older than this is not valid
MAX_AHEAD = 300  # nor one stamped further ahead (clock skew in the fleet)
RENEW_AGE = 1800  # a valid cookie this old is replaced by a fresh one

_VERSION_RESERVED = b"\x01\x00\x00\x00"
_STAMP = struct.Struct("!I")
_OPTION_HEAD = struct.Struct("!HH")
_ADDRESS_LIMIT = 100_000  # client addresses kept in their packed form


class CookieError(ValueError):
    """A COOKIE option of a length RFC 7873 §5.2.2 does not allow (FORMERR)."""


def server_cookie(secret: bytes, client_cookie: bytes, address: bytes, stamp: int,
                  head: bytes = _VERSION_RESERVED) -> bytes:
    """The 16-byte server cookie of RFC 9018 §4 (`head`: version and reserved bytes)."""
    body = head + _STAMP.pack(stamp & 0xFFFFFFFF)
    return body + siphash(secret, client_cookie + body + address).to_bytes(8, "little")


def cookie_age(stamp: int, now: int) -> int:
    """Seconds from `stamp` to `now` in 32-bit serial arithmetic (negative: ahead)."""
    age = (now - stamp) & 0xFFFFFFFF
    return age - 0x100000000 if age >= 0x80000000 else age


def split_cookie(value: bytes) -> tuple[bytes, bytes]:
    """(client cookie, server cookie) of a COOKIE option; CookieError when malformed."""
    if len(value) != CLIENT_COOKIE_LEN and not 16 <= len(value) <= 40:
        raise CookieError(f"COOKIE option of {len(value)} bytes (8, or 16 to 40)")
    return value[:CLIENT_COOKIE_LEN], value[CLIENT_COOKIE_LEN:]


class Cookies:
    """The server secrets, the coarse clock, and the reply to a COOKIE option."""

    __slots__ = ("secret", "previous", "now", "_addresses", "_replies")

    def __init__(self, secret: bytes, previous: bytes | None = None, now: int = 0) -> None:
        self.secret = secret
        self.previous = previous
        self.now = now
        self._addresses: dict[str, bytes] = {}
        # (option data, client) -> (the second it was worked out in, option, valid):
        # a resolver sends the same cookie with every query, so within a second
        # the reply to it is a dictionary look-up, not a hash.
        self._replies: dict[tuple[bytes, str], tuple[int, bytes, bool]] = {}
        self.use(secret, previous)

    def use(self, secret: bytes, previous: bytes | None = None) -> None:
        """Sign with `secret` from now on; still accept cookies made with `previous`."""
        if len(secret) != SECRET_LEN or (previous is not None and len(previous) != SECRET_LEN):
            raise ValueError(f"a cookie secret is {SECRET_LEN} bytes")
        self.secret, self.previous = secret, previous
        self._replies = {}

    def address(self, client: str) -> bytes:
        """The client address as the hash takes it: 4 or 16 bytes (memoized)."""
        packed = self._addresses.get(client)
        if packed is None:
            try:
                packed = ipaddress.ip_address(client.partition("%")[0]).packed
            except ValueError:
                packed = client.encode()[:16]  # not an IP address (a test's fake client)
            if len(self._addresses) >= _ADDRESS_LIMIT:
                self._addresses.clear()
            self._addresses[client] = packed
        return packed

    def respond(self, value: bytes, client: str) -> tuple[bytes, bool]:
        """The COOKIE option (code, length, data) to send for the query's option
        data `value`, and whether it held a valid server cookie. CookieError when
        `value` is malformed."""
        seen = self._replies.get((value, client))
        if seen is not None and seen[0] == self.now:
            return seen[1], seen[2]
        option, valid = self._work_out(value, client)
        replies = self._replies
        if len(replies) >= _ADDRESS_LIMIT:
            replies.clear()
        replies[(value, client)] = (self.now, option, valid)
        return option, valid

    def _work_out(self, value: bytes, client: str) -> tuple[bytes, bool]:
        client_cookie, presented = split_cookie(value)
        address = self.address(client)
        now = self.now
        if len(presented) == 16 and presented[0] == 1:
            age = cookie_age(_STAMP.unpack_from(presented, 4)[0], now)
            if -MAX_AHEAD <= age <= MAX_AGE:
                head = presented[:4]
                stamp = now - age
                if compare_digest(server_cookie(self.secret, client_cookie, address, stamp, head),
                                  presented):
                    if age < RENEW_AGE and head == _VERSION_RESERVED:
                        return _OPTION_HEAD.pack(OPTION_COOKIE, 24) + value, True
                    return self._fresh(client_cookie, address), True
                previous = self.previous
                if previous is not None and compare_digest(server_cookie(
                        previous, client_cookie, address, stamp, head), presented):
                    return self._fresh(client_cookie, address), True
        return self._fresh(client_cookie, address), False

    def _fresh(self, client_cookie: bytes, address: bytes) -> bytes:
        return (_OPTION_HEAD.pack(OPTION_COOKIE, 24) + client_cookie
                + server_cookie(self.secret, client_cookie, address, self.now))

    def valid(self, value: bytes, client: str) -> bool:
        """Whether `value` (COOKIE option data) holds a valid server cookie."""
        try:
            return self.respond(value, client)[1]
        except CookieError:
            return False


def nsid_option(server_id: bytes) -> bytes:
    """The NSID option (RFC 5001) a reply carries when the query asked for it."""
    return _OPTION_HEAD.pack(OPTION_NSID, len(server_id)) + server_id
