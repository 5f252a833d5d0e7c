"""Which faults pass on a second try, and how long to wait before it: one policy for the pool and the flows.

Types, not names: device faults come from renderers as pipelines.errors types, photo fetches that timed out from
the catalogue (which wraps httpx's errors after its own retries), OS-level timeouts from storage.
"""

from __future__ import annotations

from catalog import TransientFetchError
from pipelines.errors import TransientError

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    TransientFetchError,
    TimeoutError,
    ConnectionError,
)


def is_transient(exc: BaseException | None) -> bool:
    """True for faults that may pass on a second try."""
    return isinstance(exc, TRANSIENT_TYPES)


def backoff_s(delay_s: float, attempt: int) -> float:
    """Exponential backoff before retry `attempt` (1 = the first retry): delay, 2 x delay, 4 x delay ..."""
    return delay_s * 2 ** max(0, attempt - 1)


def describe_error(error: BaseException) -> str:
    """'DeviceLostError: cuda:0 fell off the bus' (the reason text of a failed job)."""
    return f"{type(error).__name__}: {error}"
