"""Micro-benchmark: the per-product and per-job CPU steps on one core, ms per call.

Times image decoding (PNG, JPEG, the RGBA cutout), pose rendering, garment placement, masks and the PNG
writer on a generated 1000x1334 flat-lay (the size issue 2's 60 ms budget is set at) placed on the demo
profile's 512x768 canvas. OpenCV runs on one thread. Save a run with --save and compare a later one with
--baseline to print before/after columns. Timings on a shared machine are noisy: the median of --repeat calls
is reported. Usage: python bench/prep_stages.py [--repeat 30] [--save before.json] [--baseline before.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.image_io import encode_jpeg, encode_png, load_image_bytes  # noqa: E402
from pipelines.masks import build_masks  # noqa: E402
from pipelines.placement import place_garment  # noqa: E402
from pipelines.poses import load_pose_library, render_openpose  # noqa: E402
from pipelines.testing.flatlays import FlatlaySpec, make_flatlay  # noqa: E402

CANVAS = (512, 768)  # configs/demo.yaml
CLASSES = {"tee": "upper_body", "trousers": "lower_body", "dress": "full_body"}


def flatlay_inputs(kind: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(photo RGB, cutout RGBA cropped to the garment like the flow's saved cutout) for one garment kind."""
    spec = dataclasses.replace(FlatlaySpec(group="bench", kind=kind, pattern="stripes", seed=3), width=width)
    spec = dataclasses.replace(spec, height=height, noise_sigma=2.0)
    image, mask = make_flatlay(spec)
    alpha = cv2.GaussianBlur(np.where(mask > 0, 255, 0).astype(np.uint8), (3, 3), 0)  # soft edge
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    cutout = np.dstack([image, alpha])[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return image, np.ascontiguousarray(cutout)


def time_call(function: Callable[[], object], repeat: int) -> float:
    """Median ms of repeat calls after one warm-up call."""
    function()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(samples)


def stages(width: int, height: int) -> dict[str, Callable[[], object]]:
    """Name -> zero-argument call, for every step timed."""
    photo, tee = flatlay_inputs("tee", width, height)
    _, trousers = flatlay_inputs("trousers", width, height)
    poses = load_pose_library()
    front = poses["front"].keypoints_px(*CANVAS)
    turned = poses["three_quarter_left"].keypoints_px(*CANVAS)
    png = encode_png(photo, compress_level=1)
    jpeg = encode_jpeg(photo, quality=92)
    cutout_png = encode_png(tee, compress_level=1)
    placed = place_garment(tee, "upper_body", front, CANVAS)
    output = np.ascontiguousarray(np.dstack([photo[:768, :512], placed.placed_rgba[..., 3]])[..., :3])
    text = {"onmodel": json.dumps({"key": "x" * 40, "values": list(range(300))})}  # ~1.5 KB, like the flow's
    return {
        f"load_image_bytes png {width}x{height} rgb": lambda: load_image_bytes(png),
        f"load_image_bytes jpeg {width}x{height} q92": lambda: load_image_bytes(jpeg),
        f"load_image_bytes png cutout {tee.shape[1]}x{tee.shape[0]} rgba": lambda: load_image_bytes(
            cutout_png
        ),
        "render_openpose 512x768": lambda: render_openpose(front, *CANVAS),
        "place_garment tee front": lambda: place_garment(tee, "upper_body", front, CANVAS),
        "place_garment tee turned (rotated)": lambda: place_garment(tee, "upper_body", turned, CANVAS),
        "place_garment trousers front": lambda: place_garment(trousers, "lower_body", front, CANVAS),
        "build_masks 512x768": lambda: build_masks(placed.placed_rgba[..., 3], erode_px=2, feather_px=3),
        "encode_png 512x768 rgb level 1 + text": lambda: encode_png(output, text=text, compress_level=1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=1334)
    parser.add_argument("--save", type=Path, help="write {stage: ms} JSON here")
    parser.add_argument("--baseline", type=Path, help="a --save file to print as the 'before' column")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # one core per worker: these are single-core numbers
    baseline = json.loads(args.baseline.read_text()) if args.baseline else {}
    results = {name: time_call(call, args.repeat) for name, call in stages(args.width, args.height).items()}
    width = max(len(name) for name in results)
    header = f"{'stage (ms per call, median, one core)':<{width}}"
    print(f"{header}  {'before':>8}  {'after':>8}" if baseline else f"{header}  {'ms':>8}")
    for name, ms in results.items():
        before = f"{baseline[name]:8.2f}  " if name in baseline else ("       -  " if baseline else "")
        print(f"{name:<{width}}  {before}{ms:8.2f}")
    if args.save:
        args.save.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
