"""The flows the deployments run, by entry point: `onmodel serve` registers them by module path
(`flows.entrypoints.nightly_flow`), `prefect.yaml` by file path; the run process imports this module.

Each is produce_catalog with its own bounded thread pool, sized by an environment variable read when the run
process imports this module: `onmodel serve` sets it for its runs, prefect.yaml sets it in each deployment's
job_variables.env. (A served flow object is not shipped to the run process instead: produce_catalog's module
holds a ContextVar, which cloudpickle cannot pickle.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from flows.produce import DEFAULT_MAX_WORKERS, produce_catalog, thread_pool

NIGHTLY_WORKERS_ENV = "ONMODEL_NIGHTLY_WORKERS"
UPLOAD_WORKERS_ENV = "ONMODEL_UPLOAD_WORKERS"


def task_workers(variable: str, environ: Mapping[str, str] | None = None) -> int:
    """The thread count in `variable` (>= 1), else the flow's default bound."""
    value = (os.environ if environ is None else environ).get(variable, "").strip()
    return max(1, int(value)) if value.isdigit() else DEFAULT_MAX_WORKERS


nightly_flow = produce_catalog.with_options(task_runner=thread_pool(task_workers(NIGHTLY_WORKERS_ENV)))
upload_flow = produce_catalog.with_options(task_runner=thread_pool(task_workers(UPLOAD_WORKERS_ENV)))
