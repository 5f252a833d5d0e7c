"""The upload inbox without Prefect: what is picked up when, the archive, the rejects report, one run per content.

The desk's `start_run` here records its calls (the interface flows/serve.py fills with Prefect's
run_deployment); tests/flows/test_serve.py runs the same desk against a real Prefect server.
"""

from __future__ import annotations

import csv
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.caches import pose_library
from pipelines.production.inbox import (
    ARCHIVE_DIR,
    LEDGER_NAME,
    FileSnapshot,
    InboxWatcher,
    UploadDesk,
    UploadLedger,
    archive_name,
    is_inbox_candidate,
    safe_upload_name,
    settled_files,
)
from pipelines.production.profile import load_profile
from pipelines.production.validate import validate
from tests.flows.helpers import write_csv, write_flatlays


class RecordingStarts:
    """start_run that records (csv path, key) and answers run ids; `fail` makes the next call raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str]] = []
        self.fail: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, csv_path: Path, key: str) -> str:
        with self.lock:
            if self.fail is not None:
                error, self.fail = self.fail, None
                raise error
            self.calls.append((csv_path, key))
            return f"run-{len(self.calls)}"


@pytest.fixture
def photos(tmp_path: Path) -> list[dict[str, str]]:
    """Two generated flat-lays, named by absolute path (uploads are read from the archive folder)."""
    rows = write_flatlays(tmp_path / "photos", 2)
    return [row | {"image": str(tmp_path / "photos" / row["image"])} for row in rows]


def _desk(inbox: Path, starts: RecordingStarts, photos_root: Path, target: str = "demo|out") -> UploadDesk:
    profile = load_profile("demo").with_overrides(images={"allowed_roots": [str(photos_root)]})
    return UploadDesk(
        inbox,
        validate_csv=lambda path: validate(path, profile, poses=pose_library()),
        start_run=starts,
        target=target,
    )


@pytest.mark.parametrize(
    "name, taken",
    [
        ("products.csv", True),
        ("PRODUCTS.CSV", True),
        ("products.csv.part", False),
        ("products.csv.tmp", False),
        ("products.csv.crdownload", False),
        (".products.csv", False),  # dotfiles: our own atomic writes, editors' swap files
        (".products.csv.1a2b3c4d.tmp", False),
        ("~$products.csv", False),  # Office lock file
        ("products.xlsx", False),
        ("notes.txt", False),
    ],
)
def test_only_finished_csv_names_are_candidates(name: str, taken: bool) -> None:
    assert is_inbox_candidate(name) is taken


def test_a_file_is_settled_only_when_two_polls_agree() -> None:
    first = {"a.csv": FileSnapshot(10, 1), "b.csv": FileSnapshot(5, 1)}
    assert settled_files({}, first) == []
    second = {"a.csv": FileSnapshot(10, 1), "b.csv": FileSnapshot(9, 2), "c.csv": FileSnapshot(1, 1)}
    assert settled_files(first, second) == ["a.csv"]  # b still growing, c new


def test_archive_names_stay_inside_the_archive_and_sort_by_arrival() -> None:
    assert safe_upload_name("../../etc/passwd") == "passwd.csv"
    assert safe_upload_name("C:\\Users\\me\\Neue Produkte.csv") == "Neue_Produkte.csv"
    assert safe_upload_name("") == "upload.csv"
    early = archive_name("x.csv", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = archive_name("x.csv", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(microseconds=1))
    assert early == "20250102T030405000000Z__x.csv" and early < late


def test_a_growing_or_temporarily_named_file_waits_then_is_taken_once(
    tmp_path: Path, photos: list[dict[str, str]]
) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    watcher = InboxWatcher(_desk(inbox, starts, tmp_path / "photos"), poll_s=0.1)
    growing = inbox / "new.csv"
    with growing.open("w") as handle:
        handle.write("sku,image,category\n")
    (inbox / "other.csv.part").write_text("sku,image,category\n")
    assert watcher.poll_once() == []  # first sight
    # 1. It grows between polls: not settled.
    with growing.open("a") as handle:
        handle.write(f"{photos[0]['sku']},{photos[0]['image']},shirt\n")
    assert watcher.poll_once() == [] and growing.exists()
    # 2. Unchanged on the next poll: archived, validated, one run started with the archived path.
    [verdict] = watcher.poll_once()
    assert not growing.exists() and (inbox / "other.csv.part").exists()
    archived = Path(verdict.csv_path)
    assert archived.parent == inbox.resolve() / ARCHIVE_DIR and archived.name.endswith("__new.csv")
    assert (verdict.accepted, verdict.rejects, verdict.flow_run_id) == (1, (), "run-1")
    assert starts.calls == [(archived, starts.calls[0][1])]
    assert watcher.poll_once() == []  # nothing left


def test_rows_with_errors_get_a_report_and_the_good_rows_still_start_a_run(
    tmp_path: Path, photos: list[dict[str, str]]
) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    desk = _desk(inbox, starts, tmp_path / "photos")
    rows = photos + [{"sku": "BAD 1", "image": photos[0]["image"], "category": "shirt"}]
    dropped = write_csv(inbox / "mixed.csv", rows)
    verdict = desk.receive_file(dropped)
    assert (verdict.accepted, verdict.rejected_rows, verdict.flow_run_id) == (2, 1, "run-1")
    report = Path(verdict.rejects_report or "")
    assert report.parent == inbox.resolve() / ARCHIVE_DIR and report.name.endswith("__mixed.rejects.csv")
    [reject] = list(csv.DictReader(report.open()))
    assert (reject["row"], reject["sku"], reject["column"]) == ("4", "BAD 1", "sku")
    # The verdict is the CLI's: the same validate on the archived file.
    profile = load_profile("demo").with_overrides(images={"allowed_roots": [str(tmp_path / "photos")]})
    cli = validate(Path(verdict.csv_path), profile, poses=pose_library())
    assert [(r.row, r.column, r.reason) for r in cli.rejects] == [
        (r.row, r.column, r.reason) for r in verdict.rejects
    ]


def test_a_file_that_is_no_csv_is_archived_with_its_reason_and_starts_nothing(tmp_path: Path) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    desk = _desk(inbox, starts, tmp_path)
    (inbox / "photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    verdict = desk.receive_file(inbox / "photo.csv")
    assert verdict.accepted == 0 and verdict.flow_run_id is None and starts.calls == []
    assert verdict.file_error and "not a CSV" in verdict.file_error
    assert Path(verdict.rejects_report or "").exists() and Path(verdict.csv_path).exists()


def test_the_same_content_twice_starts_one_run(tmp_path: Path, photos: list[dict[str, str]]) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    desk = _desk(inbox, starts, tmp_path / "photos")
    content = write_csv(tmp_path / "p.csv", photos).read_bytes()
    first = desk.receive_bytes(content, "p.csv")
    (inbox / "again.csv").write_bytes(content)  # the same bytes dropped into the inbox under another name
    second = desk.receive_file(inbox / "again.csv")
    third = desk.receive_bytes(content, "p-copy.csv")
    assert len(starts.calls) == 1
    assert (first.duplicate, second.duplicate, third.duplicate) == (False, True, True)
    assert first.flow_run_id == second.flow_run_id == third.flow_run_id == "run-1"
    assert Path(second.csv_path).exists()  # the dropped copy is archived too, nothing is lost
    # Another target (profile or output folder) is a new upload.
    other = _desk(inbox, starts, tmp_path / "photos", target="sd15|out").receive_bytes(content, "p.csv")
    assert (other.duplicate, other.flow_run_id) == (False, "run-2")
    # The ledger survives the process (a new desk on the same inbox).
    assert _desk(inbox, starts, tmp_path / "photos").receive_bytes(content, "p.csv").flow_run_id == "run-1"
    assert len(UploadLedger(inbox / LEDGER_NAME).entries()) == 2


def test_concurrent_uploads_of_the_same_content_start_one_run(
    tmp_path: Path, photos: list[dict[str, str]]
) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    content = write_csv(tmp_path / "p.csv", photos).read_bytes()
    desks = [_desk(inbox, starts, tmp_path / "photos") for _ in range(4)]  # as if four processes
    verdicts = []
    barrier = threading.Barrier(len(desks))

    def upload(desk: UploadDesk) -> None:
        barrier.wait()
        verdicts.append(desk.receive_bytes(content, "p.csv"))

    threads = [threading.Thread(target=upload, args=(desk,)) for desk in desks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts.calls) == 1
    assert sorted(v.duplicate for v in verdicts) == [False, True, True, True]


def test_a_run_that_cannot_start_puts_the_file_back_for_the_next_poll(
    tmp_path: Path, photos: list[dict[str, str]]
) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    watcher = InboxWatcher(_desk(inbox, starts, tmp_path / "photos"), poll_s=0.1)
    content = write_csv(inbox / "p.csv", photos).read_bytes()
    starts.fail = ConnectionError("Prefect server down")
    watcher.poll_once()
    assert watcher.poll_once() == []  # settled, but the start failed: logged, not raised
    assert (inbox / "p.csv").read_bytes() == content  # back in the inbox, unchanged
    assert list((inbox / ARCHIVE_DIR).iterdir()) == [] and UploadLedger(inbox / LEDGER_NAME).entries() == []
    watcher.poll_once()
    [verdict] = watcher.poll_once()  # the server is back
    assert verdict.flow_run_id == "run-1" and not (inbox / "p.csv").exists()


def test_an_http_upload_whose_run_cannot_start_keeps_nothing(
    tmp_path: Path, photos: list[dict[str, str]]
) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    desk = _desk(inbox, starts, tmp_path / "photos")
    content = write_csv(tmp_path / "p.csv", photos).read_bytes()
    starts.fail = ConnectionError("Prefect server down")
    with pytest.raises(ConnectionError):
        desk.receive_bytes(content, "p.csv")
    assert list((inbox / ARCHIVE_DIR).iterdir()) == []
    assert desk.receive_bytes(content, "p.csv").flow_run_id == "run-1"  # and the retry is not a "duplicate"


def test_the_watcher_loop_stops_when_asked(tmp_path: Path, photos: list[dict[str, str]]) -> None:
    inbox, starts = tmp_path / "inbox", RecordingStarts()
    seen = []
    watcher = InboxWatcher(_desk(inbox, starts, tmp_path / "photos"), poll_s=0.05, on_verdict=seen.append)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))
    thread.start()
    staged = write_csv(tmp_path / "p.csv", photos)
    os.replace(staged, inbox / "p.csv")
    try:
        for _ in range(200):
            if seen:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert [v.flow_run_id for v in seen] == ["run-1"]


def test_poll_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="poll_s must be > 0"):
        InboxWatcher(_desk(tmp_path / "inbox", RecordingStarts(), tmp_path), poll_s=0)
