"""Outputs on storage every host shares: an fsspec URL (file://, s3://, gs://, memory:// in tests) as a `Storage`.

What "atomic" means here (readers never see half a file; a crash leaves no partial file):

- Local or mounted file systems (`file://`, fsspec's LocalFileSystem): a write goes to a temporary in the same
  folder, then a rename, as `LocalStorage` does (POSIX rename is atomic; the temporaries of a killed process are
  removed by the next run, pipelines.production.resume). The catalogue lock is an OS file lock (`flock`) there.
- Object stores (s3, gcs, azure): a write is one PUT of the whole object. Readers see the old object or the whole
  new one, never a part, and a killed writer leaves nothing behind. They have no rename: `move` (only used to
  retire stale files) is a copy then a delete, so a crash between the two leaves both copies (the next run
  retires the original again). They have no lock either: the catalogue lock holds only within one process, so
  two runs into one object-store folder at the same moment may lose one run's merge of catalogue.json (its
  images and job records stay; the next run over those products lists them again). Run one writer per folder.
- memory:// is the memory of one process (tests); other processes and hosts do not see it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from pipelines.image_io import open_atomic, write_bytes_atomic
from pipelines.production.layout import STATE_DB_NAME, LocalStorage, Storage, existing_by_listing

_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def is_url(location: str) -> bool:
    """'s3://bucket/out', 'file:///srv/out', 'memory://out' are URLs; '/srv/out' and 'outputs' are folders."""
    return "://" in str(location)


def open_storage(location: str | Path) -> Storage:
    """The storage of an output location: a folder path (LocalStorage) or an fsspec URL (FsspecStorage)."""
    if isinstance(location, Path) or not is_url(location):
        return LocalStorage(Path(location))
    return FsspecStorage(str(location))


def local_folder(storage: Storage) -> Path | None:
    """The local folder behind a storage (a path, or a file:// URL), None for object stores and memory://."""
    if isinstance(storage, LocalStorage):
        return storage.root
    if isinstance(storage, FsspecStorage) and storage.is_local:
        return Path(storage.root)
    return None


def host_cache_path(location: str, name: str) -> Path:
    """A file in this host's cache for an output location that has no local folder (a photo cache beside s3://)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "onmodel"
    digest = hashlib.sha256(location.encode("utf-8")).hexdigest()[:16]
    return base / f"{digest}-{name}"


def spool_file(storage: Storage, key: str) -> Path:
    """A local file for a key that is appended to and read back by offset (the run book's spool): in the
    storage's folder, else (an object store) in this host's cache."""
    folder = local_folder(storage)
    if folder is not None:
        return folder.joinpath(*PurePosixPath(key).parts)
    location = storage.url if isinstance(storage, FsspecStorage) else repr(storage)
    return host_cache_path(location, key.replace("/", "-"))


def spool_files(storage: Storage, key_pattern: str) -> list[Path]:
    """The files spool_file gives for the keys matching key_pattern ('runs/*/outcomes.jsonl'), sorted."""
    folder = local_folder(storage)
    if folder is not None:
        return sorted(folder.glob(key_pattern))
    target = spool_file(storage, key_pattern)
    return sorted(target.parent.glob(target.name))


class FsspecStorage:
    """Storage under an fsspec URL; keys are '/'-separated paths below it."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.url = url.rstrip("/")
        self.fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = str(root).rstrip("/") or "/"
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r})"

    def _path(self, key: str) -> str:
        parts = PurePosixPath(key).parts
        if not key or PurePosixPath(key).is_absolute() or ".." in parts or "\\" in key:
            raise ValueError(f"storage key {key!r} must be a relative path inside {self.url}.")
        return f"{self.root}/{key}" if self.root != "/" else f"/{key}"

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self.is_local:  # temporary + rename in the same folder (the temporaries resume.py knows)
            write_bytes_atomic(Path(path), data)
            return
        self.fs.pipe_file(path, data)  # one whole-object PUT (object stores), one assignment (memory://)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Local: a temporary + rename (as write_bytes). Object stores: a local temporary, then one whole-object
        upload once the block ends (an upload stream would commit what was written when a write raises)."""
        path = self._path(key)
        if self.is_local:
            with open_atomic(Path(path)) as handle:
                yield handle
            return
        with tempfile.NamedTemporaryFile(prefix="onmodel-upload-", suffix=".tmp") as handle:
            yield cast(BinaryIO, handle)
            handle.flush()
            self.fs.put_file(handle.name, path)

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with self.fs.open(self._path(key), "rb") as handle:
            yield cast(BinaryIO, handle)

    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def exists(self, key: str) -> bool:
        try:
            return bool(self.fs.isfile(self._path(key)))
        except FileNotFoundError:
            return False

    def existing(self, keys: Iterable[str]) -> set[str]:
        """The keys that exist: one listing per folder asked for LIST_FROM keys or more (one request on an object
        store instead of one per file), an `isfile` each for fewer (`existing_by_listing`)."""
        return existing_by_listing(keys, self.exists, self._file_names)

    def _file_names(self, folder: str) -> set[str] | None:
        try:
            listed = self.fs.ls(self._path(folder), detail=True)
        except (FileNotFoundError, NotADirectoryError):  # nothing written there yet
            return None
        return {
            str(entry["name"]).rstrip("/").rpartition("/")[2] for entry in listed if entry["type"] == "file"
        }

    def move(self, key: str, new_key: str) -> None:
        source, target = self._path(key), self._path(new_key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            return
        self.fs.mv(source, target)  # object stores: copy, then delete (not atomic, see the module note)

    def local_path(self, key: str) -> Path:
        if self.is_local:
            return Path(self._path(key))
        raise ValueError(
            f"{self.url} is not a local folder, so {key!r} has no local file; open it through the storage, "
            "or run the command on a folder (a mount of the same files)."
        )

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An OS file lock on a local file system; within this process only on object stores (module note)."""
        if self.is_local:
            with LocalStorage(Path(self.root)).lock(name):
                yield
            return
        with _process_locks_guard:
            lock = _process_locks.setdefault(f"{self.url}|{name}", threading.Lock())
        with lock:
            yield

    @property
    def state_db(self) -> Path:
        """The folder's SQLite job store (file:// only: an object store has no SQLite file)."""
        if self.is_local:
            return Path(self.root) / STATE_DB_NAME
        raise ValueError(
            f"outputs at {self.url} cannot hold a SQLite state store; set ONMODEL_STATE_URL to a PostgreSQL "
            "database, e.g. postgresql://onmodel@db-host/onmodel."
        )
