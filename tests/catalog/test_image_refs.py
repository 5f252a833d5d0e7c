"""Image reference resolution (roots, symlinks, schemes, host allow-list) and fetching over real local HTTP."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.errors import ImageFetchError, ImageRefError, TransientFetchError
from catalog.image_refs import ImagePolicy, fetch_image_bytes, host_allowed, resolve_image_ref
from catalog.schema import ImageRef


@pytest.fixture
def layout(tmp_path: Path, write_png) -> dict[str, Path]:
    """csv/ (with img.png and sub/nested.png), shared/ (an extra root) and outside/ (no root)."""
    paths = {
        "csv": tmp_path / "csv",
        "shared": tmp_path / "shared",
        "outside": tmp_path / "outside",
    }
    write_png(paths["csv"] / "img.png")
    write_png(paths["csv"] / "sub" / "nested.png")
    write_png(paths["shared"] / "common.png")
    write_png(paths["outside"] / "secret.png")
    (paths["csv"] / "inside_link.png").symlink_to(paths["csv"] / "img.png")
    (paths["csv"] / "outside_link.png").symlink_to(paths["outside"] / "secret.png")
    (paths["csv"] / "outside_dir").symlink_to(paths["outside"], target_is_directory=True)
    return paths


def _resolve(raw: str, layout: dict[str, Path], **policy) -> ImageRef:
    return resolve_image_ref(raw, layout["csv"], ImagePolicy(allowed_roots=(layout["shared"],), **policy))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("img.png", "csv/img.png"),
        ("  sub/nested.png ", "csv/sub/nested.png"),
        ("./sub/../img.png", "csv/img.png"),
        ("sub\\nested.png", "csv/sub/nested.png"),  # Windows separators in a relative path
        ("inside_link.png", "csv/img.png"),  # a symlink that stays inside is fine
    ],
)
def test_relative_paths_resolve_under_the_csv_folder(raw: str, expected: str, layout) -> None:
    ref = _resolve(raw, layout)
    assert ref.path == (layout["csv"].parent / expected).resolve()
    assert ref.url is None and ref.raw == raw


def test_absolute_and_file_url_paths_under_an_allowed_root(layout) -> None:
    common = layout["shared"] / "common.png"
    assert _resolve(str(common), layout).path == common.resolve()
    assert _resolve(common.resolve().as_uri(), layout).path == common.resolve()
    assert _resolve(f"file://localhost{common.resolve()}", layout).path == common.resolve()


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("../../etc/passwd", "leads outside the allowed image folders"),
        ("../outside/secret.png", "leads outside"),
        ("/etc/passwd", "leads outside"),
        ("file:///etc/passwd", "leads outside"),
        ("outside_link.png", "leads outside"),  # symlink to a file outside
        ("outside_dir/secret.png", "leads outside"),  # symlinked folder outside
        ("missing.png", "does not exist"),
        ("sub", "is a folder, not an image file"),
        ("", "No image is given"),
        ("   ", "No image is given"),
        ("ftp://cdn.example.com/a.png", "'ftp:' image links are not accepted"),
        ("data:image/png;base64,iVBORw0KGgo=", "'data:' image links are not accepted"),
        ("javascript:alert(1)", "'javascript:' image links are not accepted"),
        ("C:\\photos\\shirt.jpg", "Windows path"),
        ("file://fileserver/share/a.png", "names another machine"),
        ("https://evil.example/a.png", "not on the allow-list"),
        ("https://user:pw@cdn.example.com/a.png", "user name or password"),
        ("http://[::1/a.png", "not a valid image link"),
    ],
)
def test_unusable_references_are_rejected_with_a_reason(raw: str, phrase: str, layout) -> None:
    with pytest.raises(ImageRefError, match=phrase.replace("(", r"\(")):
        _resolve(raw, layout, allowed_hosts=("cdn.example.com",))


def test_outside_path_is_rejected_before_revealing_whether_it_exists(layout) -> None:
    with pytest.raises(ImageRefError, match="leads outside"):
        _resolve("../outside/does-not-exist.png", layout)


@pytest.mark.parametrize(
    ("raw", "hosts", "url"),
    [
        ("https://cdn.example.com/a.png", ("cdn.example.com",), "https://cdn.example.com/a.png"),
        ("https://CDN.Example.com./a.png", ("cdn.example.com",), "https://CDN.Example.com./a.png"),
        (
            "http://img.shop.example.com:8080/a.png",
            ("*.example.com",),
            "http://img.shop.example.com:8080/a.png",
        ),
        ("//cdn.shopify.com/s/a.jpg", ("cdn.shopify.com",), "https://cdn.shopify.com/s/a.jpg"),
        ("http://127.0.0.1:9/a.png", ("127.0.0.1",), "http://127.0.0.1:9/a.png"),
    ],
)
def test_urls_on_the_allow_list_resolve(raw: str, hosts: tuple[str, ...], url: str, layout) -> None:
    ref = _resolve(raw, layout, allowed_hosts=hosts)
    assert (ref.url, ref.path) == (url, None)


@pytest.mark.parametrize(
    ("host", "allowed", "ok"),
    [
        ("cdn.example.com", ("cdn.example.com",), True),
        ("a.b.example.com", ("*.example.com",), True),
        ("example.com", ("*.example.com",), False),  # the wildcard means subdomains only
        ("evilexample.com", ("*.example.com",), False),
        ("example.com.evil.net", ("*.example.com",), False),
        ("127.0.0.1", ("*.0.0.1",), False),  # IP literals only match when listed literally
        ("127.0.0.1", ("127.0.0.1",), True),
        ("10.0.0.5", ("cdn.example.com",), False),
        ("169.254.169.254", ("*.254",), False),
        ("::1", ("::1",), True),
        ("cdn.example.com", (), False),
    ],
)
def test_host_allow_list(host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, allowed) is ok


def test_fetch_local_file_and_size_cap(layout) -> None:
    ref = _resolve("img.png", layout)
    data = fetch_image_bytes(ref, ImagePolicy())
    assert data == (layout["csv"] / "img.png").read_bytes()
    with pytest.raises(ImageFetchError, match="the limit is 10"):
        fetch_image_bytes(ref, ImagePolicy(max_bytes=10))


# --- a real HTTP server on 127.0.0.1 ---------------------------------------------------------------------------

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict[str, int]

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {"Content-Length": str(len(body))}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (the timeout tests)
            self.close_connection = True

    def do_GET(self) -> None:  # http.server's naming
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/ok.png":
            self._send(200, PNG_BYTES)
        elif self.path == "/missing.png":
            self._send(404, b"not found")
        elif self.path == "/big.png":
            self._send(200, bytes(5000))
        elif self.path == "/big-no-length.png":
            self.close_connection = True
            self._send(200, bytes(5000), headers={"Connection": "close"})
        elif self.path == "/slow.png":
            time.sleep(1.0)
            self._send(200, PNG_BYTES)
        elif self.path == "/away.png":
            self._send(302, headers={"Location": "http://evil.example/x.png", "Content-Length": "0"})
        elif self.path == "/hop.png":
            self._send(301, headers={"Location": "/ok.png", "Content-Length": "0"})
        elif self.path == "/flaky.png":
            self._send(503 if self.hits[self.path] == 1 else 200, PNG_BYTES)
        elif self.path == "/down.png":
            self._send(503, b"busy")
        else:
            self._send(404)


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, int]]]:
    """A threaded HTTP server on 127.0.0.1, port 0; yields its base URL and per-path hit counts."""
    hits: dict[str, int] = {}
    handler = type("Handler", (_Handler,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()
        httpd.server_close()


FAST = {"allowed_hosts": ("127.0.0.1",), "timeout_s": 0.3, "retries": 1, "backoff_s": 0.0, "max_bytes": 2000}


def _fetch(url: str, **overrides) -> bytes:
    policy = ImagePolicy(**{**FAST, **overrides})
    return fetch_image_bytes(resolve_image_ref(url, Path("."), policy), policy)


def test_fetch_ok(server) -> None:
    base, _ = server
    assert _fetch(f"{base}/ok.png") == PNG_BYTES


def test_fetch_follows_a_same_host_redirect(server) -> None:
    base, _ = server
    assert _fetch(f"{base}/hop.png") == PNG_BYTES


def test_fetch_404_is_not_retried(server) -> None:
    base, hits = server
    with pytest.raises(ImageFetchError, match="HTTP 404"):
        _fetch(f"{base}/missing.png")
    assert hits["/missing.png"] == 1


@pytest.mark.parametrize("path", ["/big.png", "/big-no-length.png"])
def test_fetch_too_large_is_refused(server, path: str) -> None:
    base, hits = server
    with pytest.raises(ImageFetchError, match="limit"):
        _fetch(base + path)
    assert hits[path] == 1


def test_fetch_slow_server_times_out_after_retries(server) -> None:
    """Each attempt ends by the client's read timeout: had it waited out the server's 1 s, it would succeed.

    How long giving up takes is measured in bench/image_fetch.py, not asserted on a shared CI machine.
    """
    base, hits = server
    with pytest.raises(TransientFetchError, match=r"after 2 attempts \(ReadTimeout"):
        _fetch(f"{base}/slow.png")
    assert hits["/slow.png"] == 2


def test_fetch_redirect_to_a_host_not_on_the_list_is_refused(server) -> None:
    base, _ = server
    with pytest.raises(ImageFetchError, match="'evil.example' is not on the allow-list"):
        _fetch(f"{base}/away.png")


def test_fetch_retries_server_errors_then_succeeds(server) -> None:
    base, hits = server
    assert _fetch(f"{base}/flaky.png") == PNG_BYTES
    assert hits["/flaky.png"] == 2


def test_fetch_gives_up_on_persistent_server_errors(server) -> None:
    base, hits = server
    with pytest.raises(TransientFetchError, match="HTTP 503"):
        _fetch(f"{base}/down.png", retries=2)
    assert hits["/down.png"] == 3


def test_fetch_refuses_a_url_ref_whose_host_left_the_list(server) -> None:
    base, _ = server
    ref = ImageRef(raw="x", url=f"{base}/ok.png")  # e.g. resolved under an older, wider policy
    with pytest.raises(ImageFetchError, match="not on the allow-list"):
        fetch_image_bytes(ref, ImagePolicy(allowed_hosts=("cdn.example.com",)))
