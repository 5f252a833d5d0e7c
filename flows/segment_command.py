"""`onmodel segment IMAGE_OR_DIR... --out DIR [--backend NAME]`: check a supplier's photos before a run."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipelines.image_io import load_image, write_bytes_atomic
from pipelines.segmentation import BACKENDS, Segmenter, get_segmenter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
REPORT_NAME = "segment.jsonl"


def add_parser(subparsers: Any) -> None:
    """Register the `segment` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "segment",
        help="cut garments out of photos and flag doubtful cutouts (no rendering)",
        description=(
            "Writes <stem>.cutout.png (RGBA), <stem>.mask.png and one JSON line per image in segment.jsonl "
            "(quality flags, mask bounding box), so you can check a supplier's photos before a run."
        ),
        epilog="example:\n  onmodel segment supplier_photos/ --out cutouts/ --backend rembg --model isnet-general-use",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_DIR", help="image files or folders")
    parser.add_argument("--out", required=True, type=Path, help="folder for cutouts, masks and segment.jsonl")
    parser.add_argument("--backend", default="classical", choices=BACKENDS, help="segmentation backend")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (rembg only)")
    parser.add_argument("--model", default=None, help="rembg model name, e.g. u2net, isnet-general-use")
    parser.add_argument("--model-path", default=None, type=Path, help="explicit rembg .onnx file")
    parser.add_argument("--alpha-matting", action="store_true", help="soft edges for fur / knit (slower)")
    parser.add_argument("--max-pixels", default=40_000_000, type=int, help="refuse larger images")
    parser.set_defaults(func=run)


def collect_images(inputs: list[Path]) -> list[Path]:
    """Files as given plus the images directly inside given folders, sorted, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found.extend(
                sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        else:
            found.append(item)  # a missing file is reported per image, not by crashing the run
    return list(dict.fromkeys(found))


def _segmenter_options(args: argparse.Namespace) -> dict[str, Any]:
    """Backend options from the command line (only those the backend understands)."""
    options: dict[str, Any] = {}
    if args.backend == "rembg":
        if args.model:
            options["model"] = args.model
        if args.model_path:
            options["model_path"] = args.model_path
    if args.alpha_matting and args.backend in ("classical", "rembg"):
        options["alpha_matting"] = True
    return options


def _png(image: np.ndarray) -> bytes:
    """Encode RGB(A) or grey uint8 as PNG (fast compression)."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise ValueError("PNG encoding failed")
    return encoded.tobytes()


def _prepare(image: np.ndarray, backend: str) -> np.ndarray:
    """RGBA photos go to the photo backends flattened on white; the 'alpha' backend gets them as they are."""
    if backend == "alpha" or image.shape[2] == 3:
        return image
    alpha = image[..., 3:4].astype(np.float32) / 255.0
    flat = image[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.clip(flat + 0.5, 0, 255).astype(np.uint8)


def _unique_stem(path: Path, used: set[str]) -> str:
    """The file stem, suffixed when two inputs share it (shirt.jpg and shirt.png)."""
    stem, n = path.stem, 2
    while stem in used:
        stem, n = f"{path.stem}-{n}", n + 1
    used.add(stem)
    return stem


def segment_one(
    path: Path, stem: str, segmenter: Segmenter, backend: str, out: Path, max_pixels: int
) -> dict:
    """Segment one file and write its outputs; returns its report row (error set instead of raising)."""
    row: dict[str, Any] = {"file": str(path), "backend": backend, "flags": [], "bbox": None}
    row.update({"area_fraction": None, "seconds": None, "error": None})
    started = time.perf_counter()
    try:
        image = _prepare(load_image(path, max_pixels=max_pixels), backend)
        result = segmenter(image)
    except ValueError as error:  # ImageLoadError included: bad input is reported, never fatal
        row["error"] = str(error)
        return row
    write_bytes_atomic(out / f"{stem}.cutout.png", _png(result.cutout))
    write_bytes_atomic(out / f"{stem}.mask.png", _png(result.mask))
    row.update(
        flags=list(result.flags),
        bbox=list(result.bbox),
        area_fraction=round(float(result.details.get("area_fraction", (result.mask > 0).mean())), 4),
        seconds=round(time.perf_counter() - started, 3),
    )
    return row


def run(args: argparse.Namespace) -> int:
    """Segment every image; exit 0, or 1 when any image could not be loaded or cut (flags are not failures)."""
    # 1. Inputs and the output folder.
    paths = collect_images(list(args.inputs))
    if not paths:
        print("no images found in the given paths")
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # 2. One segmenter for the whole run (a model session loads once).
    try:
        segmenter = get_segmenter(args.backend, device=args.device, **_segmenter_options(args))
    except ValueError as error:
        print(f"cannot start the {args.backend!r} backend: {error}")
        return 1
    # 3. Each image; the report is rewritten atomically after each so an interrupted run keeps its lines.
    rows: list[dict] = []
    used: set[str] = set()
    for path in paths:
        row = segment_one(path, _unique_stem(path, used), segmenter, args.backend, out, args.max_pixels)
        rows.append(row)
        report = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_bytes_atomic(out / REPORT_NAME, report.encode("utf-8"))
        status = f"ERROR {row['error']}" if row["error"] else (", ".join(row["flags"]) or "ok")
        print(f"{path.name}: {status}")
    failed = sum(1 for r in rows if r["error"])
    flagged = sum(1 for r in rows if r["flags"])
    print(f"{len(rows)} images, {flagged} flagged, {failed} failed; report: {out / REPORT_NAME}")
    return 1 if failed else 0
