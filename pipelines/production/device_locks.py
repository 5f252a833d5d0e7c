"""Device claims: an OS file lock per device, so two onmodel processes on one host (a nightly run and an upload
run) never use one GPU at the same time (nor load two models onto it).

The lock is `flock` on `<lock dir>/<device>.lock`, named by the physical device (`cuda:0` of a process started
with CUDA_VISIBLE_DEVICES=3, a Dask worker, is `cuda-3.lock`): the kernel releases it when its holder dies, even
by kill -9, so a crashed run never leaves a device locked (no pid files to clean up). The plain `cpu` device is
shared freely (no file lock); `cpu:N` test devices and `cuda:N` are locked.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

LOCK_DIR_ENV = "ONMODEL_LOCK_DIR"
POLL_S = 0.02


def default_lock_dir(configured: str | Path = "") -> Path:
    """The lock folder: the profile's `run.lock_dir`, else $ONMODEL_LOCK_DIR, else $XDG_RUNTIME_DIR/onmodel-locks,
    else /tmp/onmodel-locks (every onmodel process of a host must agree on it)."""
    if str(configured):
        return Path(configured)
    if os.environ.get(LOCK_DIR_ENV):
        return Path(os.environ[LOCK_DIR_ENV])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "onmodel-locks"
    return Path("/tmp/onmodel-locks")


def lock_file_name(device: str) -> str:
    """'cuda' and 'cuda:0' are one device: 'cuda-0.lock'; 'cpu:1' -> 'cpu-1.lock'."""
    name = "cuda:0" if device == "cuda" else device
    return name.replace(":", "-") + ".lock"


def physical_device(device: str, environ: Mapping[str, str]) -> str:
    """The device as the host knows it, for its lock: cuda:1 under CUDA_VISIBLE_DEVICES=4,6 is cuda:6 (a GPU UUID
    or MIG name stays as given), so two processes (Dask workers) that each see only 'cuda:0' never share a lock."""
    if not device.startswith("cuda"):
        return device
    index = int(device.partition(":")[2] or 0)
    visible = [part.strip() for part in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    if index >= len(visible):
        return f"cuda:{index}"
    name = visible[index]
    return f"cuda:{name}" if name.isdigit() else "cuda:" + name.replace(":", "-").replace("/", "-")


def needs_os_lock(device: str) -> bool:
    """Every device but the plain, shareable `cpu`."""
    return device != "cpu"


class DeviceClaim:
    """One process's claim on a device for as long as its pool uses it: the OS lock on the device's lock file.

    Taken before the renderer is loaded onto the device and released when the pool closes (or by the kernel
    when the process dies). In-process, the render lease (a thread lock) is held only around each render call.
    """

    def __init__(self, device: str, lock_dir: str | Path = "") -> None:
        self.device = device
        physical = physical_device(device, os.environ)
        self.path = default_lock_dir(lock_dir) / lock_file_name(physical) if needs_os_lock(device) else None
        self._handle: IO[bytes] | None = None
        self._held_without_file = False

    def __repr__(self) -> str:
        return f"DeviceClaim({self.device!r}, {str(self.path)!r})"

    @property
    def held(self) -> bool:
        return self._handle is not None or self._held_without_file

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Claim the device; False when another process (or pool) holds it past `timeout` (or at once)."""
        if self.held:
            raise RuntimeError(f"{self!r} is already held by this claim.")
        if self.path is None:  # plain cpu: shared
            self._held_without_file = True
            return True
        deadline = None if timeout < 0 else time.monotonic() + timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not blocking or (deadline is not None and time.monotonic() >= deadline):
                    handle.close()
                    return False
                time.sleep(POLL_S)
        # For a person looking at the lock folder: who holds the device now.
        handle.truncate(0)
        handle.write(f"{socket.gethostname()} pid {os.getpid()}\n".encode())
        handle.flush()
        self._handle = handle
        return True

    def release(self) -> None:
        handle, self._handle = self._handle, None
        self._held_without_file = False
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> DeviceClaim:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def holder(device: str, lock_dir: str | Path = "") -> str:
    """Who last took the device's lock ('host pid N'), for messages; '' when never."""
    path = default_lock_dir(lock_dir) / lock_file_name(physical_device(device, os.environ))
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
