"""Benchmark of the many-hosts path: is every Dask worker's device busy, and what does Dask cost against one host?

The same catalogue runs through `onmodel run` twice per size N: on a local Dask cluster of N workers (real
`dask scheduler` / `dask worker --nthreads 1 --resources GPU=1` processes on 127.0.0.1, one fake device each) and on
one host with N devices (`--devices cpu:1,...`), both against a real `prefect server` on 127.0.0.1 started here.
The renderer is bench/pool.py's held device (it holds its device for a fixed time per batch, so the numbers are our
orchestration); CPU preparation is real (generated JPEG photos, classical segmentation, placement, encoding).
efficiency = images/s of the whole flow run (preflight, start-up and tail included) / (N x batch / time per batch).

Usage: python bench/dask_pool.py                 (1 and 2 workers, --nthreads 1 and 2, 10 batches per device; ~6 min)
       python bench/dask_pool.py --workers 1 --batches-per-device 2 --batch-s 0.2 --width 300 --height 400
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pool import free_port, start_prefect_server, write_photos, write_profile  # noqa: E402

JOBS_PER_PRODUCT = 6  # demo profile: 3 poses x 2 variants
# Imported first by every process of the benchmark (workers: --preload; the run: before the CLI): the held device
# replaces the renderer. ONMODEL_BENCH_BATCH_S is its time per batch.
# Each batch's start and end go to $ONMODEL_BENCH_TRACE/<pid>.jsonl: where a device idles (idle_of).
PRELOAD = """
import json, os, time
from bench.pool import HeldDevice
from flows import caches


class TracedDevice(HeldDevice):
    def __call__(self, jobs):
        started = time.time()
        try:
            return super().__call__(jobs)
        finally:
            line = {"pid": os.getpid(), "device": self.device, "start": started, "end": time.time(), "jobs": len(jobs)}
            with open(os.path.join(os.environ["ONMODEL_BENCH_TRACE"], f"{os.getpid()}.jsonl"), "a") as trace:
                trace.write(json.dumps(line) + "\\n")


