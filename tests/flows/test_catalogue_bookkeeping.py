"""A run over the whole catalogue records its products and retires the ones it no longer lists; a run with
--only never retires (it says nothing about the products it omits). Real flow on Prefect's test API."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.state import STATE_URL_ENV, open_job_store
from flows import caches
from flows.cli import main
from flows.produce import run_catalog
from tests.flows.helpers import small_profile, write_csv, write_flatlays


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    caches._renderer.cache_clear()


def test_products_missing_from_a_full_run_are_retired_and_keep_their_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_flatlays(tmp_path / "in", 3, size=256)
    profile, out = small_profile(tmp_path, variants=1), tmp_path / "out"
    full = write_csv(tmp_path / "in" / "products.csv", rows)
    # 1. The whole catalogue: every product recorded with its photo's hash and render fields.
    first = run_catalog(str(full), str(profile), str(out))
    assert first.counts["produced"] == 6
    with open_job_store(out / "state.sqlite") as store:
        products = store.get_products()
        assert sorted(products) == ["SKU-00", "SKU-01", "SKU-02"]
        assert all(len(p.image_hash) == 64 and p.last_seen_run == first.run_id for p in products.values())
        assert products["SKU-00"].render_fields["category"] == rows[0]["category"]
    files = sorted(p.relative_to(out) for p in (out / "images" / "master" / "SKU-02").iterdir())
    # 2. --only SKU-00 of a CSV without SKU-02: not a full run, nothing retired, nothing recorded.
    smaller = write_csv(tmp_path / "in" / "smaller.csv", rows[:2])
    only = run_catalog(str(smaller), str(profile), str(out), only=["SKU-00"])
    assert only.counts["skipped"] == 2
    with open_job_store(out / "state.sqlite") as store:
        assert not any(p.retired for p in store.get_products().values())
        assert store.get_products()["SKU-00"].last_seen_run == first.run_id
    # 3. The catalogue without SKU-02, in full: SKU-02 retired, its files where they were.
    second = run_catalog(str(smaller), str(profile), str(out))
    assert (second.counts["skipped"], second.counts["produced"]) == (4, 0)
    with open_job_store(out / "state.sqlite") as store:
        products = store.get_products()
        assert products["SKU-02"].retired and products["SKU-02"].retired_run == second.run_id
        assert not products["SKU-00"].retired and products["SKU-00"].last_seen_run == second.run_id
    assert sorted(p.relative_to(out) for p in (out / "images" / "master" / "SKU-02").iterdir()) == files
    capsys.readouterr()
    assert main(["status", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "products: 3 (1 retired)" in printed
    assert f"    SKU-02  retired by run {second.run_id} at " in printed
    # 4. Listed again: back, not re-rendered.
    third = run_catalog(str(full), str(profile), str(out))
    assert third.counts["produced"] == 0
    with open_job_store(out / "state.sqlite") as store:
        assert not store.get_products()["SKU-02"].retired
