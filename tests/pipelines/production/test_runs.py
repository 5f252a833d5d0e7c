"""What a run records about itself: the trigger from the deployment that started it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from catalog.schema import ProductRecord
from catalog.state import StateStore
from pipelines.production.outcomes import RejectRecord
from pipelines.production.runs import (
    CatalogueBookkeeping,
    CatalogueSightings,
    is_full_catalogue,
    render_fields,
    trigger_of,
)
from pipelines.production.stages import RunContext
from pipelines.production.validate import RunStart
from tests.pipelines.production.pool_helpers import PoolModels, pool_setup


@pytest.mark.parametrize(
    ("deployment", "trigger"),
    [
        (None, "cli"),
        ("", "cli"),
        ("nightly-catalog", "nightly"),
        ("csv-upload", "upload"),
        ("other", "deployment"),
    ],
)
def test_the_trigger_names_what_started_the_run(deployment: str | None, trigger: str) -> None:
    assert trigger_of(deployment) == trigger


# After a run over the whole catalogue: products recorded, missing ones retired ---------------------------------


def _run(
    ctx: RunContext, records: list[ProductRecord], rejects: list[RejectRecord] | None = None
) -> RunStart:
    return RunStart(ctx, "catalogue.csv", "native", "", records=records, rejects=rejects or [])


def record_catalogue(
    run: RunStart, image_hashes: dict[str, str], store: StateStore, chunk: int = 2
) -> CatalogueBookkeeping:
    """The flow's bookkeeping: the run's chunks recorded as they come back (`chunk` products each), then finished."""
    sightings = CatalogueSightings(run, store)
    for start in range(0, len(run.records), chunk):
        part = run.records[start : start + chunk]
        sightings.chunk_done(part, {r.sku: image_hashes[r.sku] for r in part if r.sku in image_hashes})
    return sightings.finish()


@pytest.mark.parametrize(
    ("trigger", "only", "full"),
    [("nightly", None, True), ("cli", [], True), ("cli", ["SKU-01"], False), ("upload", None, False)],
)
def test_only_a_run_over_the_whole_catalogue_counts_as_full(
    trigger: str, only: list[str] | None, full: bool
) -> None:
    assert is_full_catalogue(trigger, only) is full


def test_a_full_run_records_its_products_and_retires_the_ones_it_no_longer_lists(tmp_path: Path) -> None:
    ctx, res, records = pool_setup(tmp_path, 4, PoolModels())
    store = res.store
    first = replace(ctx, run_id="n1")
    store.record_run_started("n1", profile="demo", csv="catalogue.csv", trigger="nightly")
    kept = record_catalogue(_run(first, records), {r.sku: f"hash-{r.sku}" for r in records}, store)
    assert (kept.recorded, kept.seen, kept.retired) == (4, 0, [])
    known = store.get_products()
    assert sorted(known) == [r.sku for r in records]
    product = known[records[0].sku]
    assert product.image_hash == f"hash-{records[0].sku}" and product.last_seen_run == "n1"
    assert product.source_identity == {"image": records[0].image.raw, "source": records[0].identity}
    assert product.render_fields == render_fields(records[0])
    assert product.render_fields["garment_class"] == records[0].garment_class.value
    # 2. The next night: SKU 0 is gone from the CSV, SKU 1's photo is rejected (listed: not retired).
    store.record_run_started("n2", profile="demo", csv="catalogue.csv", trigger="nightly")
    second = replace(ctx, run_id="n2")
    hashes = {r.sku: f"hash-{r.sku}" for r in records[2:]}
    kept = record_catalogue(_run(second, records[1:]), hashes, store)
    assert (kept.recorded, kept.seen, kept.retired) == (2, 1, [records[0].sku])
    known = store.get_products()
    assert known[records[0].sku].retired and known[records[0].sku].retired_run == "n2"
    assert not any(known[r.sku].retired for r in records[1:])
    assert known[records[1].sku].image_hash == f"hash-{records[1].sku}"  # seen, its hash as last recorded
    # 3. It comes back: unretired.
    store.record_run_started("n3", profile="demo", csv="catalogue.csv", trigger="nightly")
    kept = record_catalogue(_run(replace(ctx, run_id="n3"), records), {r.sku: "h" for r in records}, store)
    assert kept.retired == [] and not store.get_products()[records[0].sku].retired


def test_an_unusable_catalogue_csv_retires_nothing(tmp_path: Path) -> None:
    ctx, res, records = pool_setup(tmp_path, 2, PoolModels())
    store = res.store
    store.record_run_started("n1", profile="demo", csv="catalogue.csv", trigger="nightly")
    record_catalogue(_run(replace(ctx, run_id="n1"), records), {r.sku: "h" for r in records}, store)
    for run_id, run_records, rejects in (
        ("n2", [], []),  # an empty feed
        ("n3", records[:1], [RejectRecord(0, "", "sku", "the header has no sku column")]),
    ):
        store.record_run_started(run_id, profile="demo", csv="catalogue.csv", trigger="nightly")
        kept = record_catalogue(_run(replace(ctx, run_id=run_id), run_records, rejects), {}, store)
        assert kept.retired == [] and kept.not_retired_because
    assert not any(product.retired for product in store.get_products().values())


def test_a_full_run_records_each_chunk_as_it_comes_back(tmp_path: Path) -> None:
    ctx, res, records = pool_setup(tmp_path, 4, PoolModels())
    store = res.store
    store.record_run_started("n1", profile="demo", csv="catalogue.csv", trigger="nightly")
    sightings = CatalogueSightings(_run(replace(ctx, run_id="n1"), records), store)
    sightings.chunk_done(records[:2], {r.sku: "h" for r in records[:2]})
    assert sorted(store.get_products()) == [r.sku for r in records[:2]]  # recorded before the run ends
    sightings.chunk_done(records[2:], {})  # a chunk lost for good: listed, never planned
    kept = sightings.finish()
    assert (kept.recorded, kept.seen, kept.retired) == (2, 2, [])
    known = store.get_products()
    assert sorted(known) == [r.sku for r in records]
    assert not any(known[r.sku].image_hash for r in records[2:])  # seen only: no photo hash recorded
