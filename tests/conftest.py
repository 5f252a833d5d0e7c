"""Session fixtures shared across test folders: a real Prefect server and a real `onmodel serve` against it.

Nothing here is autouse: only the tests that ask for them pay for starting them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serving import PrefectServer, ServedCatalogue


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """`prefect server start --host 127.0.0.1 --port <free>` with its own PREFECT_HOME; stopped at the end."""
    server = PrefectServer(home=tmp_path_factory.mktemp("prefect-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedCatalogue]:
    """`onmodel serve` with an every-minute nightly schedule, an inbox and a token-guarded endpoint."""
    catalogue = ServedCatalogue(prefect_server, tmp_path_factory.mktemp("served")).prepare().start()
    try:
        yield catalogue
    finally:
        catalogue.stop()
