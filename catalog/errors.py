"""Errors the catalogue raises; each message tells a merchandiser what to fix."""

from __future__ import annotations


class CatalogError(ValueError):
    """The product CSV as a whole cannot be read (missing, unreadable, empty, not a CSV, unknown header)."""

    def __init__(self, message: str, column: str = "") -> None:
        super().__init__(message)
        self.column = column  # the header cell at fault, as written, when there is one


class ImageRefError(ValueError):
    """An image reference in a row cannot be used (escapes the allowed folders, missing, refused host...)."""


class ImageFetchError(ValueError):
    """An image could not be fetched and trying again will not help (4xx, too large, host refused)."""


class TransientFetchError(Exception):
    """An image could not be fetched after all retries on timeouts or server errors; a later run may work."""
