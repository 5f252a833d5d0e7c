"""Benchmark: segmentation quality and speed on synthetic flat-lays with exact masks, plus a look at real photos.

Prints mean / worst IoU and boundary F-score per backend and per hard-case group, and images per second per
core (OpenCV limited to one thread). Writes a contact sheet of cutouts of ../shared/data/garments (when present)
over a checkerboard so halos show. Usage:
    python bench/segmentation.py --n 300 --backends classical[,rembg] --sizes 512,768,1024,1536,2048 --out DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.image_io import load_image  # noqa: E402
from pipelines.segmentation import get_segmenter  # noqa: E402
from pipelines.segmentation.metrics import boundary_f, iou  # noqa: E402
from pipelines.testing.flatlays import DEFAULT_SIZES, make_flatlay, sample_specs  # noqa: E402

REAL_PHOTOS = ROOT / ".." / "shared" / "data" / "garments"


def checkerboard(height: int, width: int, cell: int = 16) -> np.ndarray:
    """Grey checkerboard RGB, so halos and holes in a cutout are visible."""
    yy, xx = np.mgrid[0:height, 0:width]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 200, 140).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def over_checkerboard(cutout: np.ndarray) -> np.ndarray:
    """Composite an RGBA cutout over a checkerboard."""
    alpha = cutout[..., 3:4].astype(np.float32) / 255.0
    board = checkerboard(*cutout.shape[:2]).astype(np.float32)
    return np.clip(cutout[..., :3] * alpha + board * (1.0 - alpha) + 0.5, 0, 255).astype(np.uint8)


def measure(backend: str, segmenter, specs) -> dict[str, list[tuple[float, float, float]]]:
    """Per group: (IoU, boundary F, seconds) per image; only the segmenter call is timed."""
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for spec in specs:
        image, truth = make_flatlay(spec)
        started = time.perf_counter()
        result = segmenter(image)
        seconds = time.perf_counter() - started
        rows[spec.group].append((iou(result.mask, truth), boundary_f(result.mask, truth), seconds))
    return rows


def print_table(backend: str, rows: dict[str, list[tuple[float, float, float]]]) -> dict:
    """Print per-group and overall quality and speed; return the summary."""
    everything = [r for group in rows.values() for r in group]
    print(f"\nbackend {backend}: {len(everything)} images")
    print(f"{'group':18s} {'n':>4s} {'IoU mean':>9s} {'IoU worst':>10s} {'BF mean':>8s} {'BF worst':>9s}")
    summary: dict = {"backend": backend, "groups": {}}
    for group, values in [*sorted(rows.items()), ("ALL", everything)]:
        ious, bfs = [v[0] for v in values], [v[1] for v in values]
        print(
            f"{group:18s} {len(values):4d} {statistics.mean(ious):9.4f} {min(ious):10.4f} "
            f"{statistics.mean(bfs):8.4f} {min(bfs):9.4f}"
        )
        summary["groups"][group] = {
            "n": len(values),
            "iou_mean": statistics.mean(ious),
            "iou_min": min(ious),
            "bf_mean": statistics.mean(bfs),
            "bf_min": min(bfs),
        }
    seconds = sum(v[2] for v in everything)
    summary["images_per_second_per_core"] = len(everything) / seconds
    print(f"speed: {len(everything) / seconds:.1f} images/s per core (mixed sizes, OpenCV 1 thread)")
    return summary


def speed_at(segmenter, side: int, count: int = 20) -> float:
    """Images per second per core at a fixed long side (portrait 3:4 and square mixed)."""
    specs = sample_specs(count, seed=99, sizes=(side,))
    images = [make_flatlay(spec)[0] for spec in specs]
    segmenter(images[0])  # warm-up
    started = time.perf_counter()
    for image in images:
        segmenter(image)
    return count / (time.perf_counter() - started)


def real_photo_sheet(segmenter, out: Path, tile: int = 360) -> Path | None:
    """Contact sheet of cutouts of the real photos over a checkerboard, with flags; None without photos."""
    photos = sorted(REAL_PHOTOS.glob("*.jpg")) if REAL_PHOTOS.is_dir() else []
    if not photos:
        return None
    tiles = []
    for photo in photos:
        image = load_image(photo)[..., :3]
        result = segmenter(image)
        shown = over_checkerboard(result.cutout)
        scale = tile / max(shown.shape[:2])
        shown = cv2.resize(
            shown,
            (round(shown.shape[1] * scale), round(shown.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        canvas = np.full((tile + 40, tile, 3), 255, np.uint8)
        canvas[: shown.shape[0], : shown.shape[1]] = shown
        label = f"{photo.stem[:18]} {','.join(result.flags) or 'ok'}"
        cv2.putText(
            canvas, label[:48], (4, tile + 26), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
        tiles.append(canvas)
    while len(tiles) % 4:
        tiles.append(np.full_like(tiles[0], 255))
    sheet = np.vstack([np.hstack(tiles[i : i + 4]) for i in range(0, len(tiles), 4)])
    path = out / "real_cutouts.png"
    cv2.imwrite(str(path), sheet[..., ::-1])
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--backends", default="classical")
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="long sides, px")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_segmentation")
    parser.add_argument("--rembg-model", default="u2net")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # images per second per core
    args.out.mkdir(parents=True, exist_ok=True)
    specs = sample_specs(args.n, args.seed, sizes=tuple(int(s) for s in args.sizes.split(",")))
    summaries = []
    for backend in args.backends.split(","):
        options = {"model": args.rembg_model} if backend == "rembg" else {}
        try:
            segmenter = get_segmenter(backend, **options)
        except ValueError as error:
            print(f"\nbackend {backend}: skipped ({error})")
            continue
        summary = print_table(backend, measure(backend, segmenter, specs))
        summary["images_per_second_per_core_1024"] = speed_at(segmenter, 1024)
        print(f"speed at 1024 px: {summary['images_per_second_per_core_1024']:.1f} images/s per core")
        sheet = real_photo_sheet(segmenter, args.out)
        if sheet:
            print(f"real-photo cutouts: {sheet}")
        summaries.append(summary)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
