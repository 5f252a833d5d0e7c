"""A validated catalogue's records on disk, so a 100k-product run holds 8 bytes a record, not ~1 KB.

The records are pickled one after another into an unlinked temporary file (nothing is left behind, even by a
run killed with kill -9) and read back on access by offset (`os.pread`: no shared file position, so threads
may read at once). A run decodes its records once, chunk by chunk as the chunks are submitted; their SKUs are
kept beside the offsets (the run book keeps the same strings), so counting and listing products decodes nothing.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from catalog.schema import ProductRecord

_READ_BLOCK = 1 << 20  # iteration reads this many bytes at a time, whole records


class SpooledRecords(Sequence[ProductRecord]):
    """Records appended once (validation), then read by index, slice or iteration, in append order."""

    def __init__(self, records: Iterable[ProductRecord] = ()) -> None:
        self._file = tempfile.TemporaryFile(prefix="onmodel-records-")
        self._offsets = array("q", [0])  # record i is bytes offsets[i]:offsets[i + 1]
        self.skus: list[str] = []  # record i's sku, read without decoding the record
        self._lock = threading.Lock()
        self._unflushed = False
        for record in records:
            self.append(record)

    def __repr__(self) -> str:
        return f"SpooledRecords({len(self)} records)"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (sent to another process) as the records themselves: the file is this process's own.
        return (SpooledRecords, (list(self),))

    def append(self, record: ProductRecord) -> None:
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._file.write(data)
            self._offsets.append(self._offsets[-1] + len(data))
            self.skus.append(record.sku)
            self._unflushed = True

    def close(self) -> None:
        """Drop the file now (it also goes when the object is collected)."""
        self._file.close()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, index: int) -> ProductRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[ProductRecord]: ...

    def __getitem__(self, index: int | slice) -> ProductRecord | list[ProductRecord]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[position] for position in range(start, stop, step)]
            return list(self._read(start, stop))
        position = range(len(self))[index]  # negative indexes and IndexError as a list's
        return pickle.loads(self._bytes(self._offsets[position], self._offsets[position + 1]))

    def __iter__(self) -> Iterator[ProductRecord]:
        return self._read(0, len(self))

    def _read(self, start: int, stop: int) -> Iterator[ProductRecord]:
        """Records start..stop-1, read a block of whole records at a time."""
        offsets = self._offsets
        position = start
        while position < stop:
            last = position + 1  # at least one record per block, however large
            while last < stop and offsets[last + 1] - offsets[position] <= _READ_BLOCK:
                last += 1
            block = memoryview(self._bytes(offsets[position], offsets[last]))
            base = offsets[position]
            for index in range(position, last):
                yield pickle.loads(block[offsets[index] - base : offsets[index + 1] - base])
            position = last

    def _bytes(self, start: int, stop: int) -> bytes:
        if self._unflushed:
            with self._lock:
                self._file.flush()
                self._unflushed = False
        return os.pread(self._file.fileno(), stop - start, start)


def record_skus(records: Sequence[ProductRecord]) -> Sequence[str]:
    """The records' SKUs in order: a spool's without decoding a record, else read from each."""
    return records.skus if isinstance(records, SpooledRecords) else [record.sku for record in records]
