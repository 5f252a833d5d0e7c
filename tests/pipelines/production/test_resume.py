"""After a kill -9: the half-written temporaries of dead processes go, those of live ones and other hosts stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.image_io import temporary_tag, write_bytes_atomic
from pipelines.production.resume import orphaned_temporaries, remove_orphaned_temporaries


def test_only_temporaries_of_dead_processes_of_this_host_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    host = temporary_tag().rsplit("-", 1)[0]
    folder = tmp_path / "images" / "master" / "SKU-1"
    folder.mkdir(parents=True)
    orphan = folder / f".SKU-1__front__v0.png.{host}-{dead_pid}-0123abcd.tmp"
    live = folder / f".SKU-1__front__v1.png.{host}-{os.getpid()}-0123abcd.tmp"
    elsewhere = folder / f".SKU-1__front__v2.png.otherhost-{dead_pid}-0123abcd.tmp"
    for path in (orphan, live, elsewhere):
        path.write_bytes(b"half an image")
    write_bytes_atomic(folder / "SKU-1__front__v0.png", b"done")  # a finished write leaves no temporary
    assert orphaned_temporaries(tmp_path) == [orphan]
    assert remove_orphaned_temporaries(tmp_path) == [orphan]
    assert not orphan.exists() and live.exists() and elsewhere.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["SKU-1__front__v0.png", live.name, elsewhere.name]
    )
