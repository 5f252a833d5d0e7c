"""Benchmark: garment fit (panels) against rigid placement, on synthetic flat-lays and the real photos.

Prints per pose and overall, before (rigid placement) and after (fit): the floating-fabric share (garment
pixels farther than a looseness margin from a body drawn from the keypoints), each upper arm's share inside
its sleeve (sleeved garments; from the shoulder as far as the fitted sleeve reaches along the arm), the torso
panel's max local stretch, the skirt panel's (skirts and dresses below the hips), the side panels', fallbacks, and ms per placement at 512x768 on one core (OpenCV limited to one
thread; the median CPU time of repeats). Synthetic garments also get their landmark errors (% of garment height). The
real photos in ../shared/data/garments are segmented with the classical backend; --sheet writes a contact
sheet of them in every pose suiting their class (draft renderer, rigid above, fit below). Usage:
    python bench/fit.py --n 24 --seed 11 --sheet docs/images/fit_contact_sheet.jpg --json /tmp/fit.json
    python bench/fit.py --timing-only 6    # real photos only: min of 6 calls per placement
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog.categories import match_category  # noqa: E402
from pipelines.fit import fit_garment  # noqa: E402
from pipelines.fit.body import arm_in_sleeve, floating_share  # noqa: E402
from pipelines.image_io import encode_jpeg, load_image, write_bytes_atomic  # noqa: E402
from pipelines.landmarks import find_landmarks  # noqa: E402
from pipelines.placement import place_garment  # noqa: E402
from pipelines.poses import load_pose_library  # noqa: E402
from pipelines.render_inputs import JobSpec, PlacementSettings, build_render_jobs, kind_hint_for  # noqa: E402
from pipelines.renderers.draft import DraftRenderer  # noqa: E402
from pipelines.segmentation import get_segmenter  # noqa: E402
from pipelines.testing.flatlays import (  # noqa: E402
    GARMENT_CLASS_OF_KIND,
    flatlay_landmarks,
    make_flatlay,
    sample_specs,
)

REAL_PHOTOS = ROOT / ".." / "shared" / "data" / "garments"
CANVAS = (512, 768)
REPEATS = 5
ROUND3_KINDS = ("cardigan", "halter", "one_shoulder")  # drawn since round 3 (the round-2 set: without them)


def _timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """(result, median CPU seconds of this thread over REPEATS calls).

    CPU time, not wall time: the machine is shared, and a busy neighbour would otherwise double the figure.
    """
    times, result = [], None
    for _ in range(REPEATS):
        started = time.thread_time()
        result = function(*args, **kwargs)
        times.append(time.thread_time() - started)
    return result, float(np.median(times))


def measure_one(cutout: np.ndarray, garment_class: str, pose: Any, hint: str | None) -> dict[str, Any]:
    """Before/after figures of one garment in one pose."""
    keypoints = pose.keypoints_px(*CANVAS)
    rigid, rigid_s = _timed(place_garment, cutout, garment_class, keypoints, CANVAS)
    fitted, fit_s = _timed(fit_garment, cutout, garment_class, keypoints, CANVAS, kind_hint=hint)
    measured = fit_garment(cutout, garment_class, keypoints, CANVAS, kind_hint=hint, measure=True)
    row: dict[str, Any] = {
        "pose": pose.name,
        "fallback": fitted.fell_back,
        "reason": fitted.params.get("fallback_reason", ""),
        "adapted": len(fitted.params.get("adaptations", [])),
        "float_before": floating_share(rigid.placed_rgba[..., 3], keypoints),
        "float_after": floating_share(fitted.placed_rgba[..., 3], fitted.keypoints),
        "stretch_after": measured.torso_stretch,
        "skirt_stretch": measured.skirt_stretch if measured.params.get("skirt") else None,
        "side_stretch": measured.side_stretch if (measured.params.get("skirt") or {}).get("middle") else None,
        "ms_before": rigid_s * 1000.0,
        "ms_after": fit_s * 1000.0,
        "arm_before": [],
        "arm_after": [],
    }
    for side in "rl":
        reach = fitted.sleeve_reach_px.get(f"{side}_sleeve")
        if reach is None:
            continue
        before = arm_in_sleeve(rigid.placed_rgba[..., 3], keypoints, side, reach)
        after = arm_in_sleeve(fitted.placed_rgba[..., 3], fitted.keypoints, side, reach)
        if before is not None and after is not None:
            row["arm_before"].append(before)
            row["arm_after"].append(after)
    return row


def synthetic_rows(n: int, seed: int, poses: dict) -> tuple[list[dict], dict[str, list[float]]]:
    """Rows for n synthetic garments in every pose suiting their class, and landmark errors by kind."""
    rows, errors = [], defaultdict(list)
    specs = [replace(spec, width=576, height=768) for spec in sample_specs(n, seed, sizes=(768,))]
    # Sleeveless tops with shoulder seams (sweater vests) too: one per tank drawn; and the round-3 kinds: a
    # cardigan with merged sleeves per shirt, a halter and a one-shoulder dress per dress (upright: an
    # asymmetric garment is taken as shot upright).
    extra = [replace(spec, kind="vest", straps=False) for spec in specs if spec.kind == "tank"]
    extra += [replace(spec, kind="cardigan") for spec in specs if spec.kind == "shirt"]
    extra += [replace(spec, kind="halter", straps=True) for spec in specs if spec.kind == "dress"]
    extra += [replace(spec, kind="one_shoulder", rotation_deg=0.0) for spec in specs if spec.kind == "dress"]
    specs += extra
    for spec in specs:
        rgb, mask = make_flatlay(spec)
        cutout = np.dstack([rgb, mask])
        garment_class = GARMENT_CLASS_OF_KIND[spec.kind]
        found = find_landmarks(mask, garment_class)
        height = float(np.ptp(np.flatnonzero(mask.any(axis=1))))
        for name, (x, y) in flatlay_landmarks(spec).items():
            if name in found.points:
                errors[spec.kind].append(
                    math.hypot(found.points[name].x - x, found.points[name].y - y) / height
                )
        for pose in poses.values():
            if garment_class in pose.suits:
                rows.append(
                    {"garment": f"{spec.kind}:{spec.group}", "kind": spec.kind}
                    | measure_one(cutout, garment_class, pose, None)
                )
    return rows, errors


def real_products() -> list[dict[str, Any]]:
    """The shared photos as cutouts with their class and kind hint; [] when the folder is absent."""
    table = REAL_PHOTOS / "products.csv"
    if not table.exists():
        return []
    segmenter = get_segmenter("classical")
    products = []
    with table.open(encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            image = load_image(REAL_PHOTOS / record["image"])
            cutout = image if image.shape[2] == 4 else np.dstack([image, segmenter(image).mask])
            category = match_category(record["category"])
            garment_class = category.garment_class.value if category else "upper_body"
            products.append(
                {
                    "sku": record["sku"],
                    "category": record["category"],
                    "cutout": cutout,
                    "class": garment_class,
                    "hint": kind_hint_for(record["category"], garment_class),
                }
            )
    return products


def summarise(rows: list[dict], label: str) -> dict[str, Any]:
    """Print per pose and overall; return the overall figures."""
    by_pose: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_pose[row["pose"]].append(row)
    print(f"\n{label}: {len(rows)} placements")
    header = f"{'pose':20s} {'n':>3s} {'float before':>13s} {'after':>6s} {'p90 b':>6s} {'p90 a':>6s} {'arm b':>6s} {'arm a':>6s} {'arm a min':>9s} {'stretch':>7s} {'skirt':>6s} {'sides':>6s} {'fallb':>5s} {'ms b':>5s} {'ms a':>5s}"
    print(header)

    def line(name: str, group: list[dict]) -> dict[str, Any]:
        fb = [r["float_before"] for r in group]
        fa = [r["float_after"] for r in group]
        ab = [v for r in group for v in r["arm_before"]]
        aa = [v for r in group for v in r["arm_after"]]
        fitted = [r["stretch_after"] for r in group if not r["fallback"]]
        skirts = [r["skirt_stretch"] for r in group if r.get("skirt_stretch") is not None]
        sides = [r["side_stretch"] for r in group if r.get("side_stretch") is not None]
        figures = {
            "n": len(group),
            "float_before_mean": float(np.mean(fb)),
            "float_after_mean": float(np.mean(fa)),
            "float_before_p90": float(np.percentile(fb, 90)),
            "float_after_p90": float(np.percentile(fa, 90)),
            "arm_before_mean": float(np.mean(ab)) if ab else None,
            "arm_after_mean": float(np.mean(aa)) if aa else None,
            "arm_after_min": float(np.min(aa)) if aa else None,
            "stretch_after_max": float(np.max(fitted)) if fitted else None,
            "skirt_stretch_max": float(np.max(skirts)) if skirts else None,
            "side_stretch_max": float(np.max(sides)) if sides else None,
            "fallbacks": sum(r["fallback"] for r in group),
            "adapted": sum(r["adapted"] for r in group),
            "ms_before_median": float(np.median([r["ms_before"] for r in group])),
            "ms_after_median": float(np.median([r["ms_after"] for r in group])),
            "ms_after_p90": float(np.percentile([r["ms_after"] for r in group], 90)),
        }

        def fmt(v: float | None, width: int = 6, digits: int = 3) -> str:
            return f"{'-':>{width}s}" if v is None else f"{v:{width}.{digits}f}"

        print(
            f"{name:20s} {len(group):3d} {fmt(figures['float_before_mean'], 13)} {fmt(figures['float_after_mean'])}"
            f" {fmt(figures['float_before_p90'])} {fmt(figures['float_after_p90'])} {fmt(figures['arm_before_mean'])}"
            f" {fmt(figures['arm_after_mean'])} {fmt(figures['arm_after_min'], 9)} {fmt(figures['stretch_after_max'], 7)} {fmt(figures['skirt_stretch_max'])} {fmt(figures['side_stretch_max'])}"
            f" {figures['fallbacks']:5d} {figures['ms_before_median']:5.1f} {figures['ms_after_median']:5.1f}"
        )
        return figures

    out = {pose: line(pose, group) for pose, group in sorted(by_pose.items())}
    out["overall"] = line("overall", rows)
    return out


def contact_sheet(products: list[dict[str, Any]], poses: dict, path: Path) -> None:
    """Draft renders of every real product in every pose suiting its class: rigid row, then fit row."""
    renderer = DraftRenderer()
    tile_w, tile_h = 192, 288
    # Only poses that suit some product (the photos hold no lower-body garment: no empty columns).
    names = [name for name in poses if any(p["class"] in poses[name].suits for p in products)]
    rows = []
    for product in products:
        for fit in (False, True):
            row = np.full((tile_h, tile_w * len(names), 3), 255, np.uint8)
            usable = [n for n in names if product["class"] in poses[n].suits]
            jobs = build_render_jobs(
                sku=product["sku"],
                cutout_rgba=product["cutout"],
                garment_class=product["class"],
                specs=[JobSpec(n, n, 0, 1) for n in usable],
                poses=poses,
                settings=PlacementSettings(CANVAS, 2, 3, fit=fit),
                attributes={"category": product["category"]},
            )
            images = renderer([job for job, _ in jobs])
            for (job, flags), image in zip(jobs, images, strict=True):
                tile = cv2.resize(image.image, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
                label = f"{product['sku']} {job.pose} {'fit' if fit else 'rigid'}"
                cv2.putText(tile, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
                if "fit_fallback" in flags:
                    cv2.putText(
                        tile,
                        "fit_fallback",
                        (3, 24),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.33,
                        (180, 0, 0),
                        1,
                        cv2.LINE_AA,
                    )
                if "pose_adapted" in flags:
                    cv2.putText(
                        tile,
                        "pose_adapted",
                        (3, 36),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.33,
                        (0, 0, 180),
                        1,
                        cv2.LINE_AA,
                    )
                column = names.index(job.pose)
                row[:, column * tile_w : (column + 1) * tile_w] = tile
            rows.append(row)
    header = np.full((18, tile_w * len(names), 3), 255, np.uint8)
    for i, name in enumerate(names):
        cv2.putText(
            header, name, (i * tile_w + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA
        )
    sheet = np.vstack([header, *rows])
    write_bytes_atomic(path, encode_jpeg(sheet, quality=60))
    print(f"\ncontact sheet: {path} ({sheet.shape[1]} x {sheet.shape[0]})")


def real_timing(poses: dict, calls: int) -> int:
    """Print the median over real placements of each one's min CPU ms over calls, and per product."""
    per_product: dict[str, list[float]] = defaultdict(list)
    for product in real_products():
        for pose in poses.values():
            if product["class"] not in pose.suits:
                continue
            keypoints = pose.keypoints_px(*CANVAS)
            times = []
            for _ in range(calls):
                started = time.thread_time()
                fit_garment(product["cutout"], product["class"], keypoints, CANVAS, kind_hint=product["hint"])
                times.append(time.thread_time() - started)
            per_product[product["sku"]].append(1000.0 * min(times))
    every = [ms for values in per_product.values() for ms in values]
    if not every:
        print(f"no real photos in {REAL_PHOTOS}")
        return 1
    print(
        f"real photos: {len(every)} placements, median of per-placement min over {calls} calls: "
        f"{float(np.median(every)):.1f} ms"
    )
    for sku, values in sorted(per_product.items()):
        print(f"  {sku:14s} {float(np.median(values)):5.1f} ms")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the tables; optionally write the contact sheet and a JSON summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=24, help="synthetic garments (cycling through hard cases)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--sheet", type=Path, default=None, help="write the real photos' contact sheet here")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument(
        "--timing-only",
        type=int,
        default=0,
        metavar="CALLS",
        help="only time the fit on the real photos: the min CPU time of CALLS calls per placement, "
        "median over placements and per product (steadier than 5-call medians on a shared machine)",
    )
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    poses = load_pose_library()
    if args.timing_only:
        return real_timing(poses, args.timing_only)
    summary: dict[str, Any] = {}
    rows, errors = synthetic_rows(args.n, args.seed, poses)
    summary["synthetic"] = summarise(rows, "synthetic flat-lays (before = rigid placement, after = fit)")
    round2 = [r for r in rows if r["kind"] not in ROUND3_KINDS]
    summary["synthetic_round2_set"] = summarise(
        round2, f"synthetic flat-lays without {', '.join(ROUND3_KINDS)}"
    )
    summary["synthetic_by_kind"] = {}
    print("\nsynthetic by kind:")
    for kind in sorted({r["kind"] for r in rows}):
        group = [r for r in rows if r["kind"] == kind]
        figures = {
            "n": len(group),
            "float_before_mean": float(np.mean([r["float_before"] for r in group])),
            "float_after_mean": float(np.mean([r["float_after"] for r in group])),
            "fallbacks": sum(r["fallback"] for r in group),
            "landmark_error_mean": float(np.mean(errors[kind])) if errors[kind] else None,
            "landmark_error_p90": float(np.percentile(errors[kind], 90)) if errors[kind] else None,
        }
        summary["synthetic_by_kind"][kind] = figures
        print(
            f"  {kind:9s} n {figures['n']:3d}  float {figures['float_before_mean']:.3f} -> {figures['float_after_mean']:.3f}"
            f"  fallbacks {figures['fallbacks']:2d}  landmark error mean {100 * (figures['landmark_error_mean'] or 0):.2f} %"
            f" p90 {100 * (figures['landmark_error_p90'] or 0):.2f} %"
        )
    products = real_products()
    if products:
        real = []
        for product in products:
            for pose in poses.values():
                if product["class"] in pose.suits:
                    row = measure_one(product["cutout"], product["class"], pose, product["hint"])
                    real.append({"garment": product["sku"]} | row)
        summary["real"] = summarise(real, f"real photos ({REAL_PHOTOS.resolve()})")
        print("\nreal photos by product (floating mean over its poses, before -> after; fallback reasons):")
        summary["real_by_product"] = {}
        for sku in sorted({r["garment"] for r in real}):
            group = [r for r in real if r["garment"] == sku]
            reasons = {r["reason"] for r in group}
            before = float(np.mean([r["float_before"] for r in group]))
            after = float(np.mean([r["float_after"] for r in group]))
            summary["real_by_product"][sku] = {"float_before_mean": before, "float_after_mean": after}
            print(f"  {sku:14s} {before:.3f} -> {after:.3f}  {'; '.join(sorted(reasons)) or 'fitted'}")
        if args.sheet:
            contact_sheet(products, poses, args.sheet)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