caches.create_renderer = lambda name, options, device: TracedDevice(device, float(os.environ["ONMODEL_BENCH_BATCH_S"]))
"""


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_cluster(
    workers: int, nthreads: int, work: Path, env: dict[str, str], warm: bool = False
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    """A scheduler and `workers` workers (cpu:1 ... cpu:N, --nthreads each), registered before this returns;
    warm: both started with `--preload flows.warm_up` (the chunk tasks' imports begin at once)."""
    warm_up = ["--preload", "flows.warm_up"] if warm else []
    import distributed

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    python = [sys.executable, "-m"]
    processes = [
        spawn(
            [
                *python,
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-dashboard",
                *warm_up,
            ],
            env,
            work / "scheduler.log",
        )
    ]
    for index in range(1, workers + 1):
        command = [
            *python,
            "distributed.cli.dask_worker",
            address,
            "--host",
            "127.0.0.1",
            "--nthreads",
            str(nthreads),
        ]
        command += ["--resources", "GPU=1", "--no-dashboard", "--preload", "held_preload", *warm_up]
        command += ["--local-directory", str(work / f"dask-{nthreads}-{index}")]
        log = work / f"w{index}-nthreads{nthreads}.log"
        processes.append(spawn(command, {**env, "ONMODEL_WORKER_DEVICE": f"cpu:{index}"}, log))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(process.poll() is None for process in processes):
        try:
            with distributed.Client(address, timeout=10, set_as_default=False) as client:
                if len(client.scheduler_info()["workers"]) == workers:
                    return address, processes
        except OSError:
            pass
        time.sleep(0.5)
    stop(processes)
    raise RuntimeError(f"the {workers} Dask workers did not register within 120 s (logs in {work})")


def traced_env(env: dict[str, str], trace: Path) -> dict[str, str]:
    trace.mkdir(parents=True, exist_ok=True)
    return {**env, "ONMODEL_BENCH_TRACE": str(trace)}


def run_once(
    csv_path: Path, profile: Path, out: Path, env: dict[str, str], placement: list[str]
) -> dict[str, Any]:
    """`onmodel run` (with the held device imported first) and its summary.json."""
    code = "import held_preload, sys; from flows.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "run", str(csv_path), "--config", str(profile), "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--no-progress", *placement],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"onmodel run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    summary_path = next((out / "runs").glob("*/summary.json"))
    summary = json.loads(summary_path.read_text())
    # The report is written right after the pools close: its time, less the run's seconds, is the flow's start.
    ended = summary_path.stat().st_mtime
    return {
        "summary": summary,
        "process_wall_s": wall,
        "flow_span": (ended - summary["seconds"], ended),
        "trace": env["ONMODEL_BENCH_TRACE"],
    }


def idle_of(trace: Path, flow_span: tuple[float, float], batch: int) -> dict[str, dict[str, float]]:
    """Per device (device@pid): idle seconds before its first batch (lead), between batches (gaps, and the
    largest), after its last (tail), and how many batches went out partial."""
    started, ended = flow_span
    calls: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(trace.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            call = json.loads(line)
            calls.setdefault(f"{call['device']}@{call['pid']}", []).append(call)
    idle: dict[str, dict[str, float]] = {}
    for name, device_calls in sorted(calls.items()):
        device_calls.sort(key=lambda call: call["start"])
        gaps = [
            later["start"] - earlier["end"]
            for earlier, later in zip(device_calls, device_calls[1:], strict=False)
        ]
        idle[name] = {
            "lead_s": device_calls[0]["start"] - started,
            "gaps_s": sum(gaps),
            "largest_gap_s": max(gaps, default=0.0),
            "tail_s": ended - device_calls[-1]["end"],
            "batches": len(device_calls),
            "partial": sum(call["jobs"] < batch for call in device_calls),
        }
    return idle


def measure(
    kind: str, size: int, summary: dict[str, Any], process_wall: float, batch: int, batch_s: float
) -> dict[str, Any]:
    jobs = sum(len(product["jobs"]) for product in summary["products"])
    produced = sum(job["state"] == "produced" for product in summary["products"] for job in product["jobs"])
    ideal = size * batch / batch_s
    rate = produced / summary["seconds"]
    utilisation = {
        f"{device['device']}@{device['worker'].split(' pid ')[-1]}": device["busy_s"] / summary["seconds"]
        for device in summary["devices"]
    }
    return {
        "kind": kind,
        "devices": size,
        "jobs": jobs,
        "produced": produced,
        "flow_wall_s": summary["seconds"],
        "process_wall_s": process_wall,
        "img_s": rate,
        "ideal_img_s": ideal,
        "efficiency": rate / ideal,
        "utilisation": utilisation,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2", help="cluster sizes (default: 1,2)")
    parser.add_argument("--batches-per-device", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="renderer batch size (default: 8)")
    parser.add_argument(
        "--batch-s", type=float, default=2.4, help="held device time per batch (default: 2.4)"
    )
    parser.add_argument("--cpu-workers", type=int, default=2, help="CPU threads per pool (run.max_workers)")
    parser.add_argument(
        "--nthreads", default="1,2", help="dask worker --nthreads values to compare (default: 1,2)"
    )
    parser.add_argument(
        "--warm-preload",
        action="store_true",
        help="start the scheduler and workers with --preload flows.warm_up (README 'Scaling out')",
    )
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=1334)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)

    sizes = [int(size) for size in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="onmodel-bench-dask-"))
    (work / "held_preload.py").write_text(PRELOAD)
    server, api_url = start_prefect_server(work / "prefect")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(work / "prefect-client"),
        PREFECT_LOGGING_LEVEL="WARNING",
        DO_NOT_TRACK="1",
        PYTHONPATH=os.pathsep.join([str(work), str(ROOT)]),
        ONMODEL_LOCK_DIR=str(work / "locks"),
        ONMODEL_BENCH_BATCH_S=str(args.batch_s),
    )
    results: list[dict[str, Any]] = []
    try:
        for size in sizes:
            products = -(-size * args.batches_per_device * args.batch // JOBS_PER_PRODUCT)
            folder = work / f"n{size}"
            csv_path = write_photos(folder / "photos", products, args.width, args.height, 10**9)
            profile = write_profile(
                folder,
                "dask-bench",
                renderer={"name": "draft", "batch_size": args.batch, "options": {}},
                run={"max_workers": args.cpu_workers, "retry_delay_s": 0.1, "batch_timeout_s": 120},
            )
            runs: list[tuple[str, dict[str, Any]]] = []
            for nthreads in [int(n) for n in args.nthreads.split(",")]:
                traced = traced_env(env, folder / f"trace-dask-{nthreads}")
                address, cluster = start_cluster(size, nthreads, folder, traced, args.warm_preload)
                try:
                    out = folder / f"out-dask-{nthreads}"
                    dask_run = run_once(csv_path, profile, out, traced, ["--dask", address])
                finally:
                    stop(cluster)
                runs.append((f"dask --nthreads {nthreads}", dask_run))
            devices = ",".join(f"cpu:{index}" for index in range(1, size + 1))
            traced = traced_env(env, folder / "trace-host")
            host_run = run_once(csv_path, profile, folder / "out-host", traced, ["--devices", devices])
            runs.append(("one host", host_run))
            for kind, run in runs:
                result = measure(kind, size, run["summary"], run["process_wall_s"], args.batch, args.batch_s)
                result["idle"] = idle_of(Path(run["trace"]), run["flow_span"], args.batch)
                results.append(result)
                utilisation = " ".join(
                    f"{name} {100 * value:.1f}%" for name, value in result["utilisation"].items()
                )
                print(
                    f"{kind:>18} devices {size}: {result['produced']} jobs in {result['flow_wall_s']:.1f} s "
                    f"(process {result['process_wall_s']:.1f} s), {result['img_s']:.2f} img/s "
                    f"(ideal {result['ideal_img_s']:.2f}), efficiency {100 * result['efficiency']:.1f}%, "
                    f"utilisation {utilisation}",
                    flush=True,
                )
                for name, idle in result["idle"].items():
                    print(
                        f"{'':>18} idle {name}: lead {idle['lead_s']:.1f} s, between batches "
                        f"{idle['gaps_s']:.1f} s (largest {idle['largest_gap_s']:.1f} s), tail "
                        f"{idle['tail_s']:.1f} s; {idle['batches']:.0f} batches, {idle['partial']:.0f} partial",
                        flush=True,
                    )
    finally:
        stop([server])
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": os.cpu_count(), "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
