"""Loaded into each test Dask worker (`dask worker --preload`): counts renderer loads per worker process and
makes each batch hold the (fake) device a while, so a test can kill a worker while it renders.

Loads go to $ONMODEL_TEST_LOADS_DIR/<pid>.loads, one line per renderer loaded (the device it was loaded for),
and batches to <pid>.batches, one line per batch rendered (its job ids); $ONMODEL_TEST_RENDER_DELAY_S is the
extra time per batch. The renderer itself is the real one (draft).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows import caches

# distributed may import a preload file more than once: wrap the original function, never our own wrapper.
_create_renderer = getattr(caches.create_renderer, "__wrapped__", caches.create_renderer)


class _HeldRenderer:
    """The real renderer, holding its device `delay_s` longer per batch."""

    def __init__(self, renderer: Any, delay_s: float) -> None:
        self._renderer = renderer
        self._delay_s = delay_s
        self.name = renderer.name

    def __call__(self, jobs: Sequence[Any]) -> Any:
        time.sleep(self._delay_s)
        batches = Path(os.environ["ONMODEL_TEST_LOADS_DIR"]) / f"{os.getpid()}.batches"
        with open(batches, "a", encoding="utf-8") as handle:
            handle.write(" ".join(job.job_id for job in jobs) + "\n")
        return self._renderer(jobs)

    def __getattr__(self, name: str) -> Any:  # describe(), free_memory ...: the real renderer's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._renderer, name)


def _counting_create_renderer(name: str, options: Any, device: str) -> Any:
    renderer = _create_renderer(name, options, device)
    loads = Path(os.environ["ONMODEL_TEST_LOADS_DIR"]) / f"{os.getpid()}.loads"
    with open(loads, "a", encoding="utf-8") as handle:
        handle.write(f"{device}\n")
    return _HeldRenderer(renderer, float(os.environ.get("ONMODEL_TEST_RENDER_DELAY_S", "0")))


_counting_create_renderer.__wrapped__ = _create_renderer  # type: ignore[attr-defined]
caches.create_renderer = _counting_create_renderer
