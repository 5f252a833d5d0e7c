"""Benchmark of the device pool: every device busy? memory flat? what does Prefect cost at 10k products?

1. CPU cost per image of the real CPU stages (decode, segment, place, masks, finish, encode, write), one thread,
   and the same work on 2 threads vs 2 processes (the evidence for threads in one process).
2. Pool efficiency for 1, 2, 4 and 8 devices: a renderer that holds its simulated device for a fixed time per
   batch (sleep: it measures our orchestration, not a model) and real CPU preparation of generated photos.
   efficiency = throughput / (devices x batch / time per batch); plus each device's utilisation.
3. Peak RSS at 1k and 10k products (a child process each) with the draft renderer on a small canvas.
4. Orchestration share at 10k products: the same chunks through the pool in a plain loop, then through the
   produce_catalog flow against a real `prefect server` on 127.0.0.1 (started here, on a free port).

Usage: python bench/pool.py                      (everything; ~15 min on 2 cores)
       python bench/pool.py --skip-scale --skip-prefect --devices 1,2 --batches-per-device 4
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import cv2  # noqa: E402
import yaml  # noqa: E402

from flows.demo_catalog import write_catalog_csv, write_flatlays  # noqa: E402
from pipelines.production.book import chunk_size  # noqa: E402
from pipelines.renderers.base import RenderedImage, RenderJob  # noqa: E402


class HeldDevice:
    """A stand-in GPU renderer: the device is busy for `batch_s` per batch (sleep frees the GIL, like a CUDA
    wait), and the output is the placed garment itself (no pixels computed on the CPU)."""

    name = "held"

    def __init__(self, device: str, batch_s: float) -> None:
        self.device = device
        self.batch_s = batch_s

    def describe(self) -> dict[str, Any]:
        return {"renderer": "held", "batch_s": self.batch_s}

    def __call__(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]:
        time.sleep(self.batch_s)
        return [RenderedImage(job.job_id, job.placed_rgba[..., :3].copy(), job.seed) for job in jobs]


class BenchModels:
    """One held device per device name, the classical segmenter: as a process's model cache would hold them."""

    def __init__(self, batch_s: float) -> None:
        self.batch_s = batch_s
        self._devices: dict[str, HeldDevice] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._segmenter: Any = None

    def segmenter(self, backend: str, options: Mapping[str, Any], device: str) -> Any:
        from pipelines.segmentation import get_segmenter

        with self._guard:
            if self._segmenter is None:
                self._segmenter = get_segmenter(backend, device="cpu", **options)
            return self._segmenter

    def renderer(
        self, name: str, options: Mapping[str, Any], device: str
    ) -> tuple[HeldDevice, threading.Lock]:
        with self._guard:
            if device not in self._devices:
                self._devices[device] = HeldDevice(device, self.batch_s)
                self._locks[device] = threading.Lock()
            return self._devices[device], self._locks[device]


# Inputs --------------------------------------------------------------------------------------------------


def write_photos(folder: Path, products: int, width: int, height: int, distinct: int) -> Path:
    """`products` CSV rows over `distinct` generated JPEG photos (a 10k catalogue without 10k generations)."""
    photos = write_flatlays(
        folder,
        min(products, distinct),
        seed=11,
        width=width,
        height=height,
        sku_format="BENCH-{:05d}",
        file_format="p{:05d}.jpg",
        jpeg_quality=0,
    )
    rows = [{**photos[i % len(photos)], "sku": f"BENCH-{i:05d}"} for i in range(products)]
    return write_catalog_csv(folder / f"products-{products}.csv", rows)


def write_profile(folder: Path, name: str, **changes: Any) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start(csv_path: Path, profile_path: Path, devices: Sequence[str]) -> Any:
    from flows import caches
    from pipelines.production.profile import load_profile
    from pipelines.production.validate import start_run

    return start_run(
        csv_path,
        load_profile(profile_path),
        device="cpu",
        force=False,
        only=None,
        presets=caches.presets(),
        poses=caches.pose_library(),
    )


def bench_resources(out: Path, models: Any) -> Any:
    from catalog import SQLiteJobStore
    from flows import caches
    from pipelines.production.layout import LocalStorage
    from pipelines.production.stages import Resources

    storage = LocalStorage(out)
    return Resources(
        storage=storage,
        store=SQLiteJobStore(storage.state_db),
        models=models,
        poses=caches.pose_library(),
        presets=caches.presets(),
    )


# 1. CPU cost per image, threads vs processes ---------------------------------------------------------------


