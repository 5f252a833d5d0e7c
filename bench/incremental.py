"""Benchmark: planning a nightly run over a large catalogue where few products changed.

Builds N products (small photo files, an onmodel CSV) whose jobs are all recorded as produced in the state
store with their masters, sidecars and cutout records in place, as the night after a full run looks (setup,
not timed); changes K % of the photos; then times what a nightly run does before it renders anything:
read + validate the CSV, then `plan_catalogue` (photo hashes through the photo cache: a `stat` per
unchanged file; one state-store read per chunk; the skip decisions). Twice: the first night after the full
run decides every job from its row and records the products it finds complete; the night after takes those
records whole (pipelines/production/completed.py). Prints rows/s, the share skipped and checks that exactly
the changed products are left to render. Target: 100k rows, 1 % changed, < 10 s.

Usage: python bench/incremental.py --products 100000 --changed 1.0 [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from catalog.photo_cache import PhotoCache  # noqa: E402
from catalog.state import open_job_store  # noqa: E402
from catalog.state_tables import completed_products  # noqa: E402
from catalog.state_tables import jobs as jobs_table  # noqa: E402
from configs import config_root  # noqa: E402
from pipelines.poses import load_pose_library  # noqa: E402
from pipelines.presets import load_presets  # noqa: E402
from pipelines.production import completed, stages  # noqa: E402
from pipelines.production.layout import LocalStorage, OutputLayout, sidecar_key, write_json  # noqa: E402
from pipelines.production.plan import plan_product  # noqa: E402
from pipelines.production.profile import load_profile  # noqa: E402
from pipelines.production.stages import Resources, RunContext, plan_catalogue  # noqa: E402
from pipelines.production.validate import pose_library_digest, validate  # noqa: E402


class PlanningLoadsNoModel:
    """Planning decides from hashes and records only; a model asked for here would be a bug."""

    def segmenter(self, backend: str, options: Mapping[str, Any], device: str) -> Any:
        raise RuntimeError("planning must not load a segmenter")

    def renderer(self, name: str, options: Mapping[str, Any], device: str) -> Any:
        raise RuntimeError("planning must not load a renderer")


def build(folder: Path, products: int, poses: int, variants: int) -> tuple[Path, Path, Path]:
    """Photos, CSV, profile and an output folder in the state of a finished full run; (csv, profile, out)."""
    photos, out = folder / "in", folder / "out"
    photos.mkdir(parents=True)
    rows = ["sku,image,category"]
    for number in range(products):
        (photos / f"p{number:06d}.jpg").write_bytes(f"photo of product {number}".encode())
        rows.append(f"P-{number:06d},p{number:06d}.jpg,t-shirt")
    csv_path = photos / "products.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    data = yaml.safe_load((config_root() / "demo.yaml").read_text())
    chosen = data["poses"]["upper_body"][:poses]
    data["poses"] = {"upper_body": chosen, "lower_body": chosen, "full_body": chosen}
    data["variants"] = variants
    profile_path = folder / "profile.yaml"
    profile_path.write_text(yaml.safe_dump(data))
    return csv_path, profile_path, out


def record_finished_run(
    csv_path: Path, profile_path: Path, out: Path, ctx: RunContext, res: Resources
) -> int:
    """Every job produced with its files in place: rows written the way record_produced writes them, in one
    transaction (setup only: one statement per job would take minutes at 100k)."""
    layout = res.layout
    result = validate(csv_path, ctx.profile, poses=res.poses)
    values = []
    stamp = "2026-12-02T02:00:00.000000+00:00"
    for record in result.records:
        photo = (csv_path.parent / record.image.raw).read_bytes()
        sha = hashlib.sha256(photo).hexdigest()
        write_json(res.storage, layout.cutout_record(record.sku), {"image_sha256": sha, "flags": []})
        res.storage.write_bytes(layout.cutout(record.sku), b"")
        for plan in plan_product(record, ctx.profile):
            master = layout.master_image(plan.sku, plan.job_id)
            res.storage.write_bytes(master, b"")
            res.storage.write_bytes(sidecar_key(master), b"{}")
            values.append({
                "job_id": plan.job_id, "sku": plan.sku, "image_hash": sha, "config_fingerprint": ctx.fingerprint,
                "status": "produced", "outputs": json.dumps([master, sidecar_key(master)]), "reason": "",
                "updated_at": stamp, "seed": plan.seed, "flags": "[]", "attempts": 1, "last_error": "",
                "last_run_id": "setup", "first_produced_run": "setup", "render_fields": "{}",
                "render_fingerprint": ctx.fingerprint,
            })  # fmt: skip
    store = res.store
    with store.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(jobs_table.insert(), values)
    return len(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument(
        "--changed", type=float, default=1.0, help="percent of photos changed since last night"
    )
    parser.add_argument("--poses", type=int, default=3)
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--fixture", type=Path, help="keep the built catalogue in this folder and reuse it on the next run "
        "(setup takes minutes at 100k; planning records nothing, so repeated timings see the same night)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    with (
        nullcontext(str(args.fixture))
        if args.fixture
        else tempfile.TemporaryDirectory(prefix="onmodel-incremental-")
    ) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        reuse = (folder / "ready.json").exists()
        if reuse:
            csv_path, profile_path, out = (
                folder / "in" / "products.csv",
                folder / "profile.yaml",
                folder / "out",
            )
        else:
            csv_path, profile_path, out = build(folder, args.products, args.poses, args.variants)
        profile = load_profile(profile_path)
        poses = load_pose_library()
        ctx = RunContext(
            run_id="bench", profile=profile, fingerprint=profile.fingerprint(pose_library_digest(poses)),
            csv_dir=str(csv_path.parent.resolve()),
        )  # fmt: skip
        storage = LocalStorage(out)
        res = Resources(
            storage=storage, store=open_job_store(storage.state_db), models=PlanningLoadsNoModel(), poses=poses,
            presets=load_presets(), photos=PhotoCache(storage.local_path(OutputLayout().photo_cache)),
        )  # fmt: skip
        if reuse:
            fixture = json.loads((folder / "ready.json").read_text())
            jobs, changed, args.products = fixture["jobs"], fixture["changed"], fixture["products"]
        else:
            jobs = record_finished_run(csv_path, profile_path, out, ctx, res)
            # Last night's run also filled the photo cache: one planning pass (what that run did) primes it.
            result = validate(csv_path, profile, poses=poses)
            for _ in plan_catalogue(result.records, ctx, res):
                pass
            changed = sorted(
                random.Random(args.seed).sample(
                    range(args.products), round(args.products * args.changed / 100)
                )
            )
            for number in changed:
                (csv_path.parent / f"p{number:06d}.jpg").write_bytes(
                    f"new photo of product {number}".encode()
                )
            if args.fixture:
                (folder / "ready.json").write_text(
                    json.dumps({"products": args.products, "jobs": jobs, "changed": changed})
                )
        setup_s = time.perf_counter() - started
        print(
            f"setup: {args.products} products, {jobs} jobs produced, {len(changed)} photos changed ({setup_s:.0f} s)"
        )
        # Writes of a moment ago are not trusted whole (completed.RACY_S): the night after, they are old.
        if not reuse:  # the last photos and files were written just now
            time.sleep(completed.RACY_S + 0.1)
        expected = sorted(f"P-{number:06d}" for number in changed)
        # The timed part, twice: the night after a full run (every job decided from its row; the products
        # found complete are recorded), then the night after that (those records taken whole).
        with res.store.engine.begin() as connection:  # type: ignore[attr-defined]
            connection.execute(completed_products.delete())
        passes = {
            name: timed_pass(csv_path, ctx, res, expected)
            for name in ("job by job (records written)", "completed products taken whole")
        }
        for name, numbers in passes.items():
            print(
                f"plan, {name}: {args.products} rows in {numbers['seconds']:.2f} s "
                f"({numbers['rows_per_s']:,.0f} rows/s): read + validate {numbers['validate_s']:.2f} s, "
                f"plan_catalogue {numbers['plan_s']:.2f} s, CPU {numbers['cpu_s']:.2f} s; "
                f"{numbers['skipped_share']:.1%} of jobs skipped, {numbers['whole']} products taken whole, "
                f"{numbers['recorded']} complete products on record, "
                f"{numbers['to_render']} products to render (the {len(expected)} changed: "
                f"{'yes' if numbers['exact'] else 'NO'})"
            )
        best = passes["completed products taken whole"]["seconds"]
        print(
            f"target < 10 s for 100k rows (a night after a night): {best * 100_000 / args.products:.2f} s "
            f"scaled, {'met' if best * 100_000 / args.products < 10 else 'MISSED'}"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"products": args.products, "jobs": jobs, "changed": len(changed), **passes}, indent=2
                )
            )
        return 0 if all(numbers["exact"] for numbers in passes.values()) else 1


def timed_pass(csv_path: Path, ctx: RunContext, res: Resources, expected: list[str]) -> dict[str, Any]:
    """What a nightly run does before anything renders: read + validate the CSV, plan every product."""
    by_jobs = stages._plan_one
    planned_by_jobs = 0

    def counted(*args: Any) -> Any:  # the job-by-job plan of one product, counted (a few ns)
        nonlocal planned_by_jobs
        planned_by_jobs += 1
        return by_jobs(*args)

    stages._plan_one = counted
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = validate(csv_path, ctx.profile, poses=res.poses)
        validated = time.perf_counter()
        planned = list(plan_catalogue(result.records, ctx, res))
        done, cpu_s = time.perf_counter(), time.process_time() - cpu_started
    finally:
        stages._plan_one = by_jobs
    with res.store.engine.connect() as connection:  # type: ignore[attr-defined]
        recorded = connection.execute(select(func.count()).select_from(completed_products)).scalar()
    to_render = sorted(p.record.sku for p in planned if p.todo)
    skipped = sum(len(p.skipped) for p in planned)
    total_s = done - started
    return {
        "seconds": total_s, "validate_s": validated - started, "plan_s": done - validated, "cpu_s": cpu_s,
        "rows_per_s": len(result.records) / total_s, "to_render": len(to_render), "exact": to_render == expected,
        "skipped_share": skipped / max(1, skipped + sum(len(p.todo) for p in planned)),
        "whole": len(planned) - planned_by_jobs, "recorded": recorded,
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
