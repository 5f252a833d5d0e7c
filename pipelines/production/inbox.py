"""CSV uploads: a file dropped into the inbox folder (or posted to the endpoint) is validated, archived and starts
one csv-upload run. No Prefect here: `flows/serve.py` passes in how to validate and how to start a run.

The inbox folder's layout:

```text
inbox/
  new-products.csv                 dropped here; picked up once its size and mtime stop changing
  new-products.csv.part            ignored until renamed (also .tmp, dotfiles, Office's ~$ lock files)
  archive/<stamp>__new-products.csv           the CSV the run reads (moved here by an atomic rename)
  archive/<stamp>__new-products.rejects.csv   row, sku, column, reason (only when rows were rejected)
  .onmodel-uploads.sqlite          ledger: content hash -> archived CSV, verdict, flow run id
```

The ledger makes an upload idempotent: the same bytes for the same target (profile, output folder) start one
run, and a second upload answers with the first run's id. The job store's skip of current jobs is the second
guard (a re-run of the same products renders nothing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog.schema import CatalogReadResult
from pipelines.image_io import write_bytes_atomic
from pipelines.production.outcomes import REJECT_COLUMNS, RejectRecord, csv_text

ARCHIVE_DIR = "archive"
LEDGER_NAME = ".onmodel-uploads.sqlite"
# Names a writer uses while the file is not finished (browsers, rsync, editors, our own atomic writes).
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", ".filepart")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

# (archived CSV, idempotency key) -> flow run id. Given by flows/serve.py (Prefect's run_deployment).
StartRun = Callable[[Path, str], str]
# archived CSV -> the verdict of `pipelines.production.validate.validate` with the served profile.
ValidateCsv = Callable[[Path], CatalogReadResult]

logger = logging.getLogger("onmodel.inbox")


def content_hash(data: bytes) -> str:
    """SHA-256 of the uploaded bytes (hex): the identity of an upload."""
    return hashlib.sha256(data).hexdigest()


def is_inbox_candidate(name: str) -> bool:
    """Whether a file name in the inbox is a finished CSV: *.csv, not hidden, not a lock or temp name."""
    if name.startswith((".", "~")):  # dotfiles (our own atomic writes) and Office's ~$ lock files
        return False
    lower = name.lower()
    return lower.endswith(".csv") and not lower.endswith(PARTIAL_SUFFIXES)


def safe_upload_name(name: str) -> str:
    """A file name for the archive from a client's name: no folders, only [A-Za-z0-9._-], ends in .csv."""
    base = _UNSAFE_NAME.sub("_", Path(name.replace("\\", "/")).name).strip("._") or "upload"
    base = base[:100]
    return base if base.lower().endswith(".csv") else f"{base}.csv"


def archive_name(name: str, received: datetime) -> str:
    """'<UTC stamp>__<safe name>': sorts by arrival, never collides with the same name uploaded again."""
    return f"{received.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}__{safe_upload_name(name)}"


def rejects_report_path(archived_csv: Path) -> Path:
    """The rejects report beside an archived CSV: <stem>.rejects.csv."""
    return archived_csv.with_name(f"{archived_csv.stem}.rejects.csv")


@dataclass(frozen=True)
class FileSnapshot:
    """What a poll saw of a file: a file is complete once two polls see the same size and mtime."""

    size: int
    mtime_ns: int