def cpu_pass(csv_path: str, profile_path: str, out: str, skus: list[str]) -> int:
    """Prepare, place and finish these products serially (renderer: the held device at 0 s); jobs done."""
    from pipelines.production import stages
    from pipelines.production.stages import BatchItem

    cv2.setNumThreads(1)
    run = start(Path(csv_path), Path(profile_path), ["cpu"])
    res = bench_resources(Path(out), BenchModels(0.0))
    renderer, _lock = res.models.renderer("held", {}, "cpu")
    jobs = 0
    for record in (r for r in run.records if r.sku in set(skus)):
        prepared = stages.prepare_product(record, run.ctx, res)
        placed, _failed = stages.place_jobs([BatchItem(p, prepared) for p in prepared.todo], run.ctx, res)
        for job, image in zip(placed, renderer([p.job for p in placed]), strict=True):
            stages.finish_job(job, image, renderer.describe(), run.ctx, res)
            jobs += 1
    return jobs


def measure_cpu(csv_path: Path, profile_path: Path, work: Path, products: int) -> dict[str, float]:
    run = start(csv_path, profile_path, ["cpu"])
    skus = [r.sku for r in run.records[:products]]
    cpu_pass(str(csv_path), str(profile_path), str(work / "cpu-warm"), skus[:1])  # imports, caches
    started = time.perf_counter()
    jobs = cpu_pass(str(csv_path), str(profile_path), str(work / "cpu-1"), skus)
    serial_s = time.perf_counter() - started
    halves = [skus[0::2], skus[1::2]]
    timings = {}
    for kind, executor in (("threads", ThreadPoolExecutor), ("processes", ProcessPoolExecutor)):
        # Spawned, not forked: forking this threaded process (Prefect, SQLite pools) is not safe.
        options = {"mp_context": multiprocessing.get_context("spawn")} if kind == "processes" else {}
        with executor(max_workers=2, **options) as pool:
            if kind == "processes":  # start the workers (imports) before the clock
                warm = [str(csv_path)] * 2, [str(profile_path)] * 2, [str(work / "w")] * 2, [[], []]
                list(pool.map(cpu_pass, *warm))
            started = time.perf_counter()
            done = pool.map(
                cpu_pass,
                [str(csv_path)] * 2,
                [str(profile_path)] * 2,
                [str(work / f"cpu-{kind}-{i}") for i in range(2)],
                halves,
            )
            assert sum(done) == jobs
            timings[kind] = time.perf_counter() - started
    return {
        "jobs": jobs,
        "cpu_ms_per_image": 1000 * serial_s / jobs,
        "serial_img_s": jobs / serial_s,
        "threads_img_s": jobs / timings["threads"],
        "processes_img_s": jobs / timings["processes"],
    }


# 2. Pool efficiency -----------------------------------------------------------------------------------------


