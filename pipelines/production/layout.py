"""Where outputs go: storage keys from one layout object, bytes through one small storage interface.

Tasks and records pass keys ('images/master/SKU/SKU__front__v0.png'), never OS paths, so a shared or fsspec
storage can replace the local folder without touching the pipeline.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, runtime_checkable

from pipelines.image_io import open_atomic, write_bytes_atomic
from pipelines.presets import MASTER, Preset

STATE_DB_NAME = "state.sqlite"
# LocalStorage.existing lists a folder once when asked for this many of its keys or more (else a stat each).
LIST_FROM = 3


@dataclass(frozen=True)
class OutputLayout:
    """The keys of everything one output folder holds; stable across runs, so re-runs never duplicate."""

    def image_stem(self, preset: str, sku: str, job_id: str) -> str:
        """The image key without its extension (the preset decides png or jpg)."""
        return f"{self.image_folder(preset, sku)}/{job_id}"

    def image_folder(self, preset: str, sku: str) -> str:
        """The folder of a product's images in one preset."""
        return f"images/{preset}/{sku}"

    def image(self, preset: Preset, sku: str, job_id: str) -> str:
        return f"{self.image_stem(preset.name, sku, job_id)}.{preset.extension}"

    def master_image(self, sku: str, job_id: str) -> str:
        """The stored render (lossless PNG) every preset of the job is derived from."""
        return f"{self.image_stem(MASTER, sku, job_id)}.png"

    def garment_mask(self, sku: str, job_id: str) -> str:
        """The placed garment's mask of a job (canvas size, 255 = garment), for reviewers and white backgrounds."""
        return f"masks/{sku}/{job_id}.png"

    @staticmethod
    def preset_of(image_key: str) -> str:
        """'images/amazon/SKU/JOB.jpg' -> 'amazon' ('' for a key outside images/)."""
        parts = image_key.split("/")
        return parts[1] if len(parts) == 4 and parts[0] == "images" else ""

    def retired(self, run_id: str, key: str) -> str:
        """Where a stale file goes when its pose or variant left the product's plan (kept, not current)."""
        return f"{self.retired_root}/{run_id}/{key}"

    def cutout(self, sku: str) -> str:
        return f"cutouts/{sku}.png"

    def cutout_record(self, sku: str) -> str:
        """The cutout's JSON record: the photo hash it was cut from and its quality flags."""
        return f"cutouts/{sku}.json"

    def source_thumbnail(self, sku: str) -> str:
        return f"sources/{sku}.jpg"

    def sheet(self, sku: str) -> str:
        return f"sheets/{sku}.jpg"

    def run_dir(self, run_id: str) -> str:
        return f"{self.runs}/{run_id}"

    def run_summary(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/summary.json"

    def run_index(self, run_id: str) -> str:
        return f"{self.run_dir(run_id)}/{self.index}"

    def run_outcomes(self, run_id: str) -> str:
        """The run book's spool: one JSON line per final product outcome (a local file, see spool_file)."""
        return f"{self.run_dir(run_id)}/outcomes.jsonl"

    runs: str = "runs"  # one folder per run
    photo_cache: str = ".cache/photos.sqlite"  # what each photo was last run (catalog.photo_cache)
    retired_root: str = "retired"  # stale images of dropped poses / variants, until `onmodel prune`
    catalogue: str = "catalogue.json"  # every product ever produced here, with its latest state
    manifest: str = "manifest.csv"
    rejects: str = "rejects.csv"
    index: str = "index.html"


def sidecar_key(image_key: str) -> str:
    """The JSON metadata key beside an image key ('a/b.png' -> 'a/b.json'); string work, planning calls it a lot."""
    folder, _, name = image_key.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return f"{folder}/{stem}.json" if folder else f"{stem}.json"


def existing_by_listing(
    keys: Iterable[str], exists: Callable[[str], bool], file_names: Callable[[str], set[str] | None]
) -> set[str]:
    """Which keys exist, a storage's folder listed once when asked for LIST_FROM of its keys or more (planning
    asks for every output of a product at once), `exists` for fewer (a folder such as cutouts/ holds two files of
    every product). file_names(folder): the names of the files in it, None when there is no such folder."""
    by_folder: dict[str, list[str]] = {}
    for key in keys:
        by_folder.setdefault(key.rpartition("/")[0], []).append(key)
    found: set[str] = set()
    for folder, wanted in by_folder.items():
        if len(wanted) < LIST_FROM or not folder:
            found.update(key for key in wanted if exists(key))
            continue
        names = file_names(folder)
        if names:
            found.update(key for key in wanted if key.rpartition("/")[2] in names)
    return found


@runtime_checkable
class Storage(Protocol):
    """Bytes by key under one output root; writes are atomic (readers never see half a file)."""

    def write_bytes(self, key: str, data: bytes) -> None: ...

    def read_bytes(self, key: str) -> bytes: ...

    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A file to write the key bit by bit (a 100k-product report is never one string): in place whole when
        the block ends, nothing written if it raises."""
        ...

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """The key's bytes as a seekable file (read line by line, or at offsets)."""
        ...

    def exists(self, key: str) -> bool: ...

    def existing(self, keys: Iterable[str]) -> set[str]:
        """The keys that exist, asked at once (planning's call: a folder listed once, not a request per key)."""
        ...

    def move(self, key: str, new_key: str) -> None:
        """Rename a file within the storage (atomic where the storage can)."""
        ...

    def local_path(self, key: str) -> Path:
        """A local file for the key (for browsers and links); remote storages download or raise."""
        ...

    def lock(self, name: str) -> AbstractContextManager[None]:
        """An exclusive lock shared by every process using this storage (read-modify-write of one key)."""
        ...


@runtime_checkable
class StampedStorage(Protocol):
    """A storage that can tell cheaply whether a folder's entries or a file changed since it was last asked."""

    def stamps(self, keys: Iterable[str]) -> dict[str, str]:
        """Per key (a file or a folder): a stamp that changes when it does, "" when it does not exist."""
        ...


class LocalStorage:
    """Storage in a local (or mounted shared) folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._root_text = os.fspath(self.root)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        parts = PurePosixPath(key).parts
        if not parts or PurePosixPath(key).is_absolute() or ".." in parts:
            raise ValueError(f"storage key {key!r} must be a relative path inside the output folder.")
        return self.root.joinpath(*parts)

    def write_bytes(self, key: str, data: bytes) -> None:
        write_bytes_atomic(self._path(key), data)

    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        return open_atomic(self._path(key))  # temporary + os.replace, as write_bytes

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        return open(self._fast_path(key), "rb")

    def _fast_path(self, key: str) -> str:
        """The OS path of a key by plain string work (planning's hot calls); a bad key gets _path's error."""
        # Substring tests only (a plan makes ~10 paths a product); anything unusual goes the careful way.
        if not key or key[0] == "/" or key[-1] == "/" or "\\" in key or "//" in key or ".." in key:
            return os.fspath(self._path(key))
        return f"{self._root_text}{os.sep}{key}"

    def read_bytes(self, key: str) -> bytes:
        with open(self._fast_path(key), "rb") as handle:
            return handle.read()

    def exists(self, key: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self._fast_path(key)).st_mode)
        except OSError:
            return False

    def existing(self, keys: Iterable[str]) -> set[str]:
        """The keys that exist as files (`existing_by_listing`: one scandir per folder asked for LIST_FROM keys or
        more, the entries' types come with the listing)."""
        return existing_by_listing(keys, self.exists, self._file_names)

    def stamps(self, keys: Iterable[str]) -> dict[str, str]:
        """'mtime_ns:ctime_ns:size:inode' per key ("" when absent): a folder's times move whenever a file is added,
        removed or replaced in it (writes are atomic renames), a file's whenever it is rewritten; the ctime also
        when someone sets the mtime back."""
        found: dict[str, str] = {}
        for key in keys:
            try:
                info = os.stat(self._fast_path(key))
            except OSError:
                found[key] = ""
                continue
            found[key] = f"{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_size}:{info.st_ino}"
        return found

    def _file_names(self, folder: str) -> set[str] | None:
        try:
            with os.scandir(self._fast_path(folder)) as entries:
                return {entry.name for entry in entries if entry.is_file()}
        except OSError:  # no such folder (nothing written there yet), or not a folder
            return None

    def move(self, key: str, new_key: str) -> None:
        target = self._path(new_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(key), target)

    def local_path(self, key: str) -> Path:
        return self._path(key)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """An OS file lock (fcntl): released by the kernel when a holder dies, even by kill -9."""
        import fcntl

        path = self._path(f".locks/{name}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @property
    def state_db(self) -> Path:
        """The SQLite job store of this output folder."""
        return self.root / STATE_DB_NAME


def write_text(storage: Storage, key: str, text: str) -> None:
    storage.write_bytes(key, text.encode("utf-8"))


def write_json(storage: Storage, key: str, payload: Any) -> None:
    write_text(storage, key, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(storage: Storage, key: str) -> Any:
    return json.loads(storage.read_bytes(key).decode("utf-8"))
