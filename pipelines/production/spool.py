"""A run's final product outcomes spooled to a local file, so its bookkeeping stays flat at 100k products.

Each product is written once it is final (its contact sheet done or failed): one JSON line, `to_dict()` of its
outcome. Memory keeps only a compact index per product (sku, row, byte offset, state, job counts: tens of
bytes, not the ~13 KB of an outcome with its jobs), and `outcomes()` is a lazy sequence in (row, sku) order that
reads the lines back on access. The spool is a local file (never a storage key): an object store cannot be
appended to, and readers seek into it.
"""

from __future__ import annotations

import json
import os
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pipelines.production.outcomes import (
    IndexedOutcomes,
    ProductOutcome,
    Tallies,
    Tally,
    product_tally,
)

# A finished run's spool is kept this long (its report object reads it; summary.json holds the same products),
# then the next run deletes it. A running run appends to its spool at every product, so it is never this old.
SPOOL_KEEP_S = 2 * 24 * 3600


class Spool(Protocol):
    """Where a run book puts final outcomes."""

    def append(self, outcome: ProductOutcome) -> None: ...

    def outcomes(self) -> Sequence[ProductOutcome]:
        """Every outcome appended so far, in (row, sku) order."""
        ...

    def __len__(self) -> int: ...


class MemorySpool:
    """Outcomes kept as they are: a device pool's chunk (a few hundred products, pickled back whole)."""

    def __init__(self) -> None:
        self._outcomes: list[ProductOutcome] = []

    def append(self, outcome: ProductOutcome) -> None:
        self._outcomes.append(outcome)

    def outcomes(self) -> list[ProductOutcome]:
        return sorted(self._outcomes, key=lambda p: (p.row, p.sku))

    def __len__(self) -> int:
        return len(self._outcomes)


class OutcomeSpool:
    """JSON lines in a local file (a run's `runs/<id>/outcomes.jsonl`), with the compact index in memory."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._handle: BinaryIO | None = None
        self._skus: list[str] = []
        self._rows = array("q")
        self._offsets = array("q", [0])  # line i is offsets[i]:offsets[i + 1]
        self._tallies = Tallies()

    def append(self, outcome: ProductOutcome) -> None:
        line = json.dumps(outcome.to_dict(), default=str).encode("utf-8") + b"\n"
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Held while the run appends; a fresh file for the run, appended to if reopened after outcomes().
            self._handle = open(self.path, "ab" if len(self._skus) else "wb")
        self._handle.write(line)
        self._handle.flush()  # one write per product: the file holds every final product, also mid-run
        self._skus.append(outcome.sku)
        self._rows.append(outcome.row)
        self._offsets.append(self._offsets[-1] + len(line))
        self._tallies.append(product_tally(outcome))

    def __len__(self) -> int:
        return len(self._skus)

    def outcomes(self) -> SpooledOutcomes:
        self.close()  # the book is finished; readers open the file themselves
        if not self._skus:  # a run without products still has its (empty) spool
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
        count = len(self._skus)
        order = array("q", sorted(range(count), key=lambda i: (self._rows[i], self._skus[i])))
        return SpooledOutcomes(
            str(self.path), order, self._skus[:], self._offsets[: count + 1], self._tallies.head(count)
        )

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class SpooledOutcomes(IndexedOutcomes):
    """A spool's outcomes in (row, sku) order, decoded on access; picklable (a path and the index).

    retired: sku -> the jobs the report's publication retired (set after the spool was written).
    """

    def __init__(
        self,
        path: str,
        order: array[int],
        skus: list[str],
        offsets: array[int],
        tallies: Tallies,
    ) -> None:
        self.path = path
        self._order, self._skus, self._offsets = order, skus, offsets
        self._tallies = tallies
        self.retired: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"SpooledOutcomes({self.path!r}, {len(self)} products)"

    def tallies(self) -> Iterator[Tally]:
        return iter(self._tallies)

    def _read(self, positions: Iterable[int]) -> Iterator[ProductOutcome]:
        with open(self.path, "rb") as handle:
            for position in positions:
                yield self._decode(handle, position)

    def _decode(self, handle: BinaryIO, position: int) -> ProductOutcome:
        start = self._offsets[position]
        handle.seek(start)
        data: dict[str, Any] = json.loads(handle.read(self._offsets[position + 1] - start))
        product = ProductOutcome.from_dict(data)
        if product.sku in self.retired:
            product.retired_jobs = list(self.retired[product.sku])
        return product


def remove_stale_spools(
    paths: Iterable[Path], keep_s: float = SPOOL_KEEP_S, now: float | None = None
) -> list[Path]:
    """Delete the spools not written for keep_s seconds (finished runs'); the paths removed."""
    cutoff = (time.time() if now is None else now) - keep_s
    removed = []
    for path in paths:
        try:
            if os.stat(path).st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # another run removed it first
            continue
    return removed
