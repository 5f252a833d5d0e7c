"""`onmodel retry --failed` and `onmodel status` over a real run's state store."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.state import SCHEMA_VERSION, STATE_URL_ENV, open_job_store
from flows import caches
from flows.cli import main
from flows.produce import run_catalog
from pipelines.errors import RenderError
from pipelines.renderers.draft import DraftRenderer
from tests.flows.helpers import small_profile, write_csv, write_flatlays


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    caches._renderer.cache_clear()


def test_failed_jobs_are_requeued_then_rendered_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_flatlays(tmp_path / "in", 2, seed=5)
    csv_path, profile = write_csv(tmp_path / "in" / "products.csv", rows), small_profile(tmp_path, variants=1)
    out = tmp_path / "out"
    original = DraftRenderer.__call__

    def broken_for_one_sku(self: DraftRenderer, jobs: list) -> list:
        if any(job.sku == "SKU-01" for job in jobs):
            raise RenderError("renderer exploded on SKU-01")
        return original(self, jobs)

    # 1. A run in which SKU-01's jobs fail (bad input for the renderer: not retried by Prefect).
    with monkeypatch.context() as patch:
        patch.setattr(DraftRenderer, "__call__", broken_for_one_sku)
        first = run_catalog(str(csv_path), str(profile), str(out))
    assert (first.counts["produced"], first.counts["failed"]) == (2, 2)
    capsys.readouterr()
    # 2. status shows the store's states; retry --failed re-queues the two failures.
    assert main(["status", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"state store: {out / 'state.sqlite'} (schema {SCHEMA_VERSION})" in printed
    assert "jobs: 4 (failed 2, produced 2, queued 0)" in printed
    assert main(["retry", "--failed", "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("would re-queue 2 failed jobs of 1 products (SKU-01)")
    assert main(["retry", "--failed", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("re-queued 2 failed jobs of 1 products (SKU-01)")
    assert "renderer exploded on SKU-01" in printed
    with open_job_store(out / "state.sqlite") as store:
        assert store.counts_by_status() == {"produced": 2, "failed": 0, "queued": 2}
    assert main(["retry", "--failed", "--out", str(out)]) == 0
    assert "no failed jobs" in capsys.readouterr().out
    # 3. The next run renders exactly the queued jobs; the produced ones are skipped.
    second = run_catalog(str(csv_path), str(profile), str(out))
    assert (second.counts["produced"], second.counts["skipped"], second.counts["failed"]) == (2, 2, 0)
    with open_job_store(out / "state.sqlite") as store:
        assert store.counts_by_status() == {"produced": 4, "failed": 0, "queued": 0}
        retried = [state for state in store.all_rows() if state.sku == "SKU-01"]
        assert {(state.attempts, state.last_error) for state in retried} == {
            (2, "render failed: renderer exploded on SKU-01")
        }


def test_retry_refuses_what_it_cannot_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["retry", "--out", str(tmp_path)]) == 2
    assert "--failed" in capsys.readouterr().err
    assert main(["retry", "--failed", "--out", str(tmp_path / "nowhere")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["retry", "--failed", "--out", str(tmp_path)]) == 2
    assert "no state store" in capsys.readouterr().err
    assert not (tmp_path / "state.sqlite").exists()  # looking created nothing
    assert main(["retry", "--failed", "--state-url", "mysql://u@127.0.0.1/x"]) == 2
    assert "PostgreSQL" in capsys.readouterr().err


def test_retry_and_status_use_the_shared_store_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "team" / "state.sqlite"
    with open_job_store(shared) as store:
        store.record_run_started("n1", profile="demo", csv="catalog.csv", trigger="nightly")
        store.record_failed(
            "A-1/front/0", sku="A-1", image_hash="h", fingerprint="f", reason="OOM", run_id="n1"
        )
        store.record_failed(
            "B-2/front/0", sku="B-2", image_hash="h", fingerprint="f", reason="OOM", run_id="n1"
        )
    monkeypatch.setenv(STATE_URL_ENV, f"sqlite:///{shared}")
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["status", "--out", str(folder)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("no run report in this folder.")
    assert "n1  nightly running  (failed 2, produced 0, queued 0)" in printed
    assert main(["retry", "--failed", "--out", str(folder), "--only", "B-2"]) == 0
    assert capsys.readouterr().out.startswith("re-queued 1 failed jobs of 1 products (B-2)")
    assert not (folder / "state.sqlite").exists()
    assert caches.job_store(str(shared)) is caches.resources(str(folder)).store  # the same store, cached
