"""Resolve image references from a CSV (paths, file:// and http(s):// links) and fetch their bytes safely.

Only files under an allowed folder (the CSV's folder always is one) and links to allow-listed hosts are
accepted, so a product sheet can never make onmodel read /etc/passwd or call an internal service.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

from catalog.errors import ImageFetchError, ImageRefError, TransientFetchError
from catalog.schema import ImageRef

if TYPE_CHECKING:
    import httpx

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_MAX_REDIRECTS = 5
_CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class ImagePolicy:
    """Where product images may come from, and how hard to try fetching them."""

    allowed_roots: tuple[Path, ...] = ()  # absolute paths must lie under one (the CSV folder always is one)
    allowed_hosts: tuple[str, ...] = ()  # "cdn.example.com" exactly, or "*.example.com" for its subdomains
    timeout_s: float = 20
    max_bytes: int = 30_000_000
    retries: int = 2  # extra attempts after a timeout or a 5xx answer
    backoff_s: float = 0.5  # wait before retry n is backoff_s * 2**(n-1)


def _is_ip_literal(host: str) -> bool:
    """Whether the host is written as an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Exact host or '*.suffix' subdomain match; IP literals must be listed literally (so private ones too)."""
    host = host.lower().rstrip(".")
    entries = [entry.strip().lower().rstrip(".") for entry in allowed_hosts]
    if host in entries:
        return True
    if _is_ip_literal(host):
        return False  # 127.0.0.1, 10.x, 169.254.x, ::1 and public addresses alike: only when listed
    return any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in entries)


def _allowed_hosts_text(allowed_hosts: tuple[str, ...]) -> str:
    """The allow-list as a phrase for messages."""
    if not allowed_hosts:
        return "no image hosts are allowed (set images.allowed_hosts in the run profile)"
    return "allowed hosts: " + ", ".join(allowed_hosts)


def _check_url(url: str, policy: ImagePolicy) -> str:
    """The URL if its scheme and host pass the policy; otherwise ImageRefError with the reason."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ImageRefError(f"'{parts.scheme}:' image links are not accepted; only http(s) links are.")
    host = parts.hostname or ""
    if not host:
        raise ImageRefError(f"The image link '{url}' has no host name.")
    if parts.username is not None or parts.password is not None:
        raise ImageRefError(f"The image link '{url}' carries a user name or password; give a plain link.")
    if not host_allowed(host, policy.allowed_hosts):
        raise ImageRefError(
            f"The image host '{host}' is not on the allow-list ({_allowed_hosts_text(policy.allowed_hosts)})."
        )
    return url


def allowed_roots(csv_dir: Path, policy: ImagePolicy) -> tuple[Path, ...]:
    """The CSV folder plus the policy's roots, symlinks resolved."""
    return (Path(csv_dir).resolve(), *(Path(root).resolve() for root in policy.allowed_roots))


