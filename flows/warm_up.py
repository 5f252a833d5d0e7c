"""The imports a Dask process needs for the run's chunk tasks, done ahead of them.

Since dask 2024 the scheduler unpickles every task it is given, and the worker unpickles it again: on a fresh
process that means importing Prefect's task engine and the flows, 1.6-2.7 s on a 2-core machine, paid by the run's
first chunk while its device waits. The preflight has the scheduler and every worker import them at once, on
their event loop (`import_on_loop`): the very thread that unpickles tasks, so a chunk that arrives meanwhile waits
for the imports instead of racing them (an import on another thread did race one: a partially initialised
module). This module imports nothing heavy itself (the scheduler loads it to run it).
"""

from __future__ import annotations

import importlib

CHUNK_TASK_MODULES = ("prefect.task_engine", "prefect_dask.client", "flows.tasks")


def import_all() -> None:
    """Import CHUNK_TASK_MODULES (each once per process; the chunk task itself reports what is missing)."""
    for module in CHUNK_TASK_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            return


async def import_on_loop() -> None:
    """For `client.run(..., wait=False)` / `client.run_on_scheduler(..., wait=False)`: the imports on the process's
    event loop, started without waiting for them (they hold the loop as unpickling the first chunk would)."""
    import_all()


def dask_setup(process: object) -> None:
    """`dask worker --preload flows.warm_up` (or `dask scheduler --preload flows.warm_up`): the imports while the
    process starts, before it takes any task (without it the run's preflight starts them)."""
    import_all()
