"""The state store's jobs, runs, products and review decisions, on SQLite and (when configured) PostgreSQL.

Schema versions and migrations: test_state_migrations.py; job claims between concurrent runs:
test_state_claims.py. The `state_url` fixture (conftest.py) gives each test an empty store of each backend.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from catalog import SQLiteJobStore as ExportedSQLiteJobStore
from catalog.state import (
    SCHEMA_VERSION,
    STATE_URL_ENV,
    JobState,
    JobStore,
    SQLiteJobStore,
    SQLJobStore,
    StateStore,
    choose_state_url,
    open_job_store,
    state_url,
)

_KEY = "images/master/A-1/A-1__front__v0.png"


@pytest.fixture
def store(state_url: str) -> Iterator[SQLJobStore]:
    with open_job_store(state_url) as opened:
        yield opened


def _produce(
    store: JobStore, job_id: str, outputs: list[str], *, h: str = "h", f: str = "f", **extra: Any
) -> None:
    """Record a produced job with a fixed sku and seed."""
    store.record_produced(job_id, sku="A-1", image_hash=h, fingerprint=f, outputs=outputs, seed=7, **extra)


def _fail(store: JobStore, job_id: str, sku: str = "S", reason: str = "x", **extra: Any) -> None:
    """Record a failed job."""
    store.record_failed(job_id, sku=sku, image_hash="h", fingerprint="f", reason=reason, **extra)


def _is_current(store: JobStore, job_id: str, h: str, f: str) -> bool:
    """The caller's side of skip-if-done, minus the storage existence check."""
    state = store.get(job_id)
    return state is not None and state.is_current(h, f)


# Jobs: the interface the pipeline's stages use ----------------------------------------------------------------


def test_is_current_only_when_produced_with_same_hash_fingerprint_and_outputs(store: SQLJobStore) -> None:
    assert not _is_current(store, "A-1/front/0", "h1", "f1")  # never ran
    _produce(store, "A-1/front/0", [_KEY], h="h1", f="f1")
    assert _is_current(store, "A-1/front/0", "h1", "f1")
    assert not _is_current(store, "A-1/front/0", "h2", "f1")  # the product image changed
    assert not _is_current(store, "A-1/front/0", "h1", "f2")  # the config changed
    _produce(store, "empty", [], h="h1", f="f1")
    assert not _is_current(store, "empty", "h1", "f1")  # nothing recorded to check for
    _fail(store, "A-1/front/0")
    assert not _is_current(store, "A-1/front/0", "h", "f")  # failed, even with matching hash and fingerprint


def test_failed_jobs_are_not_current_and_keep_their_reason(store: SQLJobStore) -> None:
    _produce(store, "J", [_KEY])
    store.record_failed(
        "J", sku="A-1", image_hash="h", fingerprint="f", reason="CUDA OOM after 3 tries", seed=11
    )
    state = store.get("J")
    assert state is not None
    assert (state.status, state.reason, state.outputs) == ("failed", "CUDA OOM after 3 tries", ())
    assert (state.seed, state.flags) == (11, ())  # a failure replaces the produced seed and flags
    assert not state.is_current("h", "f")


def test_get_and_all_rows_round_trip(store: SQLJobStore) -> None:
    second = "meta/A-1/A-1__front__v0.json"
    store.record_produced("b", sku="B-2", image_hash="h", fingerprint="f", outputs=[_KEY, second], seed=3)
    _fail(store, "a", sku="A-1", reason="bad")
    assert store.get("missing") is None
    state = store.get("b")
    assert state is not None
    assert (state.job_id, state.sku, state.image_hash, state.config_fingerprint) == ("b", "B-2", "h", "f")
    assert (state.status, state.outputs, state.reason) == ("produced", (_KEY, second), "")
    assert state.updated_at.endswith("+00:00")
    assert [row.job_id for row in store.all_rows()] == ["a", "b"]
    assert store.schema_version == SCHEMA_VERSION == 5


