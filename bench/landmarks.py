"""Benchmark: garment landmark error and speed on synthetic flat-lays with exact landmarks, plus real photos.

Prints per garment kind the mean / p90 landmark error (% of garment height, the mask's row extent), each
landmark group's, and ms per call at 512x768 on one core (OpenCV limited to one thread). The real photos in
../shared/data/garments (segmented with the classical backend; no ground truth) get their landmarks'
confidences printed and an overlay PNG each in --out. Usage:
    python bench/landmarks.py --n 120 --seed 2024 --out DIR
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog.categories import match_category  # noqa: E402
from pipelines.image_io import load_image  # noqa: E402
from pipelines.landmarks import GarmentLandmarks, find_landmarks  # noqa: E402
from pipelines.segmentation import get_segmenter  # noqa: E402
from pipelines.testing.flatlays import (  # noqa: E402
    GARMENT_CLASS_OF_KIND,
    GARMENT_KINDS,
    flatlay_landmarks,
    make_flatlay,
    sample_specs,
)

REAL_PHOTOS = ROOT / ".." / "shared" / "data" / "garments"
HINT_OF_CATEGORY = {"t-shirt": "tee", "tee": "tee", "shirt": "shirt", "vest": "tank", "tank": "tank"}
REPEATS = 5  # timed calls per mask; the median is kept (another process on the machine adds outliers)


def group_of(name: str) -> str:
    """The landmark group: r_shoulder and l_shoulder are both 'shoulder'."""
    return name[2:] if name[:2] in ("r_", "l_") else name


def measure(n: int, seed: int) -> dict[str, dict]:
    """Per kind: errors (fraction of height) by landmark group, seconds per call, unusable and missing."""
    rows: dict[str, dict] = defaultdict(
        lambda: {"errors": defaultdict(list), "seconds": [], "unusable": 0, "missing": 0}
    )
    specs = [replace(spec, width=512, height=768) for spec in sample_specs(n, seed, sizes=(768,))]
    for spec in specs:
        _, mask = make_flatlay(spec)
        truth = flatlay_landmarks(spec)
        garment_class = GARMENT_CLASS_OF_KIND[spec.kind]
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            found = find_landmarks(mask, garment_class)
            times.append(time.perf_counter() - started)
        row = rows[spec.kind]
        row["seconds"].append(float(np.median(times)))
        row["unusable"] += not found.usable
        height = float(np.ptp(np.flatnonzero(mask.any(axis=1))))
        for name, (x, y) in truth.items():
            point = found.points.get(name)
            if point is None:
                row["missing"] += 1
                continue
            row["errors"][group_of(name)].append(math.hypot(point.x - x, point.y - y) / height)
    return rows


def print_table(rows: dict[str, dict]) -> dict:
    """Print per kind and per landmark group; return the summary."""
    print("\nsynthetic flat-lays, 512x768 masks: landmark error in % of garment height; ms per call, 1 core")
    columns = ("kind", "n", "mean", "p90", "max", "ms", "ms p90", "unusable", "missing")
    print("{:9s} {:>4s} {:>6s} {:>6s} {:>6s} {:>6s} {:>7s} {:>9s} {:>8s}".format(*columns))
    summary: dict = {}
    for kind in GARMENT_KINDS:
        if kind not in rows:
            continue
        row = rows[kind]
        errors = np.array([e for group in row["errors"].values() for e in group]) * 100
        ms = np.array(row["seconds"]) * 1000
        mean, p90, worst = errors.mean(), np.percentile(errors, 90), errors.max()
        print(
            f"{kind:9s} {len(ms):4d} {mean:6.2f} {p90:6.2f} {worst:6.2f} {ms.mean():6.2f} "
            f"{np.percentile(ms, 90):7.2f} {row['unusable']:9d} {row['missing']:8d}"
        )
        groups = {}
        for group, values in sorted(row["errors"].items()):
            v = np.array(values) * 100
            groups[group] = {
                "mean": float(v.mean()),
                "p90": float(np.percentile(v, 90)),
                "max": float(v.max()),
            }
            print(
                f"    {group:11s} mean {v.mean():5.2f}  p90 {np.percentile(v, 90):5.2f}  max {v.max():6.2f}"
            )
        summary[kind] = {
            "n": int(len(ms)),
            "mean": float(mean),
            "p90": float(p90),
            "max": float(worst),
            "ms_mean": float(ms.mean()),
            "ms_p90": float(np.percentile(ms, 90)),
            "unusable": int(row["unusable"]),
            "missing": int(row["missing"]),
            "groups": groups,
        }
    return summary


def draw(image: np.ndarray, mask: np.ndarray, found: GarmentLandmarks, label: str) -> np.ndarray:
    """BGR overlay: the photo dimmed outside the mask, landmarks (red r_, blue l_, green centre), sleeves."""
    shown = image[..., :3].astype(np.float32)
    shown[mask == 0] = shown[mask == 0] * 0.35 + 255 * 0.65
    shown = np.ascontiguousarray(shown.astype(np.uint8)[..., ::-1])
    scale = max(1.0, max(image.shape[:2]) / 1000.0)
    radius, thick = round(6 * scale), max(1, round(2 * scale))
    for axis in found.sleeves.values():
        start = tuple(round(v) for v in axis.root)
        end = tuple(round(v) for v in axis.end)
        cv2.line(shown, start, end, (200, 0, 200), thick, cv2.LINE_AA)
    for name, point in found.points.items():
        colour = (
            (0, 0, 230) if name.startswith("r_") else (230, 80, 0) if name.startswith("l_") else (0, 160, 0)
        )
        centre = (round(point.x), round(point.y))
        cv2.circle(shown, centre, radius, colour, -1, cv2.LINE_AA)
        text = f"{name} {point.confidence:.2f}"
        cv2.putText(
            shown, text, (centre[0] + radius + 2, centre[1]), 0, 0.45 * scale, colour, thick, cv2.LINE_AA
        )
    cv2.putText(shown, label, (10, round(30 * scale)), 0, 0.6 * scale, (0, 0, 0), thick, cv2.LINE_AA)
    return shown


def real_photos(out: Path) -> list[dict]:
    """Landmarks of the real photos (classical segmentation), printed and drawn; [] without photos."""
    table = REAL_PHOTOS / "products.csv"
    if not table.is_file():
        return []
    segmenter = get_segmenter("classical")
    results = []
    print(f"\nreal photos ({REAL_PHOTOS.resolve()}), classical segmentation; overlays in {out}")
    with table.open(newline="") as handle:
        for record in csv.DictReader(handle):
            match = match_category(record["category"])
            if match is None:
                continue
            garment_class = str(match.garment_class)
            hint = HINT_OF_CATEGORY.get(match.word)
            image = load_image(REAL_PHOTOS / record["image"])
            mask = get_mask(segmenter, image)
            started = time.perf_counter()
            found = find_landmarks(mask, garment_class, hint)
            ms = (time.perf_counter() - started) * 1000
            status = "usable" if found.usable else f"UNUSABLE: {found.reason}"
            print(
                f"{record['sku']:13s} {match.word:9s} {garment_class:10s} hint={hint or '-':5s} "
                f"{found.silhouette or '-':17s} {ms:5.1f} ms  {status}"
            )
            confidences = "  ".join(f"{name} {p.confidence:.2f}" for name, p in found.points.items())
            print(f"    {confidences}")
            label = f"{record['sku']} {found.silhouette} {'usable' if found.usable else 'fallback'}"
            cv2.imwrite(str(out / f"{record['sku']}_landmarks.png"), draw(image, mask, found, label))
            results.append(
                {
                    "sku": record["sku"],
                    "usable": found.usable,
                    "reason": found.reason,
                    "silhouette": found.silhouette,
                    "confidence": {name: p.confidence for name, p in found.points.items()},
                }
            )
    return results


def get_mask(segmenter, image: np.ndarray) -> np.ndarray:
    """The garment mask: the photo's own alpha when it has one, else the segmenter's."""
    if image.shape[2] == 4:
        return np.where(image[..., 3] > 127, 255, 0).astype(np.uint8)
    return segmenter(image).mask


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="synthetic garments")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=None, help="overlay folder (default: a new temp folder)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # ms per call on one core
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_landmarks_"))
    out.mkdir(parents=True, exist_ok=True)
    summary = {"synthetic": print_table(measure(args.n, args.seed)), "real": real_photos(out)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nsummary: {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
