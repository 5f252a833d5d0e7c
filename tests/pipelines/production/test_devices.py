"""Device lists of a run: auto, cpu, cuda:N lists, cpu:N test devices; and the chunk sizes built from them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.production import validate
from pipelines.production.book import (
    MAX_CHUNK,
    MIN_CHUNK,
    TAPER_CHUNKS_PER_WORKER,
    chunk_size,
    chunks,
    tapered_chunks,
)
from pipelines.production.validate import RunConfigError, check_devices


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cpu", ("cpu",)),
        ("cuda", ("cuda",)),
        ("cuda:0,cuda:1", ("cuda:0", "cuda:1")),
        (["cuda:0", " CUDA:3 "], ("cuda:0", "cuda:3")),
        (["cpu:0", "cpu:1"], ("cpu:0", "cpu:1")),
        (None, ("cpu",)),
        ([], ("cpu",)),
    ],
)
def test_device_lists(spec: object, expected: tuple[str, ...]) -> None:
    assert check_devices(spec) == expected  # type: ignore[arg-type]


def test_auto_is_every_cuda_device_or_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "cuda_device_count", lambda: 3)
    assert check_devices("auto") == ("cuda:0", "cuda:1", "cuda:2")
    monkeypatch.setattr(validate, "cuda_device_count", lambda: 0)
    assert check_devices("auto") == ("cpu",)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpu0", "is not a device"),
        ("cuda,cuda:0", "one device twice"),
        ("cpu,cpu:1", "plain cpu is one shared device"),
        ("auto,cuda:1", "auto stands alone"),
    ],
)
def test_bad_device_lists_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(RunConfigError, match=message):
        check_devices(spec)


def test_adaptive_chunks_grow_with_the_catalogue_and_stay_bounded() -> None:
    assert chunk_size(3, 1) == MIN_CHUNK
    assert chunk_size(1_000, 1) == 125 and chunk_size(1_000, 4) == 32
    assert chunk_size(100_000, 1) == MAX_CHUNK  # ~400 task runs for 100k products, not 100k
    assert chunk_size(100_000, 8, 50) == 50
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_size(10, 1, 0)
    records = list(range(10))
    assert list(chunks(records, 4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # type: ignore[arg-type]
    parts = chunks(records, 4)  # type: ignore[arg-type]
    assert (len(parts), parts[-1], parts[1:]) == (3, [8, 9], [[4, 5, 6, 7], [8, 9]])


def test_tapered_chunks_shrink_towards_the_end_so_separate_workers_finish_together() -> None:
    records = list(range(27))
    parts = tapered_chunks(records, 4, workers=2)  # type: ignore[arg-type]
    assert [len(part) for part in parts] == [4, 4, 4, 4, 3, 2, 2, 1, 1, 1, 1]
    assert [record for part in parts for record in part] == records  # CSV order, each once
    assert list(tapered_chunks([], 4, 2)) == []
    # one worker: no tail
    assert list(tapered_chunks(records, 4, 1)) == list(chunks(records, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers >= 1"):
        tapered_chunks(records, 4, 0)  # type: ignore[arg-type]


@given(products=st.integers(0, 3000), size=st.integers(1, MAX_CHUNK), workers=st.integers(2, 16))
def test_tapered_chunks_cover_every_product_once_and_never_grow(
    products: int, size: int, workers: int
) -> None:
    records = list(range(products))
    parts = tapered_chunks(records, size, workers)  # type: ignore[arg-type]
    assert [record for part in parts for record in part] == records
    lengths = [len(part) for part in parts]
    assert all(1 <= length <= size for length in lengths)
    assert lengths == sorted(lengths, reverse=True)
    for index, length in enumerate(lengths):  # never more than its share of what is left
        left = products - sum(lengths[:index])
        assert length <= math.ceil(left / (TAPER_CHUNKS_PER_WORKER * workers))
    if products:
        assert lengths[-1] == 1
    # Few extra chunks: about TAPER_CHUNKS_PER_WORKER x workers x ln(size) more than plain chunks of `size`.
    extra = len(parts) - len(chunks(records, size))  # type: ignore[arg-type]
    assert extra <= TAPER_CHUNKS_PER_WORKER * workers * (math.log(size) + 2)