def test_seed_flags_and_render_inputs_round_trip_through_get_and_get_many(store: SQLJobStore) -> None:
    store.record_produced(
        "J",
        sku="A-1",
        image_hash="h",
        fingerprint="f",
        outputs=[_KEY],
        seed=2**40 + 7,  # seeds are 64-bit
        flags=["garment_upscaled", "low_contrast"],
        run_id="run-1",
        render_fields={"prompt": "linen shirt", "poses": ["front"], "variants": 2},
        render_fingerprint="rfp",
    )
    store.record_produced("K", sku="A-1", image_hash="h", fingerprint="f", outputs=[_KEY], seed=0)
    _fail(store, "L")
    for states in ({job: store.get(job) for job in ("J", "K", "L")}, store.get_many(["J", "K", "L"])):
        assert states["J"] == JobState(
            "J",
            "A-1",
            "h",
            "f",
            "produced",
            (_KEY,),
            "",
            states["J"].updated_at,
            seed=2**40 + 7,
            flags=("garment_upscaled", "low_contrast"),
            attempts=1,
            last_run_id="run-1",
            first_produced_run="run-1",
            render_fields={"prompt": "linen shirt", "poses": ["front"], "variants": 2},
            render_fingerprint="rfp",
        )
        assert (states["K"].seed, states["K"].flags) == (0, ())  # 0 is a real seed, not "unknown"
        assert (states["K"].render_fields, states["K"].render_fingerprint, states["K"].last_run_id) == (
            {},
            "",
            None,
        )
        assert (states["L"].seed, states["L"].flags) == (None, ())


def test_attempts_errors_and_runs_accumulate_across_attempts(store: SQLJobStore) -> None:
    _fail(store, "J", reason="timeout", run_id="r1", render_fields={"prompt": "a"}, render_fingerprint="x")
    _fail(store, "J", reason="CUDA OOM", run_id="r2")
    failed = store.get("J")
    assert failed is not None
    assert (failed.attempts, failed.last_error, failed.reason, failed.last_run_id) == (
        2,
        "CUDA OOM",
        "CUDA OOM",
        "r2",
    )
    assert failed.first_produced_run is None
    # A caller that passes no render inputs keeps the recorded ones.
    assert (failed.render_fields, failed.render_fingerprint) == ({"prompt": "a"}, "x")
    _produce(store, "J", [_KEY], run_id="r3")
    _produce(store, "J", [_KEY], run_id="r4", render_fields={"prompt": "b"}, render_fingerprint="y")
    produced = store.get("J")
    assert produced is not None
    assert (produced.status, produced.reason, produced.attempts) == ("produced", "", 4)
    assert produced.last_error == "CUDA OOM"  # the last failure stays readable after a success
    assert (produced.first_produced_run, produced.last_run_id) == ("r3", "r4")
    assert (produced.render_fields, produced.render_fingerprint) == ({"prompt": "b"}, "y")


def test_get_many_on_1200_ids_returns_exactly_the_recorded_ones(store: SQLJobStore) -> None:
    recorded = {f"job-{index:04d}" for index in range(0, 1200, 3)}
    for job_id in sorted(recorded):
        _produce(store, job_id, [f"images/{job_id}.png"])
    _produce(store, "not-asked", [_KEY])
    if store.path is not None:
        # Older SQLite builds allow only 999 bound variables: get_many must chunk rather than bind 1200 at once.
        event.listen(
            store.engine,
            "connect",
            lambda dbapi, record: dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999),
        )
        store.engine.dispose()  # new connections, with the limit
    asked = [f"job-{index:04d}" for index in range(1200)]
    found = store.get_many(asked + asked[:10])  # repeated ids are harmless
    assert set(found) == recorded
    assert all(
        state.job_id == job_id and state.outputs == (f"images/{job_id}.png",)
        for job_id, state in found.items()
    )
    assert store.get_many([]) == {}
    with pytest.raises(TypeError, match="not a string"):
        store.get_many("job-0003")
    # Ids travel to the database as one JSON array (SQLite) or text[] (PostgreSQL): odd characters too.
    odd = ["Kleid-ä/front/0", 'quote"d/front/0', "comma,and'apostrophe/front/0"]
    for job_id in odd:
        _produce(store, job_id, [_KEY])
    assert set(store.get_many([*odd, "Kleid-a/front/0"])) == set(odd)


