"""What each product photo was last time: a nightly run knows a photo is unchanged without reading it.

Local files are known by (path, size, mtime, ctime, inode): an unchanged stat means the recorded SHA-256 holds,
so 100k unchanged photos cost 100k `stat` calls, not 100k reads. Links are asked again with their ETag /
Last-Modified (a 304 Not Modified carries no bytes), so a changed remote photo is still noticed every night.
The bytes are read or downloaded only when a job of the product needs them (`Photo.read`).

One small SQLite file per output folder (`.cache/photos.sqlite`); it is a cache: deleting it only costs one
full read of every photo.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import ImageFetchError
from catalog.image_refs import ImagePolicy, fetch_image_bytes, fetch_image_url
from catalog.schema import ImageRef

_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (
    source TEXT PRIMARY KEY,   -- a resolved path or a URL
    stamp TEXT NOT NULL,       -- path: size:mtime_ns:ctime_ns:inode; URL: '' (validators below)
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    sha256 TEXT NOT NULL
)
"""


@dataclass
class Photo:
    """A product photo's hash now, and how to get its bytes when a job needs them."""

    sha256: str
    how: str  # stat (unchanged file), read (file read and hashed), not_modified (304), download
    _read: Callable[[], bytes]
    _data: bytes | None = None

    def read(self) -> bytes:
        """The photo's bytes (read or downloaded now unless already in hand); a changed photo is an error."""
        if self._data is None:
            data = self._read()
            if hashlib.sha256(data).hexdigest() != self.sha256:
                raise ImageFetchError(
                    "The photo changed while this run was using it; run the catalogue again."
                )
            self._data = data
        return self._data


def file_stamp(path: Path | str) -> str:
    """'size:mtime_ns:ctime_ns:inode' of a local photo: a file rewritten, replaced or touched gets another."""
    stat = os.stat(path)
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


def stamp_mtime_ns(stamp: str) -> int:
    """The modification time a `file_stamp` holds."""
    return int(stamp.split(":")[1])


class PhotoCache:
    """The photo records of one output folder; safe for several threads and processes (SQLite, WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connection() as connection:
            connection.execute(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "pid", None) != os.getpid():
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    def _row(self, source: str) -> tuple[str, str, str, str] | None:
        row = (
            self._connection()
            .execute("SELECT stamp, etag, last_modified, sha256 FROM photos WHERE source = ?", (source,))
            .fetchone()
        )
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def _remember(
        self, source: str, stamp: str, sha256: str, etag: str = "", last_modified: str = ""
    ) -> None:
        self._connection().execute(
            "INSERT INTO photos (source, stamp, etag, last_modified, sha256) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (source) DO UPDATE SET stamp = excluded.stamp, etag = excluded.etag, "
            "last_modified = excluded.last_modified, sha256 = excluded.sha256",
            (source, stamp, etag, last_modified, sha256),
        )

    def _rows(self, sources: Sequence[str]) -> dict[str, tuple[str, str, str, str]]:
        """The records of many sources, one query per 500 (SQLite's parameter limit stays far)."""
        rows: dict[str, tuple[str, str, str, str]] = {}
        connection = self._connection()
        for start in range(0, len(sources), 500):
            part = sources[start : start + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT source, stamp, etag, last_modified, sha256 FROM photos WHERE source IN ({marks})"
            for source, stamp, etag, last_modified, sha256 in connection.execute(query, part):
                rows[str(source)] = (str(stamp), str(etag), str(last_modified), str(sha256))
        return rows

    def lookup(self, ref: ImageRef, policy: ImagePolicy) -> Photo:
        """The photo's current hash: from the record when the file's stat or the server says unchanged."""
        source = _source(ref)
        return self._lookup(ref, policy, self._row(source))

    def hashes(self, refs: Sequence[ImageRef], policy: ImagePolicy) -> list[str | ImageFetchError]:
        """The current hash of many photos (planning a chunk), their records read at once; a photo that cannot
        be read gives its error in its place. Bytes read to hash a changed photo are not kept."""
        known = self._rows(list(dict.fromkeys(_source(ref) for ref in refs)))
        hashes: list[str | ImageFetchError] = []
        for ref in refs:
            try:
                hashes.append(self._lookup(ref, policy, known.get(_source(ref))).sha256)
            except ImageFetchError as error:
                hashes.append(error)
        return hashes

    def _lookup(self, ref: ImageRef, policy: ImagePolicy, known: tuple[str, str, str, str] | None) -> Photo:
        if ref.path is not None:
            return self._local_photo(ref, policy, known)
        return self._remote_photo(ref, policy, known)

    def _local_photo(
        self, ref: ImageRef, policy: ImagePolicy, known: tuple[str, str, str, str] | None
    ) -> Photo:
        assert ref.path is not None
        source = str(ref.path)
        try:
            stamp = file_stamp(source)
        except OSError as error:
            raise ImageFetchError(
                f"The image file '{ref.path}' cannot be read ({error.strerror})."
            ) from error
        if known is not None and known[0] == stamp:
            return Photo(known[3], "stat", lambda: fetch_image_bytes(ref, policy))
        data = fetch_image_bytes(ref, policy)
        sha256 = hashlib.sha256(data).hexdigest()
        self._remember(source, stamp, sha256)
        return Photo(sha256, "read", lambda: data, data)

    def _remote_photo(
        self, ref: ImageRef, policy: ImagePolicy, known: tuple[str, str, str, str] | None
    ) -> Photo:
        assert ref.url is not None
        etag, last_modified = (known[1], known[2]) if known is not None else ("", "")
        fetched = fetch_image_url(ref, policy, etag=etag, last_modified=last_modified)
        if fetched.data is None and known is not None:
            return Photo(known[3], "not_modified", lambda: fetch_image_bytes(ref, policy))
        data = fetched.data if fetched.data is not None else fetch_image_bytes(ref, policy)
        sha256 = hashlib.sha256(data).hexdigest()
        self._remember(ref.url, "", sha256, fetched.etag, fetched.last_modified)
        return Photo(sha256, "download", lambda: data, data)


def _source(ref: ImageRef) -> str:
    """A photo's key in the cache: its resolved path, else its URL."""
    return str(ref.path) if ref.path is not None else str(ref.url)
