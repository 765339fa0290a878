"""`serve --user NAME`: give up root once the listening sockets are bound.

How this works: a server started as root (to bind port 53 without
`CAP_NET_BIND_SERVICE`) binds every DNS and HTTP socket first, then
`drop_privileges` hands the state dir (and the query log) to the user, sets
the supplementary groups (`initgroups`), the group and the user, in that
order (a process that is no longer root can no longer change its groups),
and checks that root cannot be regained. Every later file the server
writes — saved snapshots, drains, the workers' shared files, a reopened
query log — is written as that user. Each worker of `--workers N` binds its
own sockets and drops by itself.

`lookup_user` runs at start-up, before anything is bound, so that an unknown
user, or `--user` without root, is a clear error instead of a half-started
server.
"""

from __future__ import annotations

import os
import pathlib
import pwd
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("geostream.privileges")


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    uid: int
    gid: int


def lookup_user(name: str) -> Account:
    """The account `--user NAME` names (a name or a numeric uid); ValueError when
    there is none, or when this process cannot switch to it."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise ValueError(f"--user {name}: no such user") from None
    account = Account(entry.pw_name, entry.pw_uid, entry.pw_gid)
    if os.geteuid() != 0 and os.geteuid() != account.uid:
        raise ValueError(f"--user {name}: switching users needs root "
                         f"(running as uid {os.geteuid()})")
    return account


def hand_over(account: Account, folders: Iterable[pathlib.Path] = (),
              files: Iterable[pathlib.Path] = ()) -> None:
    """Make each folder (created if missing, with everything in it) and each file
    that exists belong to `account`, so the server can still write there once
    it is no longer root."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, account.uid, account.gid)
        for parent, dirs, names in os.walk(folder):
            for name in [*dirs, *names]:
                os.chown(os.path.join(parent, name), account.uid, account.gid,
                         follow_symlinks=False)
    for file in files:
        if file.exists():
            os.chown(file, account.uid, account.gid)


def drop_privileges(account: Account, folders: Iterable[pathlib.Path] = (),
                    files: Iterable[pathlib.Path] = ()) -> None:
    """Become `account` for good (groups first, then the user) and check it held."""
    if os.geteuid() != 0:
        return  # already that user: lookup_user refused anything else
    hand_over(account, folders, files)
    become(account)
    log.info("privileges.dropped", user=account.name, uid=account.uid, gid=account.gid)


def become(account: Account) -> None:
    """Switch this root process to `account` (groups first, then the user) for
    good, and check it held; no log line (a helper process of a server that
    said so already calls this too)."""
    os.initgroups(account.name, account.gid)
    os.setgid(account.gid)
    os.setuid(account.uid)
    if os.getuid() != account.uid or os.geteuid() != account.uid or os.getegid() != account.gid:
        raise OSError(f"--user {account.name}: the switch did not hold")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise OSError(f"--user {account.name}: root could be regained")


def die_with_parent(parent: int) -> None:
    """Get SIGTERM when the parent process ends (PR_SET_PDEATHSIG). A worker sets
    it after forking and again after dropping privileges, since the kernel
    clears it whenever the process's user or group changes."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent ended before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
