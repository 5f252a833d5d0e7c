"""`onmodel segment`: cutouts, masks and a JSON line per image; bad files are reported, never fatal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from flows.cli import main
from flows.segment_command import add_parser
from pipelines.testing.flatlays import FlatlaySpec, make_flatlay


def write_photo(path: Path, seed: int = 0) -> np.ndarray:
    """A synthetic packshot saved as a file; returns its truth mask."""
    image, mask = make_flatlay(FlatlaySpec(group="plain", width=192, height=256, seed=seed))
    Image.fromarray(image).save(path)
    return mask


def test_segment_a_folder_and_a_file(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    write_photo(photos / "tee.png")
    write_photo(photos / "tee.jpg", seed=1)  # same stem: outputs must not collide
    (photos / "notes.txt").write_text("not an image")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    code = main(["segment", str(photos), str(broken), "--out", str(out)])
    assert code == 1  # one image failed to load
    rows = [json.loads(line) for line in (out / "segment.jsonl").read_text().splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["tee.jpg", "tee.png", "broken.jpg"]
    good, bad = rows[:2], rows[2]
    for row in good:
        assert row["error"] is None and row["backend"] == "classical"
        assert isinstance(row["flags"], list) and len(row["bbox"]) == 4 and 0.05 < row["area_fraction"] < 0.9
    assert bad["error"] and "broken.jpg" in bad["error"]
    cutout = np.asarray(Image.open(out / "tee.cutout.png"))
    mask = np.asarray(Image.open(out / "tee.mask.png"))
    assert cutout.shape == (256, 192, 4) and mask.shape == (256, 192)
    assert (out / "tee-2.cutout.png").exists()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_flags_are_not_failures(tmp_path: Path) -> None:
    image = np.full((200, 200, 3), 250, np.uint8)
    image[:, 50:150] = (20, 40, 160)  # cut off at top and bottom
    Image.fromarray(image).save(tmp_path / "cut.png")
    assert main(["segment", str(tmp_path / "cut.png"), "--out", str(tmp_path / "o")]) == 0
    row = json.loads((tmp_path / "o" / "segment.jsonl").read_text())
    assert "touches_border" in row["flags"]


def test_alpha_backend_on_a_cutout_png(tmp_path: Path) -> None:
    rgba = np.zeros((120, 100, 4), np.uint8)
    rgba[20:100, 20:80] = (200, 10, 10, 255)
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    assert (
        main(["segment", str(tmp_path / "cut.png"), "--out", str(tmp_path / "o"), "--backend", "alpha"]) == 0
    )
    row = json.loads((tmp_path / "o" / "segment.jsonl").read_text())
    assert row["bbox"] == [20, 20, 80, 100]


def test_missing_rembg_model_is_a_clear_message(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "home"))
    write_photo(tmp_path / "a.png")
    code = main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--backend", "rembg"])
    assert code == 1
    assert "u2net.onnx" in capsys.readouterr().out


def test_add_parser_registers_the_subcommand() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["segment", "x.jpg", "--out", "o", "--backend", "rembg", "--model", "u2net"])
    assert args.backend == "rembg" and args.model == "u2net" and callable(args.func)
