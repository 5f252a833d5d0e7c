"""A run report for tests, with fixed run facts."""

from __future__ import annotations

from pipelines.production.outcomes import ProductOutcome, RejectRecord, RunReport


def make_report(products: list[ProductOutcome], rejects: list[RejectRecord], run_id: str = "r") -> RunReport:
    return RunReport(
        run_id=run_id,
        out_dir="out",
        csv="in/products.csv",
        dialect="onmodel",
        profile="demo",
        renderer="draft",
        preset="master",
        fingerprint="f",
        started_at="2026-12-02T00:00:00+00:00",
        seconds=2.0,
        products=products,
        rejects=rejects,
    )
