"""The imports a Dask process needs for the run's chunk tasks, started in the background ahead of them.

Since dask 2024 the scheduler unpickles every task it is given, and the worker unpickles it again: on a fresh
process that means importing Prefect's task engine and the flows, 1.6-2.7 s on a 2-core machine, paid by the run's
first chunk while its device waits. The preflight starts these imports on the scheduler and on every worker, so
they overlap the flow's own start. This module imports nothing heavy itself (the scheduler loads it to run it).
"""

from __future__ import annotations

import importlib
import threading

# prefect.task_engine first: what unpickling a chunk task imports first, so a task that arrives mid-way waits on
# the same module locks in the same order.
CHUNK_TASK_MODULES = ("prefect.task_engine", "prefect_dask.client", "flows.tasks")
_guard = threading.Lock()
_importing: threading.Thread | None = None


def start_imports() -> bool:
    """Import CHUNK_TASK_MODULES on a daemon thread, once per process; True when this call started it."""
    global _importing
    with _guard:
        if _importing is not None:
            return False
        _importing = threading.Thread(target=_import_all, name="onmodel-warm-up", daemon=True)
        _importing.start()
        return True


def _import_all() -> None:
    for module in CHUNK_TASK_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # the chunk task itself will say what is missing
            return


def dask_setup(process: object) -> None:
    """`dask worker --preload flows.warm_up` (or `dask scheduler --preload flows.warm_up`): the imports start when
    the process starts, long before any run (without it the run's preflight starts them)."""
    start_imports()
