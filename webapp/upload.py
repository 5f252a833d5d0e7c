"""The CSV upload endpoint: POST a product CSV, get the verdict and the id of the csv-upload run it started.

```text
POST /uploads[?name=products.csv]   body: the CSV (Content-Type: text/csv) or multipart/form-data with field `file`
  202  {"accepted": 3, "rejected_rows": 1, "rejects": [{"row": 4, "sku": "", "column": "image", "reason": ...}],
        "flow_run_id": "...", "duplicate": false, ...}          a run was started for the accepted rows
  200  the same, "duplicate": true, "flow_run_id" of the earlier run: this content was uploaded before
  401  no or wrong bearer token   413  too large   415  not CSV   422  not UTF-8, or no row can be produced
  503  the run could not be started (Prefect server unreachable); nothing was kept, send it again
GET /health
```

Bound to 127.0.0.1 by default; bound anywhere else it refuses to start without a token. The checks and the
verdict are the same `validate` as `onmodel validate` (through `UploadDesk`), never a second validator.
"""

from __future__ import annotations

import codecs
import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from pipelines.production.inbox import UploadDesk, UploadVerdict

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750
DEFAULT_MAX_BYTES = 20_000_000
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel"})
# The part type browsers and curl give a .csv file inside multipart/form-data.
CSV_PART_TYPES = CSV_TYPES | {"application/octet-stream", ""}
SEND_HINT = (
    "Send the CSV as the body with `Content-Type: text/csv` (curl --data-binary @products.csv -H "
    "'Content-Type: text/csv'), or as multipart/form-data with the field `file` (curl -F file=@products.csv)."
)

logger = logging.getLogger("onmodel.upload")


