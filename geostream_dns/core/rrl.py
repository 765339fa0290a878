"""Response-rate limiting: the accounts and their arithmetic, time passed in.

How this works (the scheme of BIND, Knot and NSD): every UDP response is
charged to an account named by the client's network and the response's kind
(the transport builds the name; see adapters/rrl.py). An account holds a
balance of responses. Each second credits it `rate` responses, up to `rate`
(so a quiet client can burst no more than one second's worth); each response
costs one, whether it is sent or not. While the balance is negative the
account is limited: its responses are dropped, except every `slip`-th, which
the transport answers with a tiny truncated reply (a real client behind a
forged flood then retries over TCP, which cannot be forged). The debt is
capped at `rate * window` responses, so an account recovers at most
`window` seconds after its flood stops, and a flood that goes on keeps its
account in debt for as long as it lasts: a flood gets `rate` answers, not
`rate` answers per second.

The table holds at most `size` accounts, least recently used dropped first,
whatever the number of sources: an OrderedDict whose `move_to_end` and
`popitem` are C calls. Recency is kept to the second (an account moves to
the recent end at most once a second), which spares the move on nearly
every query. An account is a 4-item list (balance, last time charged,
limited responses since the last slip, last move), changed in place, so
charging an account that is within its limit allocates nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

DEFAULT_RATE: Final = 20  # responses per second and account
DEFAULT_WINDOW: Final = 15  # seconds of debt an account can run up
DEFAULT_SLIP: Final = 2  # every 2nd limited response is sent truncated
DEFAULT_TABLE_SIZE: Final = 50_000  # accounts kept

# What the transport does with a response.
SEND: Final = 0
DROP: Final = 1
SLIP: Final = 2


class RateLimiter:
    """The accounts of response-rate limiting. `charge(key, now)` says SEND, DROP
    or SLIP for one response of account `key` at `now` (seconds, any epoch that
    only moves forward)."""

    __slots__ = ("rate", "window", "slip", "size", "floor", "accounts")

    def __init__(self, rate: float = DEFAULT_RATE, window: float = DEFAULT_WINDOW,
                 slip: int = DEFAULT_SLIP, size: int = DEFAULT_TABLE_SIZE) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0 (a rate of 0 means no limiter at all)")
        if window < 1:
            raise ValueError("window must be at least 1 second")
        if slip < 0:
            raise ValueError("slip must be 0 (never) or more")
        if size < 1:
            raise ValueError("table size must be at least 1")
        self.rate = float(rate)
        self.window = float(window)
        self.slip = slip
        self.size = size
        self.floor = -self.rate * self.window
        self.accounts: OrderedDict[Hashable, list[float]] = OrderedDict()

    def charge(self, key: Hashable, now: float) -> int:
        accounts = self.accounts
        account = accounts.get(key)
        if account is None:
            if len(accounts) >= self.size:
                accounts.popitem(last=False)  # the least recently charged
            accounts[key] = [self.rate - 1.0, now, 0.0, now]
            return SEND
        if now - account[3] >= 1.0:  # recency to the second: one move a second at most
            accounts.move_to_end(key)
            account[3] = now
        rate = self.rate
        balance = account[0] + (now - account[1]) * rate
        if balance > rate:
            balance = rate
        balance -= 1.0
        account[1] = now
        if balance >= 0.0:
            account[0] = balance
            return SEND
        account[0] = balance if balance > self.floor else self.floor
        slip = self.slip
        if not slip:
            return DROP
        limited = account[2] + 1.0
        if limited >= slip:
            account[2] = 0.0
            return SLIP
        account[2] = limited
        return DROP

    def __len__(self) -> int:
        return len(self.accounts)
