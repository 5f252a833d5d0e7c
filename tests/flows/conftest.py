"""Flow tests run on a real, temporary Prefect API (prefect_test_harness)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness

# Importing the flow module sets up Prefect's logging; done here, its console handler binds the real stderr,
# not the stream of whichever capsys test happens to import it first (closed after that test).
import flows.produce  # noqa: F401


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    """One temporary Prefect server for the whole session (starting one costs seconds)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield
