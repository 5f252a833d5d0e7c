"""Which failures Prefect retries: transient faults only, never bad input. The one place retry settings live."""

from __future__ import annotations

from typing import Any

from catalog import TransientFetchError
from pipelines.errors import TransientError
from pipelines.production.profile import Profile

# Types, not names: device faults come from renderers as pipelines.errors types, photo fetches that timed out
# from the catalogue (which wraps httpx's errors after its own retries), OS-level timeouts from storage.
TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    TransientFetchError,
    TimeoutError,
    ConnectionError,
)


def is_transient(exc: BaseException | None) -> bool:
    """True for faults that may pass on a second try."""
    return isinstance(exc, TRANSIENT_TYPES)


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
