"""Device lists of a run: auto, cpu, cuda:N lists, cpu:N test devices; and the chunk sizes built from them."""

from __future__ import annotations

import pytest

from pipelines.production import validate
from pipelines.production.book import MAX_CHUNK, MIN_CHUNK, chunk_size, chunks
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
    assert chunks(records, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # type: ignore[arg-type]
