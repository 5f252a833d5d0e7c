"""The lease renewer keeps a live run's claims from expiring, for other hosts' runs too."""

from __future__ import annotations

import time
from pathlib import Path

from catalog.state import ClaimOwner, SQLJobStore
from pipelines.production.claims import LeaseRenewer
from tests.pipelines.production.pool_helpers import PoolModels, pool_setup


def test_a_renewed_lease_outlives_its_length_and_lapses_once_renewals_stop(tmp_path: Path) -> None:
    _, res, _ = pool_setup(tmp_path, 1, PoolModels())
    store = res.store
    assert isinstance(store, SQLJobStore)
    elsewhere = ClaimOwner("other-host", 1, "1@x")  # a run on another host: only its lease protects it
    assert store.claim(["a", "b"], "r1", lease_seconds=0.6) == {"a", "b"}
    renewer = LeaseRenewer(res, "r1", lease_s=0.6).start()
    try:
        for _ in range(8):  # 1.6 s: more than two leases
            time.sleep(0.2)
            assert store.claim(["a", "b"], "r2", lease_seconds=60, owner=elsewhere) == set()
    finally:
        renewer.stop()
    assert renewer.renewals >= 4 and renewer.last_error == ""
    time.sleep(0.8)
    assert store.claim(["a", "b"], "r2", lease_seconds=60, owner=elsewhere) == {"a", "b"}
