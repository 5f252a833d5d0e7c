"""The upload endpoint of a real `onmodel serve` (uvicorn on 127.0.0.1, token set): every refusal is clear.

The accepted path (202, the run id, the same upload twice) is in tests/flows/test_serve.py.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.caches import pose_library
from pipelines.production.inbox import ARCHIVE_DIR, UploadDesk
from pipelines.production.profile import load_profile
from pipelines.production.validate import validate
from tests.serving import MAX_UPLOAD_BYTES, UPLOAD_TOKEN, ServedCatalogue
from webapp.upload import UploadConfigError, check_binding, create_app, is_loopback, utf8_problem

AUTH = {"Authorization": f"Bearer {UPLOAD_TOKEN}"}
CSV = {"Content-Type": "text/csv"}


def _post(
    served: ServedCatalogue, content: bytes | Iterator[bytes], headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(served.upload_url, content=content, headers=headers, trust_env=False, timeout=30)


def _archived(served: ServedCatalogue) -> set[str]:
    return {path.name for path in (served.inbox / ARCHIVE_DIR).iterdir()}


def test_unauthenticated_uploads_are_refused_before_anything_is_read(served: ServedCatalogue) -> None:
    before = _archived(served)
    missing = _post(served, b"sku,image,category\n", CSV)
    assert missing.status_code == 401 and "needs a token" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = _post(served, b"sku,image,category\n", CSV | {"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "The bearer token is wrong."
    basic = _post(served, b"sku,image,category\n", CSV | {"Authorization": f"Basic {UPLOAD_TOKEN}"})
    assert basic.status_code == 401
    assert _archived(served) == before


def test_oversized_uploads_get_413_with_the_limit(served: ServedCatalogue) -> None:
    body = b"sku,image,category\n" + b"A,a.png,shirt\n" * (MAX_UPLOAD_BYTES // 10)
    declared = _post(served, body, AUTH | CSV)
    assert declared.status_code == 413
    assert f"limit of {MAX_UPLOAD_BYTES:,} bytes" in declared.json()["detail"]
    # Without a Content-Length (chunked), the body is cut off once it passes the limit.
    chunked = _post(served, iter([body[:3000], body[3000:]]), AUTH | CSV)
    assert chunked.status_code == 413
    as_form = httpx.post(
        served.upload_url,
        files={"file": ("big.csv", body, "text/csv")},
        headers=AUTH,
        trust_env=False,
        timeout=30,
    )
    assert as_form.status_code == 413


@pytest.mark.parametrize(
    "content_type, fragment",
    [
        ("application/json", "application/json is not a CSV upload"),
        ("application/x-www-form-urlencoded", "Content-Type: text/csv"),  # curl --data-binary without -H
        ("", "(none) is not a CSV upload"),
    ],
)
def test_other_content_types_get_415_saying_how_to_send_it(
    served: ServedCatalogue, content_type: str, fragment: str
) -> None:
    headers = AUTH | ({"Content-Type": content_type} if content_type else {})
    answer = _post(served, b"sku,image,category\nA,a.png,shirt\n", headers)
    assert answer.status_code == 415
    assert fragment in answer.json()["detail"]


def test_a_form_file_that_is_not_csv_gets_415(served: ServedCatalogue) -> None:
    answer = httpx.post(
        served.upload_url,
        files={"file": ("photo.png", b"\x89PNG\r\n", "image/png")},
        headers=AUTH,
        trust_env=False,
        timeout=30,
    )
    assert answer.status_code == 415 and "image/png, not a CSV" in answer.json()["detail"]
    no_file = httpx.post(served.upload_url, data={"note": "x"}, files={"other": ("a.csv", b"a", "text/csv")},
                         headers=AUTH, trust_env=False, timeout=30)  # fmt: skip
    assert no_file.status_code == 422 and "no file in the field `file`" in no_file.json()["detail"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("sku,image,category\nA,a.png,Röcke\n".encode("cp1252"), "not UTF-8 text (byte 0xf6"),
        (codecs.BOM_UTF16_LE + "sku,image,category\n".encode("utf-16-le"), "UTF-16"),
        (b"", "empty"),
    ],
)
def test_bad_encodings_get_422_naming_the_export_to_use(
    served: ServedCatalogue, body: bytes, fragment: str
) -> None:
    answer = _post(served, body, AUTH | CSV)
    assert answer.status_code == 422
    assert fragment in answer.json()["detail"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"just some words\nand more words\n", "header row does not match"),
        (b"sku,image,category\n", "no product rows"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "not a CSV text file: it looks like a PNG image"),
    ],
)
def test_malformed_csvs_get_422_with_the_validators_reason(
    served: ServedCatalogue, body: bytes, fragment: str
) -> None:
    answer = _post(served, body, AUTH | CSV)
    assert answer.status_code == 422, answer.text
    verdict = answer.json()
    assert fragment in verdict["detail"]
    assert verdict.get("accepted", 0) == 0 and verdict.get("flow_run_id") is None  # nothing started


def test_a_utf8_bom_csv_is_read_and_row_rejects_come_back_with_row_column_reason(
    served: ServedCatalogue, tmp_path: Path
) -> None:
    body = codecs.BOM_UTF8 + served.upload_csv(tmp_path / "bom.csv", ["BOM-1"], [-1]).read_bytes()
    answer = _post(served, body, AUTH | CSV)
    assert answer.status_code == 422, answer.text  # nothing to render: the only row's photo is missing
    verdict = answer.json()
    assert (verdict["dialect"], verdict["rows_read"], verdict["flow_run_id"]) == ("onmodel", 1, None)
    [reject] = verdict["rejects"]
    assert (reject["row"], reject["sku"], reject["column"]) == (2, "BOM-1", "image")
    assert "does not exist" in reject["reason"] and verdict["detail"].startswith("No row of this CSV")


def test_health_needs_no_token(served: ServedCatalogue) -> None:
    answer = httpx.get(served.upload_url.replace("/uploads", "/health"), trust_env=False, timeout=10)
    assert answer.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("192.168.1.20", False), ("::", False), ("uploads.example.com", False)],
)  # fmt: skip
def test_only_loopback_addresses_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_endpoint_off_loopback_needs_a_real_token(tmp_path: Path) -> None:
    with pytest.raises(UploadConfigError, match="reachable from other machines, without a token"):
        check_binding("0.0.0.0", None, 1000)
    with pytest.raises(UploadConfigError, match="too short"):
        check_binding("0.0.0.0", "secret", 1000)
    with pytest.raises(UploadConfigError, match="size limit"):
        check_binding("127.0.0.1", None, 0)
    check_binding("0.0.0.0", "a-long-enough-secret-token", 1000)
    profile = load_profile("demo")
    desk = UploadDesk(
        tmp_path / "inbox",
        validate_csv=lambda path: validate(path, profile, poses=pose_library()),
        start_run=lambda path, key: "never-started",
    )
    with pytest.raises(UploadConfigError):
        create_app(desk, host="0.0.0.0")


def test_utf8_check_accepts_utf8_with_and_without_bom() -> None:
    assert utf8_problem("sku,title\nA,Röcke\n".encode()) is None
    assert utf8_problem(codecs.BOM_UTF8 + b"sku\nA\n") is None
    assert "position 13" in (utf8_problem("sku,title\nA,Röcke\n".encode("latin-1")) or "")
