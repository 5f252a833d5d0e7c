"""Diffusion renderer throughput against the compute floor: full-size random SD 1.5 models, no download.

GPU host:  python bench/gpu_render.py --device cuda --sizes 512x768,768x1024 --batches 1,4,8 \
               --dtypes float16,bfloat16 --compile off,max-autotune --out results.json
CPU check: python bench/gpu_render.py --tiny --device cpu --sizes 64x64 --batches 1,2 --dtypes float32 --steps 2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.masks import build_masks
from pipelines.renderers.base import RenderJob
from pipelines.renderers.diffusion import DiffusionRenderer
from pipelines.testing.random_models import save_random_components

# DESIGN.md, counted on the real architectures: TFLOP per image, 25 steps, CFG, one VAE encode + decode.
REFERENCE_TFLOP = {(512, 768): 93.3, (768, 1024): 225.3}
TUNED = {"attention": "sdpa", "channels_last": True, "fuse_qkv": True, "fast_vae_encode": True}
VANILLA = {
    "attention": "sdpa",
    "channels_last": False,
    "fuse_qkv": False,
    "fast_vae_encode": False,
    "compile": "off",
}


def matmul_rate(device: torch.device, tiny: bool) -> float:
    """Measured dense matrix-multiply FLOP/s of this device (bf16 8192^3 on GPU), the floor's denominator."""
    n, dtype = (1024, torch.float32) if tiny or device.type == "cpu" else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, start = (5 if device.type == "cpu" else 50), time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def synthetic_job(index: int, width: int, height: int) -> RenderJob:
    """A placed garment with printed text, its masks and a stick-figure pose map."""
    rgba = np.zeros((height, width, 4), np.uint8)
    top, bottom, left, right = height // 4, height * 3 // 5, width // 3, width * 2 // 3
    rgba[top:bottom, left:right] = (235, 235, 240, 255)
    text = np.ascontiguousarray(rgba[..., :3])
    cv2.putText(
        text,
        "ONMODEL",
        (left + 2, (top + bottom) // 2),
        cv2.FONT_HERSHEY_PLAIN,
        max(width / 512, 0.4),
        (20, 20, 160),
        1,
    )
    rgba[..., :3] = np.where(rgba[..., 3:] > 0, text, 0)
    masks = build_masks(rgba[..., 3], 3, 4)
    control = np.zeros((height, width, 3), np.uint8)
    cv2.line(
        control,
        (width // 2, height // 10),
        (width // 2, height * 9 // 10),
        (255, 0, 85),
        max(width // 100, 1),
    )
    return RenderJob(
        job_id=f"bench-{index}", sku=f"BENCH-{index}", pose="front", variant=index, seed=1000 + index,
        placed_rgba=rgba, garment_mask=masks.garment_mask, inpaint_mask=masks.inpaint_mask, keep_mask=masks.keep_mask,
        control_image=control, keypoints=np.zeros((18, 3), np.float32),
        attributes={"title": "t-shirt", "color": "white", "gender": "female", "category": "tops"},
    )  # fmt: skip


def flops_per_image(renderer: DiffusionRenderer, width: int, height: int) -> float:
    """FLOPs of one image, counted by torch on the real render path (CFG, ControlNet, VAE encode + decode)."""
    with FlopCounterMode(display=False) as counter:
        renderer([synthetic_job(0, width, height)])
    return float(counter.get_total_flops())


def time_config(
    renderer: DiffusionRenderer, width: int, height: int, batch: int, iters: int, device: torch.device
) -> float:
    """Seconds per image over `iters` timed batches after two warm-up batches (compile happens there)."""
    jobs = [synthetic_job(i, width, height) for i in range(batch)]
    for _ in range(2):
        renderer(jobs)
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        renderer(jobs)
    _sync(device)
    return (time.perf_counter() - start) / (iters * batch)


def main(argv: list[str] | None = None) -> int:
    """Measure every configuration, print the table, write JSON."""
    args = _parser().parse_args(argv)
    device = torch.device(args.device)
    # 1. The floor's denominator: this device's measured matmul rate.
    rate = matmul_rate(device, args.tiny)
    print(f"device {device} ({_device_name(device)}): matmul {rate / 1e12:.1f} TFLOP/s", flush=True)
    # 2. Random-weight components (full SD 1.5 architectures unless --tiny), written once.
    workdir = Path(args.models_dir or tempfile.mkdtemp(prefix="onmodel-bench-"))
    size = "tiny" if args.tiny else "full"
    paths = save_random_components(workdir, "sd15", size) if not (workdir / f"sd15-{size}-inpaint").is_dir() else {
        "inpaint": workdir / f"sd15-{size}-inpaint", "controlnet": workdir / f"sd15-{size}-controlnet",
    }  # fmt: skip
    models = {"inpaint": {"id": str(paths["inpaint"])}, "controlnet_pose": {"id": str(paths["controlnet"])}}
    base = {"family": "sd15", "models": models, "steps": args.steps, "guidance_scale": 6.0, "max_attempts": 1}
    # 3. Vanilla first (batch 1, stock settings), then the tuned grid.
    configs = []
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    dtypes, modes = args.dtypes.split(","), args.compile.split(",")
    for width, height in sizes:
        configs.append(("vanilla", width, height, 1, dtypes[0], {**VANILLA, "dtype": dtypes[0]}))
        for dtype in dtypes:
            for mode in modes:
                for batch in [int(b) for b in args.batches.split(",")]:
                    configs.append(
                        ("tuned", width, height, batch, dtype, {**TUNED, "dtype": dtype, "compile": mode})
                    )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    flop_cache: dict[tuple[int, int], float] = {}
    vanilla: dict[tuple[int, int], float] = {}
    print(
        f"{'levers':8} {'size':>9} {'batch':>5} {'dtype':>8} {'compile':>26} {'img/s':>8} {'GPU-s/img':>9} {'floor%':>7} {'x vanilla':>9}"
    )
    started = time.perf_counter()
    for label, width, height, batch, dtype, levers in configs:
        # A lent GPU has minutes: configurations that would start past the budget are listed as skipped (the
        # first always runs: the vanilla baseline every speed-up is against).
        if rows and args.budget_s and time.perf_counter() - started > args.budget_s:
            skipped.append({"levers": label, "width": width, "height": height, "batch": batch, "dtype": dtype,
                            "compile": levers.get("compile", "off")})  # fmt: skip
            print(f"skipped (past --budget-s {args.budget_s:.0f}): {label} {width}x{height} batch {batch} {dtype} "
                  f"compile {levers.get('compile', 'off')}", flush=True)  # fmt: skip
            continue
        renderer = DiffusionRenderer({**base, **levers}, str(device))
        if (width, height) not in flop_cache:
            flop_cache[(width, height)] = flops_per_image(renderer, width, height)
        seconds = time_config(renderer, width, height, batch, args.iters, device)
        if label == "vanilla":
            vanilla[(width, height)] = seconds
        flops = flop_cache[(width, height)]
        row = {
            "levers": label, "width": width, "height": height, "batch": batch, "dtype": dtype,
            "compile": levers.get("compile", "off"), "steps": args.steps, "images_per_s": 1.0 / seconds,
            "gpu_s_per_image": seconds, "tflop_per_image": flops / 1e12,
            "floor_fraction": flops / rate / seconds, "speedup_vs_vanilla": vanilla[(width, height)] / seconds,
            "options": levers,
        }  # fmt: skip
        rows.append(row)
        print(
            f"{label:8} {width:>4}x{height:<4} {batch:>5} {dtype:>8} {row['compile']:>26} {row['images_per_s']:>8.3f} "
            f"{seconds:>9.3f} {100 * row['floor_fraction']:>6.1f}% {row['speedup_vs_vanilla']:>8.2f}x",
            flush=True,
        )
        del renderer
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if args.out:  # after every row: a command cut off at its limit still leaves what it measured
            _write_report(Path(args.out), device, rate, size, rows, skipped)
    # 4. Everything needed to compare runs later.
    if args.out:
        _write_report(Path(args.out), device, rate, size, rows, skipped)
        print(f"wrote {args.out}")
    return 0


def _write_report(
    path: Path,
    device: torch.device,
    rate: float,
    size: str,
    rows: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
) -> None:
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "device": _device_name(device),
        "torch": torch.__version__, "python": platform.python_version(), "diffusers": _version("diffusers"),
        "matmul_tflops": rate / 1e12, "models": size, "reference_tflop_per_image_25_steps": {f"{w}x{h}": t for (w, h), t in REFERENCE_TFLOP.items()},
        "rows": rows, "skipped": skipped,
    }  # fmt: skip
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2), encoding="utf-8")
    temporary.replace(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="512x768,768x1024", help="WIDTHxHEIGHT list")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--dtypes", default="float16,bfloat16")
    parser.add_argument(
        "--compile", default="off", help="off,default,max-autotune,max-autotune-no-cudagraphs"
    )
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--iters", type=int, default=3, help="timed batches per configuration")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny random models (CPU check of the script itself)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--models-dir", default=None, help="reuse random components written by an earlier run"
    )
    parser.add_argument("--out", default=None, help="results.json path (rewritten after every configuration)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=0,
        help="start no configuration after this many seconds (0: no limit)",
    )
    return parser


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    return (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU {platform.processor() or platform.machine()}"
    )


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    sys.exit(main())
