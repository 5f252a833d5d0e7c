"""Job claims: two runs at once (threads, processes, a run killed with -9) never get the same job."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog.state import ClaimOwner, SQLJobStore, open_job_store


@pytest.fixture
def store(state_url: str) -> Iterator[SQLJobStore]:
    with open_job_store(state_url) as opened:
        yield opened


def test_a_held_job_goes_to_nobody_else_until_released(store: SQLJobStore) -> None:
    assert store.claim(["a", "b", "c"], "nightly", lease_seconds=600) == {"a", "b", "c"}
    assert store.claim(["b", "c", "d"], "upload", lease_seconds=600) == {"d"}
    assert store.claim(["a", "b"], "nightly", lease_seconds=600) == {"a", "b"}  # the holder renews
    assert store.claims_of("nightly") == {"a", "b", "c"}
    assert store.release(["b", "d"], "nightly") == 1  # d is upload's: untouched
    assert store.claim(["b", "d"], "upload", lease_seconds=600) == {"b", "d"}
    assert store.claims_of("upload") == {"b", "d"}
    assert store.claim([], "upload", lease_seconds=600) == set()


def test_an_expired_lease_is_taken_over(store: SQLJobStore) -> None:
    assert store.claim(["a", "b"], "crashed-run", lease_seconds=0) == {"a", "b"}  # expires at once
    assert store.claim(["a"], "next-run", lease_seconds=600) == {"a"}
    assert store.claims_of("crashed-run") == {"b"}  # still listed until someone takes it over
    assert store.claim(["a"], "crashed-run", lease_seconds=600) == set()  # now next-run's, and live


def test_finishing_a_run_releases_its_claims(store: SQLJobStore) -> None:
    store.record_run_started("nightly", profile="demo", csv="catalog.csv", trigger="nightly")
    assert store.claim(["a", "b"], "nightly", lease_seconds=600) == {"a", "b"}
    assert store.claim(["c"], "upload", lease_seconds=600) == {"c"}
    store.record_run_finished("nightly", counts={"produced": 2})
    assert store.claims_of("nightly") == set()
    assert store.claims_of("upload") == {"c"}
    assert store.claim(["a", "b", "c"], "upload", lease_seconds=600) == {"a", "b", "c"}


def test_bad_claims_are_refused(store: SQLJobStore) -> None:
    with pytest.raises(ValueError, match="lease_seconds"):
        store.claim(["a"], "r", lease_seconds=-1)
    with pytest.raises(ValueError, match="run's id"):
        store.claim(["a"], "", lease_seconds=5)
    with pytest.raises(TypeError, match="not a string"):
        store.claim("abc", "r", lease_seconds=5)
    assert store.claims_of("r") == set()


def test_threads_racing_for_the_same_jobs_each_get_a_share_and_no_job_twice(store: SQLJobStore) -> None:
    job_ids = [f"SKU-{index:04d}/front/0" for index in range(1200)]  # several statements' worth
    won: dict[str, set[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def run(index: int) -> None:
        mine = job_ids[:]
        random.Random(index).shuffle(mine)
        try:
            barrier.wait()
            claimed: set[str] = set()
            for start in range(0, len(mine), 150):  # runs claim as their plans fill
                claimed |= store.claim(mine[start : start + 150], f"run-{index}", lease_seconds=600)
            won[f"run-{index}"] = claimed
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    _assert_each_job_claimed_once(won, job_ids)
    for run_id, claimed in won.items():
        assert store.claims_of(run_id) == claimed


def _claim_in_child(
    url: str,
    run_id: str,
    job_ids: list[str],
    start: multiprocessing.Event,
    finish: multiprocessing.Event,
    out: str,
) -> None:
    """Child process: wait for the start signal, claim in chunks as a run would, write what it won, and stay
    alive until told (a holder that exits is dead, and its claims void)."""
    with open_job_store(url) as store:
        start.wait(timeout=60)
        claimed: set[str] = set()
        for begin in range(0, len(job_ids), 100):
            claimed |= store.claim(job_ids[begin : begin + 100], run_id, lease_seconds=600)
    Path(out).write_text(json.dumps(sorted(claimed)))
    finish.wait(timeout=120)


def test_processes_racing_for_the_same_jobs_never_both_get_one(state_url: str, tmp_path: Path) -> None:
    job_ids = [f"SKU-{index:04d}/front/0" for index in range(800)]
    open_job_store(state_url).close()  # the schema first, so the race is about claims only
    context = multiprocessing.get_context("spawn")
    start, finish = context.Event(), context.Event()
    processes = []
    for index in range(4):
        mine = job_ids[:]
        random.Random(index).shuffle(mine)
        out = tmp_path / f"won-{index}.json"
        processes.append(
            (
                out,
                context.Process(
                    target=_claim_in_child,
                    args=(state_url, f"run-{index}", mine, start, finish, str(out)),
                ),
            )
        )
    for _, process in processes:
        process.start()
    start.set()
    try:
        wait_for = time.monotonic() + 120
        while not all(out.exists() for out, _ in processes) and time.monotonic() < wait_for:
            time.sleep(0.05)
    finally:
        finish.set()
    for _, process in processes:
        process.join(timeout=120)
    assert [process.exitcode for _, process in processes] == [0, 0, 0, 0]
    won = {f"run-{index}": set(json.loads(out.read_text())) for index, (out, _) in enumerate(processes)}
    _assert_each_job_claimed_once(won, job_ids)


def _claim_and_hang(url: str, held: list[str], elsewhere: list[str], ready: multiprocessing.Event) -> None:
    """Child process: a run that claims jobs (some as if from another host), then hangs until it is killed."""
    store = open_job_store(url)
    store.claim(held, "killed-run", lease_seconds=3600)
    store.claim(elsewhere, "remote-run", lease_seconds=1, owner=ClaimOwner("other-host", os.getpid(), "1@x"))
    ready.set()
    time.sleep(600)


def test_a_run_killed_with_sigkill_leaves_claims_a_rerun_takes_at_once(state_url: str) -> None:
    """Its holder on this host is dead, so the claims are void at once, however long their lease."""
    open_job_store(state_url).close()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    held, elsewhere = ["long-1", "long-2"], ["remote-1", "remote-2"]
    child = context.Process(target=_claim_and_hang, args=(state_url, held, elsewhere, ready))
    child.start()
    try:
        assert ready.wait(timeout=60)
        with open_job_store(state_url) as store:
            assert store.claim(held, "next-run", lease_seconds=600) == set()  # alive: its claims hold
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    with open_job_store(state_url) as store:
        started = time.monotonic()
        assert store.claim(held, "next-run", lease_seconds=600) == set(held)  # 3600 s lease, void at once
        assert time.monotonic() - started < 5
        assert store.claims_of("killed-run") == set()
        # A holder on another host cannot be asked: its claims end with their lease (1 s here).
        assert store.claim(elsewhere, "next-run", lease_seconds=600) == set()
        deadline = time.monotonic() + 30
        taken: set[str] = set()
        while taken != set(elsewhere) and time.monotonic() < deadline:
            taken |= store.claim(elsewhere, "next-run", lease_seconds=600)
            time.sleep(0.1)
        assert taken == set(elsewhere)
        assert store.claims_of("next-run") == set(held) | set(elsewhere)


def test_a_reused_pid_does_not_keep_a_dead_holders_claims(store: SQLJobStore) -> None:
    """A holder recorded with this very pid but another start token is a dead process whose pid came back."""
    me = ClaimOwner.current()
    ghost = ClaimOwner(me.host, me.pid, "0@another-boot")
    assert store.claim(["a"], "old-run", lease_seconds=3600, owner=ghost) == {"a"}
    assert store.claim(["b"], "live-run", lease_seconds=3600) == {"b"}  # this process: alive
    assert store.claim(["a", "b"], "new-run", lease_seconds=600) == {"a"}
    assert store.claim_holders(["a", "b", "c"]) == {"a": "new-run", "b": "live-run"}


def test_a_holder_on_another_host_keeps_its_claims_while_it_renews(store: SQLJobStore) -> None:
    remote = ClaimOwner("other-host", 4242, "77@boot")
    assert store.claim(["a", "b"], "remote-run", lease_seconds=1, owner=remote) == {"a", "b"}
    assert store.claim(["c"], "remote-run", lease_seconds=1) == {"c"}  # the same run, another process
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # renewed well within its lease, for three leases' time
        assert store.renew("remote-run", lease_seconds=1, owner=remote) == 2  # its own claims only
        assert store.claim(["a", "b"], "local-run", lease_seconds=600) == set()
        time.sleep(0.3)
    time.sleep(1.2)  # no renewal: the lease runs out
    assert store.claim(["a", "b"], "local-run", lease_seconds=600) == {"a", "b"}
    with pytest.raises(ValueError, match="lease_seconds"):
        store.renew("remote-run", lease_seconds=-1)


def _assert_each_job_claimed_once(won: dict[str, set[str]], job_ids: list[str]) -> None:
    """Every job went to exactly one run."""
    owners: dict[str, list[str]] = {}
    for run_id, claimed in won.items():
        for job_id in claimed:
            owners.setdefault(job_id, []).append(run_id)
    assert {job_id for job_id, runs in owners.items() if len(runs) > 1} == set()
    assert set(owners) == set(job_ids)
