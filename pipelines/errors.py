"""Domain errors: what went wrong with one product or job, typed so callers map them once, never by name.

Steps and renderers raise these; the orchestration layer decides from the type alone whether a fault is
retried (TransientError), recorded as a failed job (InputError, RenderError), or is a bug that must fail loudly
(anything else).
"""

from __future__ import annotations


class OnmodelError(Exception):
    """Base of every domain error."""


class InputError(OnmodelError, ValueError):
    """The product's input cannot be used (photo, cutout, placement); retrying will not help."""


class RenderError(OnmodelError):
    """A renderer could not make an acceptable image for a job; retrying the same call will not help."""


class TransientError(OnmodelError):
    """A fault that may pass on a second try (a device, a timeout); retried with backoff."""


class DeviceLostError(TransientError):
    """The accelerator went away mid-batch (driver reset, preempted host)."""


class DeviceBusyError(TransientError):
    """The device is held by another batch or process."""


class DeviceOutOfMemoryError(TransientError):
    """The device ran out of memory for this batch (a smaller batch or a freed cache may fit)."""


class StorageTimeoutError(TransientError):
    """Reading or writing the output storage timed out."""
