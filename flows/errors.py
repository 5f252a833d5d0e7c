"""Which failures are worth a retry: transient faults only, never bad input."""

from __future__ import annotations

from typing import Any

# By class name so this module needs neither torch nor httpx: OOM and lost devices come from torch,
# timeouts from httpx / sockets, TransientFetchError from catalog.image_refs after its own retries.
TRANSIENT_NAMES = frozenset(
    {
        "TimeoutError",
        "ConnectionError",
        "ConnectionResetError",
        "BrokenPipeError",
        "OutOfMemoryError",  # torch.OutOfMemoryError / torch.cuda.OutOfMemoryError
        "DeviceLostError",
        "TransientFetchError",
        "TimeoutException",
        "ReadTimeout",
        "ConnectTimeout",
        "DeviceBusyError",
    }
)


class DeviceLostError(RuntimeError):
    """The accelerator went away mid-batch (driver reset, preempted host); retry elsewhere."""


def is_transient(exc: BaseException | None) -> bool:
    """True for faults that may pass on a second try."""
    if exc is None:
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & TRANSIENT_NAMES:
        return True
    # CUDA reports some transient faults only as RuntimeError text.
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)


def retry_only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry a failed task run only when its exception is transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the result itself could not be read: treat as not retriable
        exc = error
    return is_transient(exc if isinstance(exc, BaseException) else None)
