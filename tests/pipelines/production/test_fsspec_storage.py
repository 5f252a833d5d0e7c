"""FsspecStorage on fsspec's memory and local file systems: the Storage contract the pipeline relies on."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from pipelines.production.fsspec_storage import FsspecStorage, is_url, local_folder, open_storage
from pipelines.production.layout import LocalStorage, Storage


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FsspecStorage]:
    if request.param == "memory":
        url = f"memory://onmodel-test-{uuid.uuid4().hex[:8]}/out"
        yield FsspecStorage(url)
        memory = fsspec.filesystem("memory")
        top = "/" + url.removeprefix("memory://").split("/")[0]
        if memory.exists(top):
            memory.rm(top, recursive=True)
        return
    yield FsspecStorage((tmp_path / "out").as_uri())


def test_bytes_round_trip_by_key(storage: FsspecStorage) -> None:
    assert isinstance(storage, Storage)
    assert not storage.exists("images/master/A/A__front__v0.png")
    storage.write_bytes("images/master/A/A__front__v0.png", b"png-1")
    storage.write_bytes("images/master/A/A__front__v0.png", b"png-2")  # replaced whole
    assert storage.read_bytes("images/master/A/A__front__v0.png") == b"png-2"
    assert storage.exists("images/master/A/A__front__v0.png")
    assert not storage.exists("images/master/A")  # a folder is not a file
    storage.move("images/master/A/A__front__v0.png", "retired/run-1/images/master/A/A__front__v0.png")
    assert not storage.exists("images/master/A/A__front__v0.png")
    assert storage.read_bytes("retired/run-1/images/master/A/A__front__v0.png") == b"png-2"


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../up", "a/../../b", "a\\b"])
def test_keys_stay_inside_the_root(storage: FsspecStorage, key: str) -> None:
    with pytest.raises(ValueError, match="relative path inside"):
        storage.write_bytes(key, b"x")


def test_a_local_write_leaves_no_temporary_and_is_a_real_file(tmp_path: Path) -> None:
    storage = FsspecStorage((tmp_path / "out").as_uri())
    storage.write_bytes("sheets/A.jpg", b"jpeg")
    assert (tmp_path / "out" / "sheets" / "A.jpg").read_bytes() == b"jpeg"
    assert [p.name for p in (tmp_path / "out" / "sheets").iterdir()] == ["A.jpg"]
    assert storage.local_path("sheets/A.jpg") == tmp_path / "out" / "sheets" / "A.jpg"
    assert storage.state_db == tmp_path / "out" / "state.sqlite"
    assert local_folder(storage) == tmp_path / "out"


def test_a_memory_storage_has_no_local_files_and_no_sqlite_state() -> None:
    storage = FsspecStorage("memory://onmodel-test-nolocal/out")
    assert local_folder(storage) is None
    with pytest.raises(ValueError, match="not a local folder"):
        storage.local_path("index.html")
    with pytest.raises(ValueError, match="set ONMODEL_STATE_URL to a PostgreSQL"):
        _ = storage.state_db


def test_the_catalogue_lock_excludes_other_writers(storage: FsspecStorage) -> None:
    inside: list[int] = []
    overlaps: list[bool] = []

    def merge(index: int) -> None:
        with storage.lock("catalogue"):
            inside.append(index)
            overlaps.append(len(inside) > 1)
            threading.Event().wait(0.01)
            inside.remove(index)

    threads = [threading.Thread(target=merge, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [False] * 6


def test_open_storage_picks_by_location(tmp_path: Path) -> None:
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert isinstance(open_storage(tmp_path), LocalStorage)
    assert isinstance(open_storage("memory://x/out"), FsspecStorage)
    assert is_url("s3://bucket/out") and not is_url("/srv/out")


def test_existing_lists_a_folder_once_and_agrees_with_exists(storage: FsspecStorage) -> None:
    for key in ["images/master/A/A__front__v0.png", "images/master/A/A__front__v0.json", "cutouts/A.png"]:
        storage.write_bytes(key, b"x")
    storage.write_bytes("images/master/A/sub/inner.png", b"x")  # makes images/master/A/sub a folder
    asked = [
        "images/master/A/A__front__v0.png",
        "images/master/A/A__front__v0.json",
        "images/master/A/A__back__v0.png",
        "images/master/A/sub",  # a folder, not a file
        "images/master/B/B__front__v0.png",  # a folder never written: listed as empty
        "images/master/B/B__front__v0.json",
        "images/master/B/B__back__v0.png",
        "cutouts/A.png",
        "cutouts/A.json",
    ]
    found = storage.existing(asked)
    assert found == {key for key in asked if storage.exists(key)}
    assert found == {"images/master/A/A__front__v0.png", "images/master/A/A__front__v0.json", "cutouts/A.png"}


def test_a_streamed_write_lands_whole_or_not_at_all(storage: FsspecStorage) -> None:
    storage.write_bytes("runs/r/manifest.csv", b"old")
    with pytest.raises(RuntimeError, match="cut off"), storage.open_write("runs/r/manifest.csv") as handle:
        handle.write(b"half")
        raise RuntimeError("cut off")
    assert storage.read_bytes("runs/r/manifest.csv") == b"old"
    with storage.open_write("runs/r/manifest.csv") as handle:
        for part in (b"kind,row\n", b"product,2\n"):
            handle.write(part)
    assert storage.read_bytes("runs/r/manifest.csv") == b"kind,row\nproduct,2\n"
    assert storage.existing(["runs/r/manifest.csv", "runs/r/other"]) == {
        "runs/r/manifest.csv"
    }  # nothing else
    with storage.open_read("runs/r/manifest.csv") as handle:
        handle.seek(9)
        assert handle.readline() == b"product,2\n"