def test_outputs_must_be_storage_keys_not_os_paths(store: SQLJobStore, tmp_path: Path) -> None:
    for bad in (str(tmp_path / "out" / "a.png"), "images\\a.png", "images/../a.png", "", "images//a.png"):
        with pytest.raises(ValueError, match="storage key"):
            _produce(store, "J", [bad])
    with pytest.raises(TypeError):
        _produce(store, "J", _KEY)  # type: ignore[arg-type] - a bare string is not a list of keys
    with pytest.raises(TypeError, match="render_fields must be a mapping"):
        _produce(store, "J", [_KEY], render_fields=["prompt"])
    assert store.get("J") is None


def test_state_survives_reopening(state_url: str) -> None:
    with open_job_store(state_url) as first:
        _produce(first, "J", [_KEY])
    with open_job_store(state_url) as second:
        assert _is_current(second, "J", "h", "f")
        assert second.schema_version == SCHEMA_VERSION


def _count_produced(store: JobStore) -> int:
    """A caller typed against the protocol only."""
    return sum(row.status == "produced" for row in store.all_rows())


def test_store_satisfies_the_job_store_and_state_store_protocols(store: SQLJobStore) -> None:
    assert isinstance(store, JobStore) and isinstance(store, StateStore)
    assert not isinstance(object(), JobStore)
    _produce(store, "J", [_KEY])
    assert _count_produced(store) == 1


def test_many_threads_write_without_losing_rows(store: SQLJobStore) -> None:
    errors: list[BaseException] = []

    def work(thread_index: int) -> None:
        try:
            for job in range(40):
                _fail(store, f"t{thread_index}-{job}", run_id=f"run-{thread_index}")
                _fail(store, f"shared-{job}")  # every thread updates the same rows too
                store.get(f"t{thread_index}-{job}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.all_rows()) == 6 * 40 + 40
    assert {state.attempts for state in store.get_many([f"shared-{job}" for job in range(40)]).values()} == {
        6
    }


def _write_jobs(url: str, prefix: str, count: int) -> None:
    """Child process: record `count` jobs in the shared store."""
    with open_job_store(url) as store:
        for job in range(count):
            _fail(store, f"{prefix}-{job}")
            _fail(store, f"shared-{job}", sku=prefix)  # both processes write the same keys


def test_two_processes_write_the_same_store(state_url: str) -> None:
    open_job_store(state_url).close()  # create the schema first
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_jobs, args=(state_url, prefix, 150)) for prefix in ("p", "q")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    with open_job_store(state_url) as store:
        rows = store.all_rows()
    assert len(rows) == 150 * 3
    shared = [row for row in rows if row.job_id.startswith("shared-")]
    assert {row.sku for row in shared} <= {"p", "q"}
    assert {row.attempts for row in shared} == {2}  # no increment lost between processes


