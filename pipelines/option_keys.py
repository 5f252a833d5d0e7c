"""Option names a profile got wrong, with the closest right one: shared by every option check."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any


def unknown_keys(given: Iterable[Any], known: Sequence[str]) -> tuple[list[str], str]:
    """(the unknown names sorted, ' (did you mean ...?)' for the first one or ''); ([], '') when all are known."""
    unknown = sorted(str(key) for key in given if key not in known)
    if not unknown:
        return [], ""
    close = difflib.get_close_matches(unknown[0], known, n=1)
    return unknown, f" (did you mean {close[0]!r}?)" if close else ""
