"""`serve` options against abuse: response-rate limiting and DNS Cookies."""

from __future__ import annotations

import argparse

from geostream_dns.config.settings import (
    DEFAULT_COOKIE_ROTATION,
    DEFAULT_RRL_EXEMPT,
    DEFAULT_RRL_PREFIX_V4,
    DEFAULT_RRL_PREFIX_V6,
    RrlSettings,
)
from geostream_dns.core.rrl import DEFAULT_RATE, DEFAULT_SLIP, DEFAULT_TABLE_SIZE, DEFAULT_WINDOW


def add_abuse_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group(
        "response-rate limiting (UDP) and DNS Cookies",
        "UDP responses are counted per client network and kind (the question answered, "
        "or the zone for NXDOMAIN and errors); past the rate they are dropped, every "
        "slip-th sent truncated. TCP and queries with a valid server cookie are never "
        "limited.")
    group.add_argument("--rrl-rate", type=float, default=DEFAULT_RATE, metavar="N",
                       help=f"responses per second per account, 0 turns limiting off "
                            f"(default {DEFAULT_RATE})")
    group.add_argument("--rrl-window", type=float, default=DEFAULT_WINDOW, metavar="SECONDS",
                       help=f"the debt an account can run up, in seconds of its rate: how "
                            f"long a flood stays limited after it stops (default "
                            f"{DEFAULT_WINDOW})")
    group.add_argument("--rrl-slip", type=int, default=DEFAULT_SLIP, metavar="N",
                       help=f"send every N-th limited response truncated (TC=1) so real "
                            f"clients retry over TCP; 0 never, 1 always (default "
                            f"{DEFAULT_SLIP})")
    group.add_argument("--rrl-exempt", action="append", metavar="CIDR",
                       help=f"never limit this network, repeatable; 'none' exempts nobody "
                            f"(default {' and '.join(DEFAULT_RRL_EXEMPT)})")
    group.add_argument("--rrl-prefix-v4", type=int, default=DEFAULT_RRL_PREFIX_V4,
                       metavar="BITS", help=f"IPv4 client network size "
                                            f"(default {DEFAULT_RRL_PREFIX_V4})")
    group.add_argument("--rrl-prefix-v6", type=int, default=DEFAULT_RRL_PREFIX_V6,
                       metavar="BITS", help=f"IPv6 client network size "
                                            f"(default {DEFAULT_RRL_PREFIX_V6})")
    group.add_argument("--rrl-table-size", type=int, default=DEFAULT_TABLE_SIZE,
                       metavar="N", help=f"accounts kept, least recently used dropped first "
                                         f"(default {DEFAULT_TABLE_SIZE})")
    group.add_argument("--cookie-rotation", type=float, default=DEFAULT_COOKIE_ROTATION,
                       metavar="SECONDS",
                       help=f"rotate the fleet's cookie secret this often; the previous "
                            f"secret stays valid (default {DEFAULT_COOKIE_ROTATION:.0f})")


def rrl_settings(args: argparse.Namespace) -> RrlSettings:
    """The options as settings; ValueError with the option's name when one is bad."""
    return RrlSettings(rate=args.rrl_rate, window=args.rrl_window, slip=args.rrl_slip,
                       table_size=args.rrl_table_size, prefix_v4=args.rrl_prefix_v4,
                       prefix_v6=args.rrl_prefix_v6,
                       exempt=tuple(args.rrl_exempt or DEFAULT_RRL_EXEMPT))


def cookie_rotation(args: argparse.Namespace) -> float:
    if args.cookie_rotation < 1:
        raise ValueError(f"--cookie-rotation {args.cookie_rotation}: must be at least 1 second")
    return float(args.cookie_rotation)