def test_many_threads_open_a_new_store_at_once(state_url: str) -> None:
    """A run's first tasks open the store at once: the WAL switch and the migrations must not fail or repeat."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    opened: list[SQLJobStore] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            store = open_job_store(state_url)
            opened.append(store)
            _produce(store, f"job-{index}", [_KEY], h="hash", f="fp")
            assert _is_current(store, f"job-{index}", "hash", "fp")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for store in opened:
        store.close()
    assert errors == []
    with open_job_store(state_url) as store:
        assert len(store.all_rows()) == 8
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version FROM schema_version").all() == [
                (SCHEMA_VERSION,)
            ]


# Failures and retries -------------------------------------------------------------------------------------------


def test_requeue_failed_queues_every_failure_and_keeps_its_error(store: SQLJobStore) -> None:
    _fail(store, "A-1/front/0", sku="A-1", reason="OOM", run_id="r1")
    _fail(store, "A-1/back/0", sku="A-1", reason="timeout", run_id="r1")
    _fail(store, "B-2/front/0", sku="B-2", reason="lost device", run_id="r1")
    _produce(store, "C-3/front/0", [_KEY], run_id="r1")
    assert [state.job_id for state in store.failed_jobs()] == ["A-1/back/0", "A-1/front/0", "B-2/front/0"]
    assert store.skus_to_retry() == {"A-1", "B-2"}
    assert store.requeue_failed(["B-2/front/0", "C-3/front/0", "unknown"]) == 1  # only failed jobs move
    assert store.requeue_failed() == 2
    assert store.requeue_failed() == 0  # nothing left to re-queue
    assert store.failed_jobs() == []
    queued = store.get("A-1/front/0")
    assert queued is not None
    assert (queued.status, queued.last_error, queued.attempts) == ("queued", "OOM", 1)
    assert not queued.is_current("h", "f")
    assert store.skus_to_retry() == {"A-1", "B-2"}  # still to be rendered by the next run
    produced = store.get("C-3/front/0")
    assert produced is not None and produced.status == "produced"
    _produce(store, "A-1/front/0", [_KEY], run_id="r2")  # the next run renders it
    assert store.counts_by_status() == {"produced": 2, "failed": 0, "queued": 2}


def test_counts_by_status_and_by_run(store: SQLJobStore) -> None:
    assert store.counts_by_status() == {"produced": 0, "failed": 0, "queued": 0}
    _produce(store, "a", [_KEY])  # a caller that passes no run id (rows from before version 3 look the same)
    _produce(store, "b", [_KEY], run_id="r1")
    _fail(store, "c", run_id="r1")
    _produce(store, "d", [_KEY], run_id="r2")
    _fail(store, "b", run_id="r2")  # its latest attempt belongs to r2 now
    assert store.counts_by_status() == {"produced": 2, "failed": 2, "queued": 0}
    assert store.counts_by_status(run_id="r1") == {"produced": 0, "failed": 1, "queued": 0}
    assert store.counts_by_status(run_id="r2") == {"produced": 1, "failed": 1, "queued": 0}
    assert store.counts_by_run() == {
        "": {"produced": 1, "failed": 0, "queued": 0},
        "r1": {"produced": 0, "failed": 1, "queued": 0},
        "r2": {"produced": 1, "failed": 1, "queued": 0},
    }


# Runs ---------------------------------------------------------------------------------------------------------


def test_runs_are_recorded_from_start_to_finish(store: SQLJobStore) -> None:
    store.record_run_started("20250101T020000Z", profile="sd15", csv="catalog.csv", trigger="nightly")
    store.record_run_started("20250101T093000Z", profile="demo", csv="upload-7.csv", trigger="upload")
    running = store.get_run("20250101T020000Z")
    assert running is not None
    assert (running.status, running.finished_at, running.counts, running.trigger) == (
        "running",
        None,
        {},
        "nightly",
    )
    store.record_run_finished("20250101T020000Z", counts={"produced": 12, "failed": 1}, status="failed")
    finished = store.get_run("20250101T020000Z")
    assert finished is not None
    assert (finished.status, finished.counts) == ("failed", {"produced": 12, "failed": 1})
    assert finished.finished_at is not None and finished.finished_at >= finished.started_at
    assert [run.run_id for run in store.list_runs()] == ["20250101T020000Z", "20250101T093000Z"]
    assert store.get_run("never") is None
    with pytest.raises(KeyError, match="never recorded as started"):
        store.record_run_finished("never", counts={})
    with pytest.raises(ValueError, match="completed, failed or crashed"):
        store.record_run_finished("20250101T093000Z", counts={}, status="running")
    with pytest.raises(ValueError, match="trigger"):
        store.record_run_started("r", profile="demo", csv="x.csv", trigger="")


# Products -----------------------------------------------------------------------------------------------------


def test_products_are_seen_recorded_and_retired_when_the_catalogue_drops_them(store: SQLJobStore) -> None:
    store.record_run_started("n1", profile="demo", csv="catalog.csv", trigger="nightly")
    store.mark_seen(["A-1", "B-2", "C-3"], "n1")
    store.record_product(
        "A-1",
        run_id="n1",
        image_hash="hash-a",
        source_identity={"url": "https://img.example/a.jpg", "etag": '"abc"'},
    )
    assert store.retire_missing(["A-1", "B-2", "C-3"], "n1") == []  # everything listed
    first = store.get_products(["A-1", "B-2", "missing"])
    assert set(first) == {"A-1", "B-2"}
    assert first["A-1"].source_identity == {"url": "https://img.example/a.jpg", "etag": '"abc"'}
    assert (first["A-1"].image_hash, first["B-2"].image_hash, first["B-2"].source_identity) == (
        "hash-a",
        "",
        {},
    )
    # The next night's catalogue no longer lists C-3.
    store.record_run_started("n2", profile="demo", csv="catalog.csv", trigger="nightly")
    store.mark_seen(["A-1", "B-2"], "n2")
    assert store.retire_missing(["A-1", "B-2"], "n2") == ["C-3"]
    assert store.retire_missing(["A-1", "B-2"], "n2") == []  # retired once
    products = store.get_products()
    assert [key for key, product in products.items() if product.retired] == ["C-3"]
    assert (products["C-3"].retired_run, products["C-3"].last_seen_run) == ("n2", "n1")
    assert (products["A-1"].first_seen_run, products["A-1"].last_seen_run) == ("n1", "n2")
    assert products["A-1"].source_identity == {"url": "https://img.example/a.jpg", "etag": '"abc"'}  # kept
    # C-3 comes back in a later upload: it is no longer retired.
    store.mark_seen(["C-3"], "u1")
    back = store.get_products(["C-3"])["C-3"]
    assert (back.retired, back.last_seen_run, back.first_seen_run) == (False, "u1", "n1")


def test_retire_missing_spares_products_an_upload_saw_while_the_nightly_ran(store: SQLJobStore) -> None:
    store.record_run_started("n0", profile="demo", csv="catalog.csv", trigger="nightly")
    store.mark_seen(["OLD-1", "OLD-2"], "n0")
    store.record_run_started("n1", profile="demo", csv="catalog.csv", trigger="nightly")
    # An upload starts after the nightly and lists OLD-2 and a new product, neither in tonight's export.
    store.record_run_started("u1", profile="demo", csv="upload.csv", trigger="upload")
    store.mark_seen(["OLD-2", "NEW-9"], "u1")
    assert store.retire_missing([], "n1") == ["OLD-1"]
    assert {key for key, product in store.get_products().items() if product.retired} == {"OLD-1"}


def test_mark_seen_takes_a_whole_catalogue_in_one_call(store: SQLJobStore) -> None:
    keys = [f"SKU-{index:05d}" for index in range(2500)]  # several statements' worth of rows
    store.mark_seen(keys, "n1")
    store.mark_seen(keys[:1000], "n2")
    products = store.get_products()
    assert len(products) == 2500
    assert {products[key].last_seen_run for key in keys[:1000]} == {"n2"}
    assert {products[key].last_seen_run for key in keys[1000:]} == {"n1"}
    assert store.retire_missing(keys[:1000], "n2") == keys[1000:]


# Review decisions -------------------------------------------------------------------------------------------


def test_the_latest_review_decision_wins_and_every_one_is_kept(store: SQLJobStore) -> None:
    first = store.record_decision(
        "A-1/front/0", "reject", reviewer="ana", reason="sleeve cut off", image_key=_KEY
    )
    store.record_decision("B-2/front/0", "approve", reviewer="ana")
    second = store.record_decision(
        "A-1/front/0", "approve", reviewer="ben", comment="fixed after re-render", image_key=_KEY
    )
    assert second.decision_id > first.decision_id
    current = store.decisions(["A-1/front/0", "B-2/front/0", "C-3/front/0"])
    assert set(current) == {"A-1/front/0", "B-2/front/0"}
    assert current["A-1/front/0"] == second
    assert (current["A-1/front/0"].decision, current["A-1/front/0"].reviewer) == ("approve", "ben")
    assert store.decisions() == current
    history = store.history("A-1/front/0")
    assert history == [first, second]
    assert (history[0].decision, history[0].reason, history[0].image_key) == (
        "reject",
        "sleeve cut off",
        _KEY,
    )
    assert history[0].decided_at <= history[1].decided_at
    assert store.history("C-3/front/0") == []
    assert store.counts_by_decision() == {"approve": 2, "reject": 0}


def test_a_cleared_verdict_stays_in_the_history_and_counts_as_none(store: SQLJobStore) -> None:
    store.record_decision("J", "approve", reviewer="ana", image_key=_KEY)
    cleared = store.record_decision("J", "clear", reviewer="ana", image_key=_KEY)
    assert store.decisions(["J"])["J"] == cleared
    assert [d.decision for d in store.history("J")] == ["approve", "clear"]
    assert store.counts_by_decision() == {"approve": 0, "reject": 0}


def test_review_decisions_are_checked_before_they_are_stored(store: SQLJobStore) -> None:
    with pytest.raises(ValueError, match="'approve', 'reject' or 'clear'"):
        store.record_decision("J", "maybe", reviewer="ana")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reviewer"):
        store.record_decision("J", "approve", reviewer=" ")
    with pytest.raises(ValueError, match="needs a reason"):
        store.record_decision("J", "reject", reviewer="ana")
    with pytest.raises(ValueError, match="storage key"):
        store.record_decision("J", "approve", reviewer="ana", image_key="/abs/a.png")
    assert store.history("J") == []


def test_decisions_for_many_jobs_are_read_in_chunks(store: SQLJobStore) -> None:
    jobs = [f"job-{index:04d}" for index in range(1100)]
    for job_id in jobs[::2]:
        store.record_decision(job_id, "approve", reviewer="bulk")
    store.record_decision(jobs[0], "reject", reviewer="ana", reason="wrong colour")
    current = store.decisions(jobs)
    assert set(current) == set(jobs[::2])
    assert current[jobs[0]].decision == "reject"


def test_decisions_since_an_id_name_each_job_once_with_its_latest(store: SQLJobStore) -> None:
    assert store.latest_decision_id() == 0 and store.decided_since(0) == {}
    first = store.record_decision("J1", "approve", reviewer="ana")
    store.record_decision("J2", "reject", reviewer="ana", reason="hands")
    last = store.record_decision("J2", "clear", reviewer="bo")
    assert store.latest_decision_id() == last.decision_id
    assert store.decided_since(0) == {"J1": first.decision_id, "J2": last.decision_id}
    assert store.decided_since(first.decision_id) == {"J2": last.decision_id}
    assert store.decided_since(last.decision_id) == {}


# Completed products ---------------------------------------------------------------------------------------------


def test_a_products_job_stamp_changes_with_every_write_to_any_of_its_jobs(store: SQLJobStore) -> None:
    """The stamp is count|sum(row_version): produced, failed, re-queued and new jobs all move it, whatever the
    clock (two writes in one microsecond, or a host whose clock is behind, included)."""
    assert store.job_stamps(["A-1", "B-2"]) == {}  # no jobs: absent
    seen = set()

    def stamp() -> str:
        value = store.job_stamps(["A-1", "B-2"])["A-1"]
        assert value not in seen, "a write left the stamp as it was"
        seen.add(value)
        return value

    _produce(store, "A-1__front__v0", [_KEY])
    assert stamp() == "1|1"
    _produce(store, "A-1__front__v0", [_KEY])  # the same row again
    stamp()
    _produce(store, "A-1__back__v0", [_KEY])  # a new job
    stamp()
    store.record_failed("A-1__back__v0", sku="A-1", image_hash="h", fingerprint="f", reason="OOM")
    stamp()
    assert store.requeue_failed() == 1
    stamp()
    before = store.job_stamps(["A-1"])
    store.record_produced("B-9", sku="B-2", image_hash="h", fingerprint="f", outputs=[_KEY], seed=1)
    assert store.job_stamps(["A-1"]) == before  # another product's write: this stamp stays
    assert set(store.job_stamps(["A-1", "B-2", "C-3"])) == {"A-1", "B-2"}


def test_completed_products_round_trip_and_the_latest_record_wins(store: SQLJobStore) -> None:
    from catalog.state import CompletedProduct

    assert store.get_completed(["A-1"]) == {}
    jobs = '[[7,0,["garment_upscaled"],""]]'
    first = CompletedProduct("A-1", "h1", "f", "1|1", 0, "plan", '[["master"],"master.png"]', "1:2:3", jobs)
    other = CompletedProduct("B-2", "h2", "f", "6|6", 4, "plan-b", "[]", "4:5:6", "[]", '["flag"]')
    store.record_completed([first, other], run_id="night-1")
    found = store.get_completed(["A-1", "B-2", "C-3"])
    assert set(found) == {"A-1", "B-2"}
    got = found["A-1"]
    assert got[:10] == first[:10]  # every field as written, texts untouched
    assert got.run_id == "night-1" and got.recorded_at.endswith("+00:00")
    assert found["B-2"].cutout_flags == '["flag"]' and found["B-2"].decision_stamp == 4
    newer = first._replace(image_hash="h9", jobs_stamp="2|3", decision_stamp=5, file_stamps="7:8:9")
    store.record_completed([first, newer], run_id="night-2")  # one product twice in a call: the last wins
    again = store.get_completed(["A-1"])["A-1"]
    assert again[:10] == newer[:10] and again.run_id == "night-2"
    assert store.get_completed(["B-2"])["B-2"].run_id == "night-1"
    store.record_completed([], run_id="night-3")  # nothing to write: no transaction


def test_completed_products_of_a_whole_catalogue_are_read_in_one_call(store: SQLJobStore) -> None:
    from catalog.state import CompletedProduct

    records = [
        CompletedProduct(f"P-{n:05d}", "h", "f", "6|6", 0, f"plan-{n}", "[]", "s", "[]") for n in range(2500)
    ]
    store.record_completed(records, run_id="night")
    wanted = [f"P-{n:05d}" for n in range(0, 3000, 3)]
    found = store.get_completed(wanted)
    assert sorted(found) == [key for key in wanted if int(key[2:]) < 2500]
    assert all(found[key].plan_key == f"plan-{int(key[2:])}" for key in found)


# Opening by URL or path -----------------------------------------------------------------------------------------


def test_a_path_a_sqlite_url_and_the_old_class_name_open_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "state.sqlite"
    with SQLiteJobStore(path) as by_class:
        _produce(by_class, "J", [_KEY])
    assert ExportedSQLiteJobStore is SQLiteJobStore
    for target in (path, str(path), f"sqlite:///{path}"):
        with open_job_store(target) as store:
            assert store.path == path
            assert _is_current(store, "J", "h", "f")
    journal_mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal_mode == "wal"


def test_urls_are_normalised_and_unsupported_ones_refused(tmp_path: Path) -> None:
    assert state_url("postgresql://u:p@127.0.0.1:5432/db") == "postgresql+psycopg://u:p@127.0.0.1:5432/db"
    assert state_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert state_url(tmp_path / "s.sqlite") == f"sqlite:///{tmp_path / 's.sqlite'}"
    with pytest.raises(ValueError, match="SQLite .* or PostgreSQL") as raised:
        open_job_store("mysql://user:secret@127.0.0.1/db")
    assert "secret" not in str(raised.value)  # no password in messages
    with pytest.raises(ValueError, match="in-memory"):
        open_job_store("sqlite:///:memory:")


def test_choose_state_url_prefers_the_profile_then_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = tmp_path / "out" / "state.sqlite"
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    assert choose_state_url(default) == f"sqlite:///{default}"
    monkeypatch.setenv(STATE_URL_ENV, "postgresql://team@db.internal/onmodel")
    assert choose_state_url(default) == "postgresql+psycopg://team@db.internal/onmodel"
    assert choose_state_url(default, "sqlite:////srv/state.sqlite") == "sqlite:////srv/state.sqlite"


def _backend(store: SQLJobStore) -> int:
    """The server process behind the connection the store's pool hands out (PostgreSQL), else 0."""
    if store.path is not None:
        return 0
    with store.engine.connect() as connection:
        return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _write_from_forked_child(store: SQLJobStore, backends: Any) -> None:
    """Child process (forked): use the parent's store object; it must open its own connections.

    It reports through the queue, not its exit code: in a test process that has run Prefect flows, the
    child's inherited exit handlers may end it with 1 after its work is done.
    """
    try:
        _produce(store, "from-child", [_KEY])
        assert store.get("from-parent") is not None
        backends.put(("ok", _backend(store)))
    except BaseException as error:  # the parent shows what went wrong
        backends.put(("error", repr(error)))


