"""Run outcomes: product states, counts, manifest rows and the report's round trip."""

from __future__ import annotations

import csv
import io

import pytest

from pipelines.production.outcomes import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    MANIFEST_COLUMNS,
    JobOutcome,
    ProductOutcome,
    RejectRecord,
    RunReport,
    csv_text,
    manifest_rows,
    product_state,
)
from tests.pipelines.production.reports import make_report


def _job(state: str, variant: int = 0) -> JobOutcome:
    return JobOutcome(
        f"A__front__v{variant}",
        "A",
        "front",
        variant,
        7,
        state,  # type: ignore[arg-type]
        reason="boom" if state == "failed" else "",
        flags=["garment_upscaled"],
    )


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["produced", "skipped"], "produced"),
        (["skipped", "skipped"], "skipped"),
        (["produced", "failed"], "failed"),
        (["skipped", "failed"], "failed"),
    ],
)
def test_product_state(states: list[str], expected: str) -> None:
    assert product_state([_job(s, i) for i, s in enumerate(states)]) == expected


def test_manifest_has_one_row_per_reject_product_and_job() -> None:
    products = [
        ProductOutcome("A", 2, "failed", jobs=[_job("produced", 0), _job("failed", 1)]),
        ProductOutcome("B", 4, "rejected", reason="not an image", column="image"),
    ]
    rejects = [
        RejectRecord(3, "C", "category", "unknown"),
        RejectRecord(4, "B", "image", "not an image", product_level=True),
    ]
    report = make_report(products, rejects)
    parsed = list(csv.DictReader(io.StringIO(csv_text(MANIFEST_COLUMNS, manifest_rows(report)))))
    assert [(r["kind"], r["row"], r["state"]) for r in parsed] == [
        ("row", "3", "rejected"),
        ("product", "2", "failed"),
        ("job", "2", "produced"),
        ("job", "2", "failed"),
        ("product", "4", "rejected"),
    ]
    assert parsed[2]["flags"] == "garment_upscaled" and parsed[0]["reason"] == "category: unknown"
    assert report.counts == {
        "products": 2,
        "rejected": 2,
        "produced": 1,
        "skipped": 0,
        "failed": 1,
        "jobs": 2,
        "derived": 0,
        "covered": 0,
    }
    assert report.exit_code() == 1


def test_a_product_that_failed_before_planning_counts_as_one_failure() -> None:
    report = make_report([ProductOutcome("A", 2, "failed", reason="preparation failed after 2 retries")], [])
    assert report.counts["failed"] == 1 and report.exit_code() == 1
    assert make_report([ProductOutcome("A", 2, "skipped", jobs=[_job("skipped")])], []).exit_code() == 0


def test_report_round_trips_through_its_dict() -> None:
    products = [ProductOutcome("A", 2, "produced", sheet="sheets/A.jpg", jobs=[_job("produced")])]
    report = make_report(products, [RejectRecord(3, "C", "category", "unknown")])
    again = RunReport.from_dict(report.to_dict())
    assert again == report
    assert isinstance(again.products[0].jobs[0], JobOutcome) and isinstance(again.rejects[0], RejectRecord)
    with pytest.raises(ValueError, match="version"):
        RunReport.from_dict({**report.to_dict(), "version": 99})


def test_exit_codes_tell_failures_rejects_and_success_apart() -> None:
    produced = ProductOutcome("A", 2, "produced", jobs=[_job("produced")])
    rejected_row = RejectRecord(3, "B", "category", "unknown")
    assert make_report([produced], []).exit_code() == EXIT_OK
    assert make_report([produced], [rejected_row]).exit_code() == EXIT_REJECTED
    assert make_report([produced], [rejected_row]).exit_code(allow_rejects=True) == EXIT_OK
    failed = ProductOutcome("C", 4, "failed", jobs=[_job("failed")])
    assert make_report([failed], [rejected_row]).exit_code(allow_rejects=True) == EXIT_FAILED
    assert len({EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED}) == 4


def test_reused_jobs_make_the_outcomes_the_job_by_job_plan_makes() -> None:
    """Each outcome of a product taken whole, made on access, with the keys the layout and decisions give."""
    import pickle

    from pipelines.production.decisions import render_id
    from pipelines.production.layout import OutputLayout, sidecar_key
    from pipelines.production.outcomes import APPROVED_REASON, REUSED_REASON, ReusedJobs

    layout = OutputLayout()
    rows = [[11, 0, [], ""], [13, 0, [], ""], [14, 0, [], ""], [12, 1, ["garment_upscaled"], "old-fp"]]
    presets = (("master", "png"), ("amazon", "jpg"))
    reused = ReusedJobs("A.1", "ab" * 32, "fp", presets, "amazon", ("front", "back"), 2, rows)
    front, front_1, back_0, back = list(reused)
    assert len(reused) == 4 and reused[3] == reused[-1] == back and reused[:1] == [front]
    assert [(job.pose, job.variant) for job in reused] == [
        ("front", 0),
        ("front", 1),
        ("back", 0),
        ("back", 1),
    ]
    with pytest.raises(IndexError):
        reused[4]
    assert front.job_id == "A.1__front__v0" and (front.state, front.seed) == ("skipped", 11)
    assert front.outputs == {
        "master": "images/master/A.1/A.1__front__v0.png",
        "amazon": "images/amazon/A.1/A.1__front__v0.jpg",
    }
    assert front.output == front.outputs["amazon"] and front.sidecar == sidecar_key(front.output)
    assert front.render_id == render_id(layout.master_image("A.1", front.job_id), 11, "fp", "ab" * 32)
    assert back.render_id == render_id(layout.master_image("A.1", back.job_id), 12, "old-fp", "ab" * 32)
    assert (front.reason, back.reason, back.flags) == (REUSED_REASON, APPROVED_REASON, ["garment_upscaled"])
    assert reused == [front, front_1, back_0, back] and [front, front_1, back_0, back] == reused
    assert reused != [front]
    assert pickle.loads(pickle.dumps(reused)) == reused
    empty = ReusedJobs("A", "h", "f", presets, "master", (), 2, [])
    assert product_state(reused) == "skipped" and product_state(empty) == "produced"


def test_reused_jobs_decode_their_recorded_rows_on_first_access() -> None:
    import json

    from pipelines.production.outcomes import ReusedJobs

    rows = [[11, 0, [], ""], [12, 1, ["garment_upscaled"], "old-fp"]]
    presets = (("master", "png"),)
    decoded = ReusedJobs("A", "h" * 64, "fp", presets, "master", ("front",), 2, rows)
    recorded = ReusedJobs("A", "h" * 64, "fp", presets, "master", ("front",), 2, json.dumps(rows))
    assert len(recorded) == 2 and isinstance(recorded.rows, str)  # counted without decoding
    assert list(recorded) == list(decoded) and recorded == decoded
    short = ReusedJobs("A", "h" * 64, "fp", presets, "master", ("front", "back"), 2, json.dumps(rows))
    with pytest.raises(ValueError, match="2 recorded jobs for 4 planned"):
        list(short)