class UploadConfigError(ValueError):
    """The endpoint cannot start as configured (a public address without a token, a bad size limit)."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and 'localhost' are loopback; anything else (0.0.0.0, a LAN address) is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_binding(host: str, token: str | None, max_bytes: int) -> None:
    """Refuse an endpoint other machines can reach without a token, and a size limit that is no limit."""
    if not is_loopback(host) and not token:
        raise UploadConfigError(
            f"the upload endpoint would listen on {host}, reachable from other machines, without a token. Set "
            "a token (--upload-token or ONMODEL_UPLOAD_TOKEN; clients send `Authorization: Bearer TOKEN`), or "
            f"bind it to {DEFAULT_HOST}."
        )
    if token is not None and len(token) < 16:
        raise UploadConfigError("the upload token is too short to be a secret; use at least 16 characters.")
    if max_bytes < 1:
        raise UploadConfigError(f"the upload size limit must be >= 1 byte; got {max_bytes}.")


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def utf8_problem(data: bytes) -> str | None:
    """Why these bytes are not UTF-8 text (with or without BOM), in words a merchandiser can act on; or None."""
    from catalog import CatalogError
    from catalog.csv_reading import decode_csv_bytes

    try:
        data.decode("utf-8")  # a UTF-8 BOM is valid UTF-8; the CSV reader strips it
        return None
    except UnicodeDecodeError as error:
        position, byte = error.start, data[error.start]
    try:  # not text at all (an image, an .xlsx): the CSV reader's own words say what it looks like
        decode_csv_bytes(data)
    except CatalogError as error:
        return str(error)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "The file is UTF-16 text; export it again as 'CSV UTF-8' (comma delimited)."
    return (
        f"The file is not UTF-8 text (byte 0x{byte:02x} at position {position} is not valid UTF-8; Excel's plain "
        "'CSV' is Windows-1252). Export it again as 'CSV UTF-8'."
    )


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` bytes (never held whole in memory)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _one_chunk(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


def create_app(
    desk: UploadDesk,
    *,
    token: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    host: str = DEFAULT_HOST,
) -> FastAPI:
    """The upload app for one desk (inbox folder, profile, output folder); `host` is where it will listen."""
    check_binding(host, token, max_bytes)
    expected = token.encode() if token else None
    app = FastAPI(title="onmodel upload", docs_url=None, redoc_url=None, openapi_url=None)
    too_large = (
        f"The upload is larger than the limit of {max_bytes:,} bytes. Split the CSV into smaller files, or raise "
        "the limit (onmodel serve --max-upload-bytes)."
    )

    def unauthorized(request: Request) -> JSONResponse | None:
        if expected is None:
            return None
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return _error(
                401,
                "This endpoint needs a token: send `Authorization: Bearer TOKEN`.",
                **{"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.strip().encode(), expected):
            return _error(
                401, "The bearer token is wrong.", **{"WWW-Authenticate": 'Bearer error="invalid_token"'}
            )
        return None

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/uploads")
    async def upload(request: Request, name: str = "upload.csv") -> JSONResponse:
        """Validate a product CSV, keep it in the inbox archive and start its csv-upload run (once per content)."""
        # 1. Who is asking (before reading a byte of the body).
        if (refusal := unauthorized(request)) is not None:
            return refusal
        # 2. What is sent: a CSV body or a multipart form.
        media_type = _media_type(request.headers.get("content-type"))
        multipart = media_type == "multipart/form-data"
        if not multipart and media_type not in CSV_TYPES:
            return _error(415, f"Content-Type {media_type or '(none)'} is not a CSV upload. {SEND_HINT}")
        # 3. How much: the declared length first, then the bytes actually read.
        limit = max_bytes + (MULTIPART_OVERHEAD if multipart else 0)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _error(413, too_large)
        body = await _read_capped(request, limit)
        if body is None:
            return _error(413, too_large)
        if multipart:
            try:
                form = await MultiPartParser(
                    request.headers, _one_chunk(body), max_files=1, max_fields=10
                ).parse()
            except MultiPartException as error:
                return _error(422, f"The multipart form cannot be read ({error.message}). {SEND_HINT}")
            part = form.get("file")
            if not isinstance(part, UploadFile):
                return _error(422, f"The multipart form has no file in the field `file`. {SEND_HINT}")
            if _media_type(part.content_type) not in CSV_PART_TYPES:
                return _error(415, f"The file part is {part.content_type}, not a CSV. {SEND_HINT}")
            body, name = await part.read(), part.filename or name
            await form.close()
            if len(body) > max_bytes:
                return _error(413, too_large)
        # 4. The encoding: UTF-8, with or without BOM.
        if not body.strip():
            return _error(422, "The upload is empty. Send the CSV with its header row.")
        if (problem := utf8_problem(body)) is not None:
            return _error(422, problem)
        # 5. The verdict and the run (validation and Prefect calls block: a worker thread).
        try:
            verdict = await run_in_threadpool(desk.receive_bytes, body, name)
        except Exception as error:
            logger.exception("upload of %s: the csv-upload run could not be started", name)
            return _error(
                503,
                f"The CSV was valid but its csv-upload run could not be started ({type(error).__name__}: "
                f"{error}). Nothing was kept; send it again when the Prefect server is up.",
            )
        return JSONResponse(verdict_body(verdict), status_code=_status(verdict))

    return app


def _status(verdict: UploadVerdict) -> int:
    if verdict.accepted == 0:
        return 422
    return 200 if verdict.duplicate else 202


def verdict_body(verdict: UploadVerdict) -> dict[str, Any]:
    """The answer's JSON: counts, every reject (row, column, reason), the run id; a file-level reason as detail."""
    body = verdict.to_dict()
    if verdict.accepted == 0:
        body["detail"] = verdict.file_error or "No row of this CSV can be produced; see `rejects`."
    return body


class UploadServer:
    """The app on uvicorn in a daemon thread (inside `onmodel serve`, or alone); `stop()` ends it."""

    def __init__(self, app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="onmodel-upload", daemon=True)
        self.host = host

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> UploadServer:
        """Start serving and wait until the socket is bound (a port in use is an UploadConfigError)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UploadConfigError(
                    f"the upload endpoint could not listen on {self.host}:{self._server.config.port} (in use?); "
                    "choose another --upload-port."
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
