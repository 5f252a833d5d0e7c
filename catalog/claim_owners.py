"""Who holds a job claim: a process named by host, pid and start token, and whether it still runs.

A claim's lease keeps a job off other runs while its holder works on it. A holder on *this* host that is gone
(killed with -9, the machine's OOM killer) is known dead at once, so its claims are void at once and a rerun
started straight after the kill is not blocked for a lease's length. The start token (the process's start time
since boot, and the boot id) tells a dead holder from a new process that was given the same pid. Holders on
other hosts cannot be asked: their claims end with their lease.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ClaimOwner:
    """The process holding a claim: `host` and `pid`, and `started` (its start token, "" where unknown)."""

    host: str
    pid: int
    started: str = ""

    @classmethod
    def current(cls) -> ClaimOwner:
        """This process (computed per call: a forked child is a new owner)."""
        pid = os.getpid()
        return cls(this_host(), pid, start_token(pid) or "")

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


@lru_cache(maxsize=1)
def this_host() -> str:
    """This machine's name as claims record it."""
    return socket.gethostname()


@lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces), or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_token(pid: int) -> str | None:
    """'<start time in clock ticks since boot>@<boot id>' of a running process; None if it is not running or
    this system has no /proc (the pid alone then identifies the owner)."""
    fields = _proc_stat(pid)
    if fields is None:
        return None
    # After the name: state is field 3 of stat(5), start time field 22, so indices 0 and 19 here.
    return f"{fields[19]}@{_boot_id()}"


def is_alive(owner: ClaimOwner) -> bool:
    """Whether the owner, a process on this host, still runs (a zombie counts as dead: it does no more work)."""
    if owner.pid <= 0:
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process with that pid: alive, but is it the owner?
        pass
    fields = _proc_stat(owner.pid)
    if fields is None:
        return not _PROC.is_dir()  # no /proc: trust the signal probe; with /proc the process just ended
    if fields[0] in ("Z", "X"):
        return False
    return not owner.started or start_token(owner.pid) == owner.started
