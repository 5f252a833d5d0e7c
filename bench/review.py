"""Benchmark: the review app at catalogue scale, and many reviewers deciding at once.

1. Page render time at N products (default 10k x 6 images): the run's gallery (first page, a filtered page, a
   deep page), a product page and the runs list, served by uvicorn on 127.0.0.1 and fetched over HTTP.
2. A load test: R reviewers (default 20), each with their own login session, deciding on random images for
   S seconds (default 60); prints decisions/s and p50/p95 latency, then checks that the state store's history
   holds exactly the decisions the server acknowledged (none lost, none doubled).

The run report and catalogue are written directly in the shapes a real run writes (RunReport / catalogue.json;
no renderer needed: the app's cost does not depend on the pixels). Usage:
  python bench/review.py --products 10000 --reviewers 20 --seconds 60 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from catalog.state import open_job_store  # noqa: E402
from pipelines.presets import load_presets  # noqa: E402
from pipelines.production import catalogue  # noqa: E402
from pipelines.production.decisions import render_id  # noqa: E402
from pipelines.production.layout import LocalStorage, OutputLayout, write_json  # noqa: E402
from pipelines.production.outcomes import JobOutcome, ProductOutcome, RunReport  # noqa: E402
from pipelines.production.review import ReviewDesk  # noqa: E402
from webapp.review.app import create_review_app  # noqa: E402
from webapp.review.security import ReviewAuth  # noqa: E402

POSES = ("front", "three_quarter_left", "hands_on_hips")
TOKEN = "bench-token-for-the-review-app"
RUN_ID = "20261203T000000000000Z"


def write_run(out: Path, products: int, variants: int) -> list[str]:
    """A run report and catalogue of `products` products x poses x variants; the job ids."""
    layout = OutputLayout()
    storage = LocalStorage(out)
    entries: list[ProductOutcome] = []
    job_ids: list[str] = []
    for number in range(products):
        sku = f"BENCH-{number:05d}"
        jobs = []
        for pose in POSES:
            for variant in range(variants):
                job_id = f"{sku}__{pose}__v{variant}"
                master = layout.master_image(sku, job_id)
                jobs.append(JobOutcome(
                    job_id, sku, pose, variant, number * 10 + variant, "produced", output=master,
                    sidecar=master.replace(".png", ".json"), outputs={"master": master},
                    render_id=render_id(master, number * 10 + variant, "fp", "hash"),
                    flags=["garment_upscaled"] if number % 17 == 0 else [],
                ))  # fmt: skip
                job_ids.append(job_id)
        entries.append(ProductOutcome(
            sku, number + 2, "produced", title=f"Bench garment {number}", jobs=jobs,
            category=("t-shirt", "dress", "trousers")[number % 3], sheet=layout.sheet(sku),
        ))  # fmt: skip
    report = RunReport(
        run_id=RUN_ID, out_dir=str(out), csv="bench.csv", dialect="onmodel", profile="demo", renderer="draft",
        preset="master", fingerprint="fp", started_at="2026-12-03T00:00:00+00:00", seconds=1.0, products=entries,
    )  # fmt: skip
    write_json(storage, layout.run_summary(RUN_ID), report.to_dict())
    with storage.open_write(layout.catalogue) as handle:  # the layout publish_report writes
        by_sku = sorted(enumerate(report.products), key=lambda numbered: numbered[1].sku)
        catalogue.merge_into(catalogue.CatalogueWriter(handle), (), by_sku, RUN_ID, report.csv)
    return job_ids


def serve(out: Path) -> tuple[str, uvicorn.Server, threading.Thread]:
    store = open_job_store(out / "state.sqlite")
    app = create_review_app(ReviewDesk(LocalStorage(out), store), ReviewAuth(token=TOKEN), load_presets())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def login(base: str, name: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=60.0, trust_env=False, follow_redirects=True)
    client.post("/login", data={"name": name, "password": TOKEN}).raise_for_status()
    page = client.get("/login")
    csrf = page.text.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return client, csrf


def time_pages(base: str, repeats: int, products: int) -> dict[str, float]:
    client, _ = login(base, "timer")
    pages = {
        "gallery, first page": f"/runs/{RUN_ID}",
        "gallery, filtered (category + flag)": f"/runs/{RUN_ID}?category=dress&flag=garment_upscaled",
        "gallery, last page": f"/runs/{RUN_ID}?page=100000",
        "gallery, search": f"/runs/{RUN_ID}?q=BENCH-0099",
        "product page": f"/runs/{RUN_ID}/products/BENCH-{products // 2:05d}",
        "runs list": "/",
    }
    client.get(pages["gallery, first page"]).raise_for_status()  # parse the report once (cached after)
    timings = {}
    for name, path in pages.items():
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = statistics.median(samples)
    return timings


def load(base: str, job_ids: list[str], reviewers: int, seconds: float, seed: int) -> dict[str, object]:
    """Reviewers deciding concurrently; returns counts, latencies and what the server acknowledged."""
    acknowledged: list[tuple[str, str, str, int]] = []  # reviewer, job, decision, decision id
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    hot = job_ids[:200]  # a small set, so reviewers collide on the same images

    def reviewer(index: int) -> None:
        rng = random.Random(seed + index)
        client, csrf = login(base, f"reviewer-{index:02d}")
        while time.monotonic() < deadline:
            job = rng.choice(hot)
            decision = rng.choice(("approve", "reject"))
            body = {"job_ids": [job], "decision": decision, "seen": {job: 0}}
            if decision == "reject":
                body["reason"] = rng.choice(("garment_distorted", "face_hands", "background"))
            started = time.perf_counter()
            response = client.post(f"/api/runs/{RUN_ID}/decisions", json=body, headers={"X-CSRF-Token": csrf})
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status_code == 200:
                    record = response.json()["decisions"][0]
                    acknowledged.append((record["reviewer"], job, decision, record["decision_id"]))
                else:
                    failures.append(f"{response.status_code}: {response.text[:200]}")

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(reviewers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "decisions": len(acknowledged),
        "failures": failures,
        "decisions_per_s": len(acknowledged) / wall,
        "p50_ms": ordered[len(ordered) // 2] if ordered else 0.0,
        "p95_ms": ordered[int(len(ordered) * 0.95)] if ordered else 0.0,
        "acknowledged": acknowledged,
    }


def check_nothing_lost(out: Path, acknowledged: list[tuple[str, str, str, int]]) -> tuple[int, int]:
    """(missing, unexpected): acknowledged decisions not in the history, and history entries never acknowledged."""
    store = open_job_store(out / "state.sqlite")
    stored = {
        (d.reviewer, d.job_id, d.decision, d.decision_id)
        for job in {job for _, job, _, _ in acknowledged}
        for d in store.history(job)
    }
    wanted = set(acknowledged)
    return len(wanted - stored), len(stored - wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="onmodel-review-bench-") as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        job_ids = write_run(out, args.products, args.variants)
        print(
            f"{args.products} products, {len(job_ids)} images written in {time.perf_counter() - started:.1f} s"
        )
        base, server, thread = serve(out)
        try:
            timings = time_pages(base, args.repeats, args.products)
            for name, ms in timings.items():
                print(f"  {name:<38} {ms:8.1f} ms (median of {args.repeats})")
            result = load(base, job_ids, args.reviewers, args.seconds, args.seed)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
        missing, unexpected = check_nothing_lost(out, result["acknowledged"])  # type: ignore[arg-type]
        failures = result["failures"]
        print(
            f"load: {args.reviewers} reviewers x {args.seconds:.0f} s: {result['decisions']} decisions, "
            f"{result['decisions_per_s']:.1f} decisions/s, p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms, "
            f"{len(failures)} failed requests; lost {missing}, unacknowledged in the store {unexpected}"  # type: ignore[arg-type]
        )
        summary = {
            "products": args.products, "images": len(job_ids), "pages_ms": timings,
            "reviewers": args.reviewers, "seconds": args.seconds,
            **{k: v for k, v in result.items() if k != "acknowledged"}, "lost": missing, "unexpected": unexpected,
        }  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2, default=str))
        return 0 if not missing and not unexpected and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