def test_a_forked_child_reconnects_instead_of_sharing_the_parents_connections(store: SQLJobStore) -> None:
    _produce(store, "from-parent", [_KEY])
    parents = _backend(store)  # the connection now idle in the pool, which the child inherits
    context = multiprocessing.get_context("fork")
    backends = context.Queue()
    child = context.Process(target=_write_from_forked_child, args=(store, backends))
    child.start()
    outcome, childs = backends.get(timeout=60)
    child.join(timeout=60)
    assert outcome == "ok", childs
    if store.path is None:
        assert childs != parents  # its own server session, not the parent's socket
    _produce(store, "parent-again", [_KEY])  # the parent's own connections still work
    assert _backend(store) == parents
    assert {row.job_id for row in store.all_rows()} == {"from-parent", "from-child", "parent-again"}


def test_job_states_stay_hashable(store: SQLJobStore) -> None:
    _produce(store, "J", [_KEY], render_fields={"prompt": "a"})
    state = store.get("J")
    assert state is not None and state in {state}
    with pytest.raises(TypeError):
        state.render_fields["prompt"] = "b"  # type: ignore[index] - read-only, shared between states


def test_record_products_writes_a_catalogue_in_statements_of_a_thousand(store: SQLJobStore) -> None:
    from sqlalchemy import event

    from catalog.state import ProductSighting

    store.record_run_started("n1", profile="demo", csv="c.csv", trigger="nightly")
    sightings = [
        ProductSighting(
            f"SKU-{index:05d}", f"h{index}", {"image": f"g{index}.png"}, {"title": f"Tee {index}"}
        )
        for index in range(2500)
    ]
    sightings.append(ProductSighting("SKU-00000", "h-again", {}, {"title": "the later sighting wins"}))
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO PRODUCTS"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert store.record_products(sightings, "n1") == 2500
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) == 3  # 1000 + 1000 + 500 rows, one executemany each
    products = store.get_products()
    assert len(products) == 2500
    assert (products["SKU-00000"].image_hash, products["SKU-00000"].render_fields) == (
        "h-again",
        {"title": "the later sighting wins"},
    )
    assert products["SKU-02499"].source_identity == {"image": "g2499.png"}
    with pytest.raises(ValueError, match="run's id"):
        store.record_products(sightings[:1], "")
