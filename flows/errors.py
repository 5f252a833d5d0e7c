"""Which failures Prefect retries: transient faults only, never bad input. The one place retry settings live."""

from __future__ import annotations

from typing import Any

from pipelines.production.faults import TRANSIENT_TYPES, is_transient
from pipelines.production.profile import Profile

# The device pool (pipelines.production.pool) and Prefect's task retries share one definition of "transient".
__all__ = ["TRANSIENT_TYPES", "is_transient", "retry_only_transient", "retry_options"]


def retry_only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry a failed task run only when its exception is transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the result itself could not be read: not retriable
        exc = error
    return is_transient(exc if isinstance(exc, BaseException) else None)


def retry_options(profile: Profile) -> dict[str, Any]:
    """Task options for retries: counts and delays from the profile's run section, transient faults only."""
    run = profile.run
    retries = int(run.get("task_retries", 2))
    delay = float(run.get("retry_delay_s", 1))
    # Exponential backoff: 1 s, 2 s, 4 s ... by default.
    return {
        "retries": retries,
        "retry_delay_seconds": [delay * 2**attempt for attempt in range(retries)] if retries else 0,
        "retry_condition_fn": retry_only_transient,
    }
