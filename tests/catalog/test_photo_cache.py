"""The photo cache: unchanged local files are known by their stat, links by ETag / Last-Modified (304)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.errors import ImageFetchError
from catalog.image_refs import ImagePolicy, resolve_image_ref
from catalog.photo_cache import PhotoCache

POLICY = ImagePolicy(allowed_hosts=("127.0.0.1",), timeout_s=2.0, retries=0)


def test_an_unchanged_file_is_known_by_its_stat_and_a_changed_one_is_noticed(tmp_path: Path) -> None:
    photo = tmp_path / "shirt.png"
    photo.write_bytes(b"first version")
    ref = resolve_image_ref("shirt.png", tmp_path, POLICY)
    cache = PhotoCache(tmp_path / ".cache" / "photos.sqlite")
    first = cache.lookup(ref, POLICY)
    assert (first.how, first.sha256) == ("read", hashlib.sha256(b"first version").hexdigest())
    again = PhotoCache(tmp_path / ".cache" / "photos.sqlite").lookup(ref, POLICY)  # a new process, same file
    assert (again.how, again.sha256) == ("stat", first.sha256)
    assert again.read() == b"first version"
    # Same size, mtime put back: the ctime still moves, so the change is seen.
    stat = photo.stat()
    photo.write_bytes(b"other version")
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = cache.lookup(ref, POLICY)
    assert (changed.how, changed.sha256) == ("read", hashlib.sha256(b"other version").hexdigest())


def test_a_file_changed_after_its_stat_is_refused_when_read(tmp_path: Path) -> None:
    photo = tmp_path / "shirt.png"
    photo.write_bytes(b"first version")
    ref = resolve_image_ref("shirt.png", tmp_path, POLICY)
    cache = PhotoCache(tmp_path / "photos.sqlite")
    cache.lookup(ref, POLICY)
    known = cache.lookup(ref, POLICY)
    photo.write_bytes(b"replaced meanwhile")
    with pytest.raises(ImageFetchError, match="changed while this run"):
        known.read()


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gone.png").write_bytes(b"x")
    ref = resolve_image_ref("gone.png", tmp_path, POLICY)
    (tmp_path / "gone.png").unlink()
    with pytest.raises(ImageFetchError, match="cannot be read"):
        PhotoCache(tmp_path / "photos.sqlite").lookup(ref, POLICY)


class _Conditional(http.server.BaseHTTPRequestHandler):
    """Serves one photo with an ETag (or only Last-Modified) and answers 304 to a matching validator."""

    state: dict[str, object]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.state["body"]
        assert isinstance(body, bytes)
        etag = f'"{hashlib.sha256(body).hexdigest()[:12]}"'
        stamp = str(self.state["last_modified"])
        use_etag = self.path == "/etag.png"
        if (use_etag and self.headers.get("If-None-Match") == etag) or (
            not use_etag and self.headers.get("If-Modified-Since") == stamp
        ):
            self.state["304"] = int(self.state.get("304", 0)) + 1  # type: ignore[call-overload]
            self.send_response(304)
            self.end_headers()
            return
        self.state["200"] = int(self.state.get("200", 0)) + 1  # type: ignore[call-overload]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag" if use_etag else "Last-Modified", etag if use_etag else stamp)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def photo_server() -> Iterator[tuple[str, dict[str, object]]]:
    state: dict[str, object] = {"body": b"remote photo v1", "last_modified": "Tue, 01 Dec 2026 10:00:00 GMT"}
    handler = type("Handler", (_Conditional,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("path", ["/etag.png", "/dated.png"])
def test_a_link_is_not_downloaded_again_while_the_server_says_not_modified(
    photo_server, tmp_path: Path, path: str
) -> None:
    base, state = photo_server
    ref = resolve_image_ref(base + path, tmp_path, POLICY)
    cache = PhotoCache(tmp_path / "photos.sqlite")
    first = cache.lookup(ref, POLICY)
    assert (first.how, state.get("200"), state.get("304")) == ("download", 1, None)
    second = cache.lookup(ref, POLICY)
    assert (second.how, second.sha256, state.get("200"), state.get("304")) == (
        "not_modified",
        first.sha256,
        1,
        1,
    )
    assert second.read() == b"remote photo v1" and state["200"] == 2  # bytes only when a job needs them
    # The photo changes on the server: noticed on the next lookup.
    state["body"], state["last_modified"] = b"remote photo v2", "Wed, 02 Dec 2026 10:00:00 GMT"
    third = cache.lookup(ref, POLICY)
    assert third.how == "download" and third.sha256 == hashlib.sha256(b"remote photo v2").hexdigest()


def test_hashes_of_a_chunk_match_lookup_and_give_errors_in_place(tmp_path: Path) -> None:
    names = [f"p{number}.png" for number in range(5)]
    for name in names:
        (tmp_path / name).write_bytes(f"photo {name}".encode())
    refs = [resolve_image_ref(name, tmp_path, POLICY) for name in names]
    cache = PhotoCache(tmp_path / "photos.sqlite")
    assert cache.hashes(refs, POLICY) == [cache.lookup(ref, POLICY).sha256 for ref in refs]
    (tmp_path / "p1.png").write_bytes(b"a new photo")  # changed: noticed
    (tmp_path / "p3.png").unlink()  # gone: its error in its place, the others still hashed
    hashes = cache.hashes(refs, POLICY)
    assert hashes[1] == hashlib.sha256(b"a new photo").hexdigest()
    assert isinstance(hashes[3], ImageFetchError) and "cannot be read" in str(hashes[3])
    assert [hashes[i] for i in (0, 2, 4)] == [
        hashlib.sha256(f"photo p{i}.png".encode()).hexdigest() for i in (0, 2, 4)
    ]