class ImageRefResolver:
    """Resolves the image cells of one CSV; folder look-ups are cached so 100k rows take about a second."""

    def __init__(self, csv_dir: Path, policy: ImagePolicy | None = None) -> None:
        self.csv_dir = os.path.abspath(csv_dir)
        self.policy = policy or ImagePolicy()
        self.roots = allowed_roots(Path(csv_dir), self.policy)
        self._root_strings = tuple(str(root) for root in self.roots)
        self._real_folders: dict[str, str] = {}  # folder as written -> symlink-free folder
        self._folder_inside: dict[str, bool] = {}  # symlink-free folder -> under an allowed root
        self._folder_paths: dict[str, Path] = {}  # symlink-free folder -> its Path (children are cheap)

    def _inside_roots(self, real_path: str) -> bool:
        """Whether a symlink-free path lies under an allowed root (string test, no file system access)."""
        return any(
            real_path == root or real_path.startswith(root.rstrip(os.sep) + os.sep)
            for root in self._root_strings
        )

    def _real_folder(self, folder: str) -> str:
        """The folder with symlinks and '..' resolved, cached."""
        real = self._real_folders.get(folder)
        if real is None:
            real = self._real_folders[folder] = os.path.realpath(folder)
        return real

    def _resolve_local(self, raw: str, path: str) -> ImageRef:
        """A local file checked against the allowed roots (symlinks resolved) and for existence."""
        candidate = os.path.join(self.csv_dir, path)  # an absolute `path` replaces the CSV folder
        folder, name = os.path.split(candidate)
        if name in ("", ".", ".."):
            real = os.path.realpath(candidate)
            status = None
        else:
            real = os.path.join(self._real_folder(folder), name)
            try:
                status = os.lstat(real)
            except OSError:  # missing, or a file where a folder should be
                status = None
            if status is not None and stat.S_ISLNK(status.st_mode):
                real, status = os.path.realpath(real), None
        real_folder = os.path.dirname(real)
        inside = self._folder_inside.get(real_folder)
        if inside is None:
            inside = self._folder_inside[real_folder] = self._inside_roots(real_folder)
        if not (inside or real in self._root_strings):
            raise ImageRefError(
                f"The image path '{raw}' leads outside the allowed image folders "
                f"({', '.join(self._root_strings)}). Put the image beside the CSV (or in a folder below it) and "
                "give its relative path."
            )
        is_file = stat.S_ISREG(status.st_mode) if status is not None else os.path.isfile(real)
        if not is_file:
            where = "is a folder, not an image file" if os.path.isdir(real) else "does not exist"
            raise ImageRefError(f"The image file '{raw}' {where} (looked for {real}).")
        if (parent := self._folder_paths.get(real_folder)) is None:
            parent = self._folder_paths[real_folder] = Path(real_folder)
        # The same Path as Path(real), its folder parsed once per folder, not once per row.
        return ImageRef(raw=raw, path=parent / os.path.basename(real))

    def __call__(self, raw: str) -> ImageRef:
        """Resolve one CSV image cell to an ImageRef, or raise ImageRefError with a merchandiser-facing reason."""
        reference = raw.strip()
        if not reference:
            raise ImageRefError("No image is given.")
        if _WINDOWS_DRIVE.match(reference):
            raise ImageRefError(
                f"'{reference}' is a Windows path, which cannot be read here. Put the image beside the CSV "
                "and give its relative path (e.g. images/shirt.jpg)."
            )
        if reference.startswith("//"):
            reference = "https:" + reference  # protocol-relative links (Shopify exports write them)
        if ":" not in reference:  # the common case: a plain path, no URL parsing needed
            return self._resolve_local(raw, reference.replace("\\", "/"))

        try:
            parts = urlsplit(reference)
        except ValueError as error:  # e.g. an unclosed IPv6 bracket
            raise ImageRefError(f"'{reference}' is not a valid image link ({error}).") from error
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            return ImageRef(raw=raw, url=_check_url(reference, self.policy))
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise ImageRefError(f"The file link '{reference}' names another machine; give a local path.")
            return self._resolve_local(raw, url2pathname(unquote(parts.path)))
        if scheme:
            raise ImageRefError(
                f"'{scheme}:' image links are not accepted. Give an image file path (relative to the CSV) "
                "or an http(s) link to an allowed host."
            )
        return self._resolve_local(raw, reference.replace("\\", "/"))


def resolve_image_ref(raw: str, csv_dir: Path, policy: ImagePolicy | None = None) -> ImageRef:
    """Resolve one CSV image cell (path, file:// or http(s):// link) to an ImageRef, or raise ImageRefError."""
    return ImageRefResolver(csv_dir, policy)(raw)


def _read_local(path: Path, policy: ImagePolicy) -> bytes:
    """A local image's bytes, refusing files over the size cap."""
    try:
        size = path.stat().st_size
        if size > policy.max_bytes:
            raise ImageFetchError(
                f"The image file '{path}' is {size:,} bytes; the limit is {policy.max_bytes:,}."
            )
        with path.open("rb") as handle:
            data = handle.read(policy.max_bytes + 1)
    except OSError as error:
        raise ImageFetchError(f"The image file '{path}' cannot be read ({error.strerror}).") from error
    if len(data) > policy.max_bytes:
        raise ImageFetchError(f"The image file '{path}' grew past the limit of {policy.max_bytes:,} bytes.")
    return data


