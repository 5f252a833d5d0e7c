"""Resuming after a crash: what a killed run can leave behind, and its removal before the next run works.

A run killed at any moment (kill -9) leaves only three kinds of state: files written atomically (complete, or
not there), job records (one atomic statement each, written after the job's files) and the temporaries of
writes in flight (`.<name>.<host>-<pid>-<random>.tmp`, see pipelines.image_io.write_bytes_atomic). Rerunning
the same command re-renders every job without a record (the same seed: the same pixels), skips the rest and
reports them, so the finishing run's manifest covers every row. This module removes the temporaries of dead
processes of this host; those of live processes (another run writing into the folder now) and of other hosts
(a shared folder) are left alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipelines.image_io import temporary_tag

TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")


def process_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def orphaned_temporaries(root: Path) -> list[Path]:
    """Temporaries under `root` written by processes of this host that are gone."""
    host = temporary_tag().rsplit("-", 1)[0]
    found: list[Path] = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            match = TEMPORARY.match(name)
            if match and match["host"] == host and not process_alive(int(match["pid"])):
                found.append(Path(folder) / name)
    return found


def remove_orphaned_temporaries(root: Path) -> list[Path]:
    """Delete what a killed run left half-written; the paths removed."""
    removed = []
    for path in orphaned_temporaries(root):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