def snapshot_folder(folder: Path) -> dict[str, FileSnapshot]:
    """Size and mtime of every candidate CSV directly in the folder (sub-folders such as archive/ are not read)."""
    seen: dict[str, FileSnapshot] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return seen
    for entry in entries:
        if not is_inbox_candidate(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # renamed away between listing and stat
            continue
        seen[entry.name] = FileSnapshot(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return seen


def settled_files(previous: Mapping[str, FileSnapshot], current: Mapping[str, FileSnapshot]) -> list[str]:
    """Names whose size and mtime are unchanged since the previous poll (still growing files wait), sorted."""
    return sorted(name for name, snap in current.items() if previous.get(name) == snap)


@dataclass(frozen=True)
class UploadVerdict:
    """What happened to one upload: the validation verdict and the csv-upload run it started (or the earlier one)."""

    name: str  # as dropped or uploaded
    content_hash: str
    csv_path: str  # the archived CSV the run reads
    dialect: str
    rows_read: int
    accepted: int
    rejects: tuple[RejectRecord, ...] = ()
    rejects_report: str | None = None
    flow_run_id: str | None = None
    duplicate: bool = False  # the same content was received before: no second run
    received_at: str = ""

    @property
    def file_error(self) -> str | None:
        """The reason the whole file was rejected (not a CSV, no header ...), or None."""
        return next((reject.reason for reject in self.rejects if reject.row == 0), None)

    @property
    def rejected_rows(self) -> int:
        return len({reject.row for reject in self.rejects if reject.row > 0})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rejects"] = [
            {"row": r.row, "sku": r.sku, "column": r.column, "reason": r.reason} for r in self.rejects
        ]
        data["rejected_rows"] = self.rejected_rows
        data["file_error"] = self.file_error
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UploadVerdict:
        fields = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        fields["rejects"] = tuple(RejectRecord(**reject) for reject in data.get("rejects", ()))
        return cls(**fields)


@dataclass
class LedgerEntry:
    key: str
    verdict: UploadVerdict
    flow_run_id: str | None = None


class UploadLedger:
    """Which upload contents were received for which target, and the run each started (SQLite, thread- and
    process-safe: every claim is one IMMEDIATE transaction)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS uploads (key TEXT PRIMARY KEY, verdict TEXT NOT NULL, "
                "flow_run_id TEXT, received_at TEXT NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def claim(self, key: str, verdict: UploadVerdict) -> LedgerEntry | None:
        """Record a new upload under `key`; when the key was claimed before, return that entry instead."""
        with self._connect() as db:
            row = db.execute("SELECT verdict, flow_run_id FROM uploads WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return LedgerEntry(key, UploadVerdict.from_dict(json.loads(row[0])), row[1])
            db.execute(
                "INSERT INTO uploads (key, verdict, received_at) VALUES (?, ?, ?)",
                (key, json.dumps(verdict.to_dict()), verdict.received_at),
            )
        return None

    def lookup(self, key: str) -> LedgerEntry | None:
        with self._connect() as db:
            row = db.execute("SELECT verdict, flow_run_id FROM uploads WHERE key = ?", (key,)).fetchone()
        return None if row is None else LedgerEntry(key, UploadVerdict.from_dict(json.loads(row[0])), row[1])

    def entries(self) -> list[LedgerEntry]:
        """Every recorded upload, oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT key, verdict, flow_run_id FROM uploads ORDER BY received_at, rowid"
            ).fetchall()
        return [
            LedgerEntry(key, UploadVerdict.from_dict(json.loads(verdict)), run) for key, verdict, run in rows
        ]

    def set_run(self, key: str, flow_run_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE uploads SET flow_run_id = ? WHERE key = ?", (flow_run_id, key))

    def release(self, key: str) -> None:
        """Forget a claim whose run could not be started, so the upload can be tried again."""
        with self._connect() as db:
            db.execute("DELETE FROM uploads WHERE key = ? AND flow_run_id IS NULL", (key,))


@dataclass
class UploadDesk:
    """Both ways in (inbox file, HTTP body) end here: archive, validate, rejects report, one run per content.

    target: what a run of this content produces (profile and output folder); the same bytes for another
    target are a new upload.
    """

    inbox: Path
    validate_csv: ValidateCsv
    start_run: StartRun
    target: str = ""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.inbox = Path(self.inbox).resolve()  # runs get absolute paths: they may start elsewhere
        self.archive = self.inbox / ARCHIVE_DIR
        self.archive.mkdir(parents=True, exist_ok=True)
        self.ledger = UploadLedger(self.inbox / LEDGER_NAME)

    def key(self, digest: str) -> str:
        """The idempotency key of an upload: its content hash and the target (also Prefect's idempotency key)."""
        return f"onmodel-upload-{digest[:32]}-{hashlib.sha256(self.target.encode()).hexdigest()[:12]}"

    def earlier(self, data: bytes) -> UploadVerdict | None:
        """The verdict of an earlier upload of the same bytes (with its run id), or None."""
        entry = self.ledger.lookup(self.key(content_hash(data)))
        return None if entry is None else _as_duplicate(entry)

    def receive_bytes(self, data: bytes, name: str) -> UploadVerdict:
        """An HTTP upload: the same content again answers with the earlier run; else archive, validate, start."""
        # 1. The same content for the same target was received before: nothing stored, nothing started.
        if (earlier := self.earlier(data)) is not None:
            return earlier
        # 2. Keep the bytes in the archive (atomic write), then the same path as an inbox file.
        received = self.clock()
        archived = _free_path(self.archive / archive_name(name, received))
        write_bytes_atomic(archived, data)
        return self._process(archived, name, content_hash(data), received, on_start_failure=archived.unlink)

    def receive_file(self, path: Path) -> UploadVerdict:
        """An inbox file: move it to the archive (atomic rename), then validate and start its run once."""
        path = Path(path)
        received = self.clock()
        # 1. Into the archive by rename (same file system), so the run reads a file nobody writes any more.
        archived = _free_path(self.archive / archive_name(path.name, received))
        os.replace(path, archived)
        digest = content_hash(archived.read_bytes())

        def put_back() -> None:  # the run could not start: the next poll tries again, nothing is lost
            if not path.exists():
                os.replace(archived, path)

        return self._process(archived, path.name, digest, received, on_start_failure=put_back)

    def _process(
        self,
        archived: Path,
        name: str,
        digest: str,
        received: datetime,
        *,
        on_start_failure: Callable[[], None],
    ) -> UploadVerdict:
        # 1. Validate the archived file: exactly the path (and image folder) the run will read.
        result = self.validate_csv(archived)
        rejects = tuple(RejectRecord.from_reject(reject) for reject in result.rejects)
        report: Path | None = None
        # 2. The rejects report next to it; the good rows still render.
        if rejects:
            report = rejects_report_path(archived)
            text = csv_text(REJECT_COLUMNS, [asdict(r) for r in rejects])
            write_bytes_atomic(report, text.encode("utf-8"))
        verdict = UploadVerdict(
            name=name,
            content_hash=digest,
            csv_path=str(archived),
            dialect=result.dialect,
            rows_read=result.rows_read,
            accepted=len(result.records),
            rejects=rejects,
            rejects_report=str(report) if report else None,
            received_at=received.isoformat(timespec="seconds"),
        )
        if not result.records:  # nothing to render: archived with its report, no run, nothing claimed
            return verdict
        # 3. One run per content: claim the key, start the run, record its id.
        key = self.key(digest)
        if (entry := self.ledger.claim(key, verdict)) is not None:
            # Received before (or a concurrent upload of the same bytes won the claim): no second run.
            return _with_run(verdict, entry.flow_run_id, duplicate=True)
        try:
            run_id = self.start_run(archived, key)
        except BaseException:
            self.ledger.release(key)
            if report is not None:
                report.unlink(missing_ok=True)
            on_start_failure()
            raise
        self.ledger.set_run(key, run_id)
        return _with_run(verdict, run_id)


def _free_path(path: Path) -> Path:
    """`path`, or `<stem>-N<suffix>` beside it when taken (two uploads of one name in the same microsecond)."""
    candidate, number = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        number += 1
    return candidate


def _with_run(verdict: UploadVerdict, run_id: str | None, duplicate: bool = False) -> UploadVerdict:
    data = verdict.to_dict() | {"flow_run_id": run_id, "duplicate": duplicate}
    return UploadVerdict.from_dict(data)


def _as_duplicate(entry: LedgerEntry) -> UploadVerdict:
    return _with_run(entry.verdict, entry.flow_run_id, duplicate=True)


class InboxWatcher:
    """Polls the inbox; a CSV whose size and mtime are the same on two polls in a row goes to the desk."""

    def __init__(
        self,
        desk: UploadDesk,
        *,
        poll_s: float = 2.0,
        on_verdict: Callable[[UploadVerdict], None] | None = None,
    ) -> None:
        if poll_s <= 0:
            raise ValueError(f"poll_s must be > 0 seconds; got {poll_s}.")
        self.desk = desk
        self.poll_s = poll_s
        self.on_verdict = on_verdict
        self._seen: dict[str, FileSnapshot] = {}

    def poll_once(self) -> list[UploadVerdict]:
        """One poll: hand every settled file to the desk; a file that fails stays for the next poll."""
        current = snapshot_folder(self.desk.inbox)
        ready = settled_files(self._seen, current)
        self._seen = {name: snap for name, snap in current.items() if name not in ready}
        verdicts = []
        for name in ready:
            try:
                verdict = self.desk.receive_file(self.desk.inbox / name)
            except FileNotFoundError:
                continue  # taken away between the poll and the move
            except Exception:
                # e.g. the Prefect server is down: the file went back to the inbox; log, go on with the others.
                logger.exception("inbox: %s could not be handed to a csv-upload run; trying again", name)
                continue
            verdicts.append(verdict)
            if self.on_verdict is not None:
                self.on_verdict(verdict)
        return verdicts

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set (the served process's watcher thread)."""
        while not stop.wait(self.poll_s):
            self.poll_once()
