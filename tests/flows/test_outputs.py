"""Output helpers: atomic writes, manifest states, the run index page."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from flows.outputs import (
    MANIFEST_COLUMNS,
    JobOutcome,
    ProductOutcome,
    csv_text,
    manifest_rows,
    product_state,
    render_index_html,
    summary_counts,
    write_bytes_atomic,
)


def _job(state: str, variant: int = 0) -> JobOutcome:
    return JobOutcome(
        f"A__front__v{variant}", "A", "front", variant, 7, state, reason="boom" if state == "failed" else ""
    )


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.bin"
    write_bytes_atomic(target, b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("pipelines.image_io.os.replace", broken_replace)
    with pytest.raises(OSError):
        write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["produced", "skipped"], "produced"),
        (["skipped", "skipped"], "skipped"),
        (["produced", "failed"], "failed"),
    ],
)
def test_product_state(states: list[str], expected: str) -> None:
    assert product_state([_job(s, i) for i, s in enumerate(states)]) == expected


def test_manifest_has_one_row_per_reject_product_and_job(tmp_path: Path) -> None:
    products = [
        ProductOutcome("A", 2, "failed", jobs=[_job("produced", 0), _job("failed", 1)]),
        ProductOutcome("B", 4, "rejected", reason="not an image", column="image"),
    ]
    rejects = [
        {"row": 3, "sku": "C", "column": "category", "reason": "unknown"},
        {"row": 4, "sku": "B", "column": "image", "reason": "not an image", "product_level": True},
    ]
    rows = manifest_rows(products, rejects, renderer="draft", fingerprint="f", run_id="r", root=tmp_path)
    parsed = list(csv.DictReader(io.StringIO(csv_text(MANIFEST_COLUMNS, rows))))
    assert [(r["kind"], r["row"], r["state"]) for r in parsed] == [
        ("row", "3", "rejected"),
        ("product", "2", "failed"),
        ("job", "2", "produced"),
        ("job", "2", "failed"),
        ("product", "4", "rejected"),
    ]
    counts = summary_counts(products, csv_rejects=1)
    assert counts == {"products": 2, "rejected": 2, "produced": 1, "skipped": 0, "failed": 1, "jobs": 2}


def test_index_escapes_and_lists_everything(tmp_path: Path) -> None:
    products = [
        ProductOutcome(
            "A<b>",
            2,
            "produced",
            title="Tee & co",
            sheet=str(tmp_path / "sheets" / "A.jpg"),
            jobs=[_job("failed")],
        )
    ]
    page = render_index_html(
        title="t",
        run_id="r",
        counts={"produced": 1},
        products=products,
        rejects=[{"row": 3, "sku": "X", "column": "image", "reason": "<script>"}],
        root=tmp_path,
        details={"profile": "demo"},
    )
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="sheets/A.jpg"' in page
    assert "Tee &amp; co" in page and "boom" in page
