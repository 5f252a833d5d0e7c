"""Output storage: keys only, atomic writes that leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.production.layout import LocalStorage, OutputLayout, Storage, sidecar_key


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("sub/f.bin", b"one")
    storage.write_bytes("sub/f.bin", b"two")
    assert storage.read_bytes("sub/f.bin") == b"two" and storage.exists("sub/f.bin")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.bin"]
    assert isinstance(storage, Storage)


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("f.bin", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("pipelines.image_io.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        storage.write_bytes("f.bin", b"new")
    assert storage.read_bytes("f.bin") == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.parametrize("key", ["/etc/passwd", "../outside.png", "images/../../x", ""])
def test_keys_stay_inside_the_output_folder(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="inside the output folder"):
        LocalStorage(tmp_path).write_bytes(key, b"x")


def test_layout_keys_are_stable_and_safe_for_dotted_skus() -> None:
    layout = OutputLayout()
    stem = layout.image_stem("master", "A.1", "A.1__front__v0")
    assert stem == "images/master/A.1/A.1__front__v0"
    assert sidecar_key(stem + ".png") == "images/master/A.1/A.1__front__v0.json"
    assert layout.sheet("A.1") == "sheets/A.1.jpg" and layout.run_summary("r1") == "runs/r1/summary.json"


def test_existing_agrees_with_exists_whether_a_folder_is_listed_or_stat_ed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    for key in ["images/master/A/A__front__v0.png", "images/master/A/A__front__v0.json", "cutouts/A.png"]:
        storage.write_bytes(key, b"x")
    (tmp_path / "images" / "master" / "A" / "A__back__v0.png").mkdir()  # a folder, not a file
    asked = [
        "images/master/A/A__front__v0.png",  # listed: 4 keys asked in this folder
        "images/master/A/A__front__v0.json",
        "images/master/A/A__back__v0.png",
        "images/master/A/A__back__v0.json",
        "images/master/B/B__front__v0.png",  # a folder that does not exist: listed as empty (3 keys)
        "images/master/B/B__front__v0.json",
        "images/master/B/B__back__v0.png",
        "cutouts/A.png",  # stat'ed: 2 keys asked in this folder
        "cutouts/A.json",
    ]
    found = storage.existing(asked)
    assert found == {key for key in asked if storage.exists(key)}
    assert found == {"images/master/A/A__front__v0.png", "images/master/A/A__front__v0.json", "cutouts/A.png"}
    assert storage.existing([]) == set()


@pytest.mark.parametrize("key", ["../outside.png", "images/../../x/a.png", "/etc/passwd"])
def test_existing_refuses_keys_outside_the_output_folder(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="inside the output folder"):
        LocalStorage(tmp_path).existing([key, key.replace(".png", ".json"), key + ".x"])


def test_a_folder_stamp_moves_when_a_file_is_added_replaced_or_removed(tmp_path: Path) -> None:
    import os

    from pipelines.production.layout import StampedStorage

    storage = LocalStorage(tmp_path)
    assert isinstance(storage, StampedStorage)
    folder, key = "images/master/A", "images/master/A/A__front__v0.png"
    assert storage.stamps([folder, key]) == {folder: "", key: ""}  # nothing there yet
    storage.write_bytes(key, b"one")
    seen = [storage.stamps([folder, key])]

    def settle() -> None:  # back-date what is there, so a change a moment later cannot share its timestamp
        for path in (tmp_path / folder, tmp_path / key):
            if path.exists():
                os.utime(path, ns=(1_000_000_000, 1_000_000_000 + len(seen)))
        seen.append(storage.stamps([folder, key]))

    settle()
    storage.write_bytes(key, b"two")  # replaced (an atomic rename into the folder)
    after_replace = storage.stamps([folder, key])
    assert after_replace[folder] != seen[-1][folder] and after_replace[key] != seen[-1][key]
    settle()
    storage.write_bytes(f"{folder}/A__front__v0.json", b"{}")  # added beside it
    assert storage.stamps([folder])[folder] != seen[-1][folder]
    settle()
    (tmp_path / key).unlink()  # removed
    assert storage.stamps([folder, key]) == {folder: storage.stamps([folder])[folder], key: ""}
    assert storage.stamps([folder])[folder] != seen[-1][folder]
    settle()
    assert storage.stamps([folder]) == {folder: seen[-1][folder]}  # nothing changed: the same stamp


def test_a_streamed_write_is_in_place_whole_once_it_ends_and_absent_if_it_raises(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("sub/f.csv", b"old")
    with pytest.raises(RuntimeError, match="cut off"), storage.open_write("sub/f.csv") as handle:
        handle.write(b"new, ")
        assert storage.read_bytes("sub/f.csv") == b"old"  # readers see the old file while it is written
        raise RuntimeError("cut off")
    assert storage.read_bytes("sub/f.csv") == b"old" and [p.name for p in (tmp_path / "sub").iterdir()] == [
        "f.csv"
    ]
    with storage.open_write("sub/f.csv") as handle:
        handle.write(b"new, ")
        handle.write(b"whole")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.csv"]
    with storage.open_read("sub/f.csv") as handle:
        handle.seek(5)
        assert handle.read() == b"whole"