@dataclass(frozen=True)
class FetchedImage:
    """A GET's answer: the bytes (None when the server said 304 Not Modified) and its validators."""

    data: bytes | None
    etag: str = ""
    last_modified: str = ""


def _fetch_once(
    client: httpx.Client, url: str, policy: ImagePolicy, headers: dict[str, str] | None = None
) -> FetchedImage:
    """One GET with manual redirects (each target re-checked) and a streaming size cap and overall deadline."""
    import httpx

    deadline = time.monotonic() + policy.timeout_s
    for hop in range(_MAX_REDIRECTS + 1):
        try:
            _check_url(url, policy)  # again on every hop: a redirect must not leave the allow-list
        except ImageRefError as error:
            raise ImageFetchError(f"{error}{' (reached through a redirect)' if hop else ''}") from error
        with client.stream("GET", url, headers=headers or {}) as response:
            if response.status_code == 304 and headers:
                return FetchedImage(
                    None, response.headers.get("etag", ""), response.headers.get("last-modified", "")
                )
            if response.is_redirect:
                location = response.headers.get("location", "")
                if not location:
                    raise ImageFetchError(f"The image link {url} redirects without saying where to.")
                url = urljoin(url, location)
                continue
            if response.status_code >= 500:
                raise httpx.HTTPStatusError(
                    f"HTTP {response.status_code}", request=response.request, response=response
                )
            if response.status_code >= 400:
                raise ImageFetchError(
                    f"The image link {url} answered HTTP {response.status_code}; check the link."
                )
            length = response.headers.get("content-length", "")
            declared = (
                int(length) if length.isdigit() else 0
            )  # a missing or odd length: the stream cap decides
            if declared > policy.max_bytes:
                raise ImageFetchError(
                    f"The image at {url} is {declared:,} bytes; the limit is {policy.max_bytes:,}."
                )
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes(_CHUNK_BYTES):
                received += len(chunk)
                if received > policy.max_bytes:
                    raise ImageFetchError(
                        f"The image at {url} is larger than the limit of {policy.max_bytes:,} bytes."
                    )
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"no complete answer within {policy.timeout_s} s")
                chunks.append(chunk)
            validators = response.headers.get("etag", ""), response.headers.get("last-modified", "")
            return FetchedImage(b"".join(chunks), *validators)
    raise ImageFetchError(f"The image link {url} redirects more than {_MAX_REDIRECTS} times.")


def fetch_image_bytes(ref: ImageRef, policy: ImagePolicy | None = None) -> bytes:
    """An image's bytes from a local path or an allow-listed URL; retries only timeouts and 5xx answers."""
    policy = policy or ImagePolicy()
    if ref.path is not None:
        return _read_local(ref.path, policy)
    fetched = fetch_image_url(ref, policy)
    assert fetched.data is not None  # no validators sent: never 304
    return fetched.data


def fetch_image_url(
    ref: ImageRef, policy: ImagePolicy, etag: str = "", last_modified: str = ""
) -> FetchedImage:
    """GET an allow-listed image URL; with validators (ETag, Last-Modified) a 304 comes back without bytes.

    Retries only timeouts and 5xx answers.
    """
    if ref.url is None:
        raise ImageFetchError(f"The image reference '{ref.raw}' was not resolved to a file or a link.")

    import httpx  # only URL fetches need it

    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    last_error: Exception | None = None
    # trust_env=False: proxy variables must not route product images through somewhere unexpected.
    with httpx.Client(timeout=policy.timeout_s, follow_redirects=False, trust_env=False) as client:
        for attempt in range(policy.retries + 1):
            if attempt:
                time.sleep(policy.backoff_s * 2 ** (attempt - 1))
            try:
                return _fetch_once(client, ref.url, policy, headers)
            except (httpx.TimeoutException, httpx.HTTPStatusError, httpx.TransportError) as error:
                last_error = error
            except httpx.InvalidURL as error:
                raise ImageFetchError(f"The image link '{ref.url}' is not a valid link ({error}).") from error
    raise TransientFetchError(
        f"The image at {ref.url} could not be fetched after {policy.retries + 1} attempts "
        f"({type(last_error).__name__}: {last_error}); the server was slow or failing, a later run may work."
    )