def measure_pool(
    csv_path: Path, profile_path: Path, out: Path, devices: int, batch: int, batch_s: float, batches: int
) -> dict[str, Any]:
    from pipelines.production.pool import DevicePool, pool_settings

    run = start(csv_path, profile_path, ["cpu"])
    jobs_per_product = len(run.ctx.profile.default_poses("upper_body")) * run.ctx.profile.variants
    # Whole rounds only: jobs a multiple of devices x batch (a partial last batch, or one device doing one batch
    # more than the others at the end, would be counted against the pool).
    per_round = devices * batch
    step = per_round * jobs_per_product // math.gcd(per_round, jobs_per_product) // jobs_per_product
    products = -(-devices * batches * batch // jobs_per_product // step) * step
    records = run.records[:products]
    names = [f"cpu:{i}" for i in range(devices)]
    settings = pool_settings(run.ctx.profile, names)
    res = bench_resources(out, BenchModels(batch_s))
    started = time.perf_counter()
    with DevicePool(run.ctx, res, settings) as pool:
        result = pool.run_chunk(records)
    wall = time.perf_counter() - started
    jobs = sum(len(p.jobs) for p in result.products)
    produced = sum(job.state == "produced" for p in result.products for job in p.jobs)
    ideal = devices * batch / batch_s
    usage = [u for u in result.devices]
    return {
        "devices": devices,
        "jobs": jobs,
        "produced": produced,
        "wall_s": wall,
        "img_s": jobs / wall,
        "ideal_img_s": ideal,
        "efficiency": jobs / wall / ideal,
        "utilisation": {u.device: u.busy_s / wall for u in usage},
    }


# 3. Peak RSS at a catalogue size (child process) ---------------------------------------------------------


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM (Linux): getrusage's ru_maxrss would carry the parent's
    high-water mark across fork + exec, so a small child of a big bench would report the bench's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scale_child(csv_path: Path, profile_path: Path, out: Path, chunk: int) -> dict[str, Any]:
    """The plain pool (no Prefect) over the whole catalogue in chunks, the draft renderer; peak RSS."""
    from flows import caches
    from pipelines.production.book import CHUNKS_IN_FLIGHT, RunBook, chunks
    from pipelines.production.fsspec_storage import spool_file
    from pipelines.production.layout import OutputLayout
    from pipelines.production.pool import DevicePool, pool_settings
    from pipelines.production.report import build_report, publish_report
    from pipelines.production.spool import OutcomeSpool

    cv2.setNumThreads(1)
    started = time.perf_counter()
    run = start(csv_path, profile_path, ["cpu"])
    res = caches.resources(str(out))
    spool = OutcomeSpool(spool_file(res.storage, OutputLayout().run_outcomes(run.ctx.run_id)))  # as the flow
    book = RunBook(
        run.records,
        batch_size=8,
        default_poses=run.ctx.profile.default_poses,
        rejects=run.rejects,
        spool=spool,
    )
    settings = pool_settings(run.ctx.profile, ["cpu"])
    rss_mid = 0.0
    # As the flow: CHUNKS_IN_FLIGHT chunks run, one more waits, and a chunk's records are read when it is submitted.
    with (
        DevicePool(run.ctx, res, settings) as pool,
        ThreadPoolExecutor(max_workers=CHUNKS_IN_FLIGHT) as flows,
    ):
        parts = iter(chunks(run.records, chunk))
        running = deque(flows.submit(pool.run_chunk, part) for part in islice(parts, CHUNKS_IN_FLIGHT + 1))
        index = 0
        while running:
            result = running.popleft().result()
            running.extend(flows.submit(pool.run_chunk, part) for part in islice(parts, 1))
            for product in result.products:
                book.product_done(product, result.reject_of(product.sku))
            if index == 1:
                rss_mid = peak_rss_mib()
            index += 1
        usage = pool.usage()
    report = build_report(run, book, str(out), time.perf_counter() - started, devices=usage)
    publish_report(report, res.storage)
    return {
        "products": len(run.records),
        "chunk": chunk,
        "jobs": report.counts["jobs"],
        "failed": report.counts["failed"],
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": peak_rss_mib(),
        "rss_after_two_chunks_mib": rss_mid,
    }


# 4. Orchestration share at 10k products against a real Prefect server -------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_prefect_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError("prefect server exited at start-up")
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("prefect server did not answer within 180 s")


def flow_child(csv_path: Path, profile_path: Path, out: Path) -> dict[str, Any]:
    from flows.produce import run_catalog

    cv2.setNumThreads(1)
    started = time.perf_counter()
    report = run_catalog(str(csv_path), str(profile_path), str(out))
    return {
        "products": report.counts["products"],
        "jobs": report.counts["jobs"],
        "failed": report.counts["failed"],
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": peak_rss_mib(),
    }


def child(
    kind: str, csv_path: Path, profile_path: Path, out: Path, env: Mapping[str, str], chunk: int
) -> Any:
    """Run one measurement in a fresh process (its own peak RSS, no warm caches from the parent)."""
    code = [sys.executable, __file__, "--child", kind, str(csv_path), str(profile_path), str(out), str(chunk)]
    done = subprocess.run(
        code, env={**os.environ, **env}, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="1,2,4,8", help="pool sizes (default 1,2,4,8)")
    parser.add_argument("--batch", type=int, default=8, help="jobs per batch (default 8)")
    parser.add_argument(
        "--batch-s",
        type=float,
        default=2.4,
        help="device time per batch (default 2.4: SD1.5 512x768, 8 images)",
    )
    parser.add_argument("--batches-per-device", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="CPU workers of the pool (default 2)")
    parser.add_argument("--width", type=int, default=1000, help="photo width (default 1000)")
    parser.add_argument("--height", type=int, default=1334)
    parser.add_argument("--cpu-products", type=int, default=8, help="products for the CPU cost measurement")
    parser.add_argument("--scale", default="1000,10000", help="catalogue sizes for peak RSS")
    parser.add_argument("--prefect-products", type=int, default=10000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-prefect", action="store_true")
    parser.add_argument("--out", type=Path, help="keep the work folder here (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    parser.add_argument(
        "--child", nargs=5, metavar=("KIND", "CSV", "PROFILE", "OUT", "CHUNK"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.child:
        kind, csv_path, profile_path, out, chunk = args.child
        if kind == "scale":
            print(json.dumps(scale_child(Path(csv_path), Path(profile_path), Path(out), int(chunk))))
        else:
            print(json.dumps(flow_child(Path(csv_path), Path(profile_path), Path(out))))
        return 0

    work = args.out or Path(tempfile.mkdtemp(prefix="onmodel-pool-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["ONMODEL_LOCK_DIR"] = str(work / "locks")
    cv2.setNumThreads(1)
    numbers: dict[str, Any] = {"cores": os.cpu_count()}
    sizes = [int(n) for n in args.devices.split(",")]
    max_products = -(-max(sizes) * args.batches_per_device * args.batch // 6) + 4 * max(sizes)
    t = time.perf_counter()
    photos = write_photos(
        work / "photos", max(max_products, args.cpu_products), args.width, args.height, 10**9
    )
    print(f"generated {max(max_products, args.cpu_products)} photos at {args.width}x{args.height} "
          f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
    profile = write_profile(
        work,
        "pool",
        renderer={"name": "draft", "batch_size": args.batch, "options": {}},
        run={"max_workers": args.workers, "retry_delay_s": 0.1, "batch_timeout_s": 120},
    )

    # 1. CPU cost per image; threads vs processes.
    cpu = measure_cpu(photos, profile, work, args.cpu_products)
    numbers["cpu"] = cpu
    feedable = cpu["threads_img_s"]  # what the pool's CPU workers reached on this machine, measured
    print(
        f"CPU stages: {cpu['cpu_ms_per_image']:.1f} ms per image on one core "
        f"(decode + segment per product, place + masks + finish + encode + write per job)"
    )
    print(
        f"  2 threads {cpu['threads_img_s']:.1f} img/s vs 2 processes {cpu['processes_img_s']:.1f} img/s "
        f"(1 thread {cpu['serial_img_s']:.1f} img/s)"
    )
    print(f"  the CPU feeds ~{feedable:.1f} img/s here (at best {os.cpu_count()} cores / "
          f"{cpu['cpu_ms_per_image']:.1f} ms = {(os.cpu_count() or 1) * 1000 / cpu['cpu_ms_per_image']:.1f} img/s); "
          f"one device needs {args.batch / args.batch_s:.2f} img/s")  # fmt: skip

    # 2. Efficiency per pool size.
    numbers["pool"] = []
    for devices in sizes:
        result = measure_pool(
            photos,
            profile,
            work / f"pool-{devices}",
            devices,
            args.batch,
            args.batch_s,
            args.batches_per_device,
        )
        numbers["pool"].append(result)
        utilisation = " ".join(f"{name} {100 * value:.1f}%" for name, value in result["utilisation"].items())
        limit = (
            ""
            if devices * args.batch / args.batch_s <= feedable
            else "  (CPU-bound: beyond what the cores feed)"
        )
        print(
            f"devices {devices}: {result['jobs']} jobs in {result['wall_s']:.1f} s, {result['img_s']:.2f} img/s of "
            f"ideal {result['ideal_img_s']:.2f}: efficiency {100 * result['efficiency']:.1f}%  "
            f"utilisation {utilisation}{limit}"
        )

    # 3. Peak RSS at catalogue sizes: the draft renderer on a small canvas, 1 job per product.
    small = write_profile(
        work,
        "scale",
        canvas={"width": 128, "height": 192},
        variants=1,
        poses={"upper_body": ["front"], "lower_body": ["front"], "full_body": ["front"]},
        renderer={"name": "draft", "batch_size": 8, "options": {}},
        run={"max_workers": args.workers, "chunk_size": "auto"},
    )
    if not args.skip_scale:
        numbers["scale"] = []
        for products in (int(n) for n in args.scale.split(",")):
            csv_path = write_photos(work / "small", products, 150, 200, 40)
            measured = child(
                "scale", csv_path, small, work / f"scale-{products}", {}, min(256, max(4, products // 8))
            )
            numbers["scale"].append(measured)
            print(
                f"products {products}: peak RSS {measured['peak_rss_mib']:.0f} MiB "
                f"(after two chunks {measured['rss_after_two_chunks_mib']:.0f} MiB), "
                f"{measured['jobs']} jobs in {measured['seconds']:.0f} s, failed {measured['failed']}"
            )

    # 4. Orchestration share against a real Prefect server.
    if not args.skip_prefect:
        products = args.prefect_products
        csv_path = write_photos(work / "small", products, 150, 200, 40)
        chunk = chunk_size(products, 1)  # what the flow's adaptive chunking picks for one device
        done = [m for m in numbers.get("scale", []) if m["products"] == products and m["chunk"] == chunk]
        plain = done[0] if done else child("scale", csv_path, small, work / "plain", {}, chunk)
        server, url = start_prefect_server(work / "prefect-home")
        try:
            flowed = child("flow", csv_path, small, work / "flow", {"PREFECT_API_URL": url}, chunk)
        finally:
            server.terminate()
            server.wait(30)
        share = max(0.0, flowed["seconds"] - plain["seconds"]) / flowed["seconds"]
        numbers["prefect"] = {"plain": plain, "flow": flowed, "chunk": chunk, "orchestration_share": share}
        print(
            f"{products} products, chunks of {chunk} ({-(-products // chunk)} task runs): plain pool "
            f"{plain['seconds']:.1f} s, produce_catalog on a prefect server {flowed['seconds']:.1f} s: "
            f"orchestration share {100 * share:.1f}%"
        )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
