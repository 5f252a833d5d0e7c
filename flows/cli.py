"""The `onmodel` command line: run, validate, segment, reproduce, models, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.production.profile import REPO_ROOT

if TYPE_CHECKING:
    from pipelines.production.book import ProgressEvent
    from pipelines.production.outcomes import RunReport

SHARED_DEMO_CSV = REPO_ROOT.parent / "shared" / "data" / "garments" / "products.csv"
USAGE_ERROR = 2  # a user error the message explains (bad profile, preset, device, missing file)


def _quiet_prefect(verbose: bool) -> None:
    """Prefect logs every task run at INFO; the progress bar and summary say enough unless --verbose."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        # The ephemeral API server logs harmless cancellations when the process exits.
        logging.getLogger("prefect.server").setLevel(logging.CRITICAL)


def _print_summary(report: RunReport) -> None:
    counts = report.counts
    print(
        f"produced {counts['produced']} · skipped {counts['skipped']} · rejected {counts['rejected']} · "
        f"failed {counts['failed']}  ({counts['products']} products, {report.seconds:.1f} s)"
    )
    out = Path(report.out_dir)
    print(f"manifest: {out / 'manifest.csv'}")
    print(f"rejects:  {out / 'rejects.csv'}")
    print(f"run index: {(out / 'index.html').resolve()}")


@contextmanager
def _progress_bar(show: bool) -> Iterator[Callable[[ProgressEvent], None] | None]:
    """A rich progress bar fed by the run book's events (None when hidden)."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as progress:
        bars = {stage: progress.add_task(stage, total=0) for stage in ("prepare", "render")}

        def update(event: ProgressEvent) -> None:
            progress.update(bars[event.stage], completed=event.done, total=event.total)

        yield update


def _produce(args: argparse.Namespace, csv_path: str) -> int:
    """Run the flow with a progress bar; user errors (profile, preset, device) are one line, exit 2."""
    from flows.produce import run_catalog
    from pipelines.model_sources import ModelNotAvailableError
    from pipelines.production.profile import ProfileError
    from pipelines.production.validate import RunConfigError

    try:
        with _progress_bar(not args.no_progress) as on_progress:
            report = run_catalog(
                csv_path,
                args.config,
                args.out,
                only=getattr(args, "only", None),
                preset=args.preset,
                device=args.device,
                force=getattr(args, "force", False),
                on_progress=on_progress,
            )
    except (ProfileError, RunConfigError, ModelNotAvailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    _print_summary(report)
    return report.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    """Produce a catalogue."""
    _quiet_prefect(args.verbose)
    if not Path(args.csv).exists():
        print(f"error: {args.csv} does not exist", file=sys.stderr)
        return USAGE_ERROR
    return _produce(args, args.csv)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the verdict on a CSV as `run` with the same profile would give it; runs nothing."""
    from catalog import CatalogError, format_verdict
    from flows.caches import pose_library
    from pipelines.production.profile import ProfileError, load_profile
    from pipelines.production.validate import validate

    try:
        result = validate(Path(args.csv), load_profile(args.config), poses=pose_library())
    except (ProfileError, CatalogError) as error:
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print(format_verdict(result))
    return 0 if not result.rejects else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Regenerate one image from its metadata."""
    _quiet_prefect(False)
    from catalog import ImageFetchError
    from flows import caches
    from pipelines.errors import InputError
    from pipelines.production.reproduce import reproduce_image

    try:
        report = reproduce_image(
            Path(args.image),
            models=caches.MODELS,
            poses=caches.pose_library(),
            presets=caches.presets(),
            out_path=Path(args.out) if args.out else None,
            device=args.device,
        )
    except (InputError, ImageFetchError) as error:  # no metadata, a changed or missing photo: no traceback
        print(f"error: {error}", file=sys.stderr)
        return USAGE_ERROR
    print(report.describe())
    return 0 if report.matches or not args.check else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo catalogue: the photos in ../shared/data/garments when present, else generated flat-lays."""
    _quiet_prefect(args.verbose)
    csv_path = SHARED_DEMO_CSV
    if args.synthetic or not csv_path.exists():
        from flows.demo_catalog import write_demo_catalog

        csv_path = write_demo_catalog(Path(args.out) / "demo-input", products=args.products)
        print(f"demo catalogue: {args.products} generated flat-lays in {csv_path.parent}")
    else:
        print(f"demo catalogue: {csv_path}")
    return _produce(args, str(csv_path))


def build_parser() -> argparse.ArgumentParser:
    """All subcommands; segment and models live in their own modules."""
    from flows import models_command, segment_command

    parser = argparse.ArgumentParser(
        prog="onmodel", description="Product CSV to on-model images and contact sheets."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="produce a catalogue from a product CSV")
    run.add_argument("csv", help="product CSV (onmodel columns, Shopify export or Google Merchant feed)")
    run.add_argument(
        "--config", default="demo", help="profile name in configs/ or a YAML path (default: demo)"
    )
    run.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
    run.add_argument("--only", nargs="+", metavar="SKU", help="produce only these SKUs")
    run.add_argument(
        "--preset", help="output preset from configs/presets.yaml (master, amazon, shopify, zalando)"
    )
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    run.add_argument("--force", action="store_true", help="re-render jobs even if already produced")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    run.add_argument("--verbose", action="store_true", help="Prefect task logs at INFO")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a product CSV and print the verdict; runs nothing")
    validate.add_argument("csv")
    validate.add_argument(
        "--config", default="demo", help="the profile whose image policy and poses apply (default: demo)"
    )
    validate.set_defaults(func=cmd_validate)

    segment_command.add_parser(sub)

    reproduce = sub.add_parser("reproduce", help="regenerate one image from its embedded metadata")
    reproduce.add_argument("image", help="an image written by onmodel (PNG text chunk or JSON sidecar)")
    reproduce.add_argument("--out", help="where to write the regenerated image (default: beside it)")
    reproduce.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    reproduce.add_argument(
        "--check",
        action="store_true",
        help="exit 1 unless the pixels match (identical, or within 2 levels for batched renders)",
    )
    reproduce.set_defaults(func=cmd_reproduce)

    models_command.add_parser(sub)

    demo = sub.add_parser("demo", help="run the offline demo catalogue with the draft renderer")
    demo.add_argument("--out", default="outputs/demo")
    demo.add_argument("--config", default="demo")
    demo.add_argument("--preset")
    demo.add_argument("--device", default="cpu")
    demo.add_argument("--synthetic", action="store_true", help="use generated flat-lays even if photos exist")
    demo.add_argument("--products", type=int, default=12, help="generated products (with --synthetic)")
    demo.add_argument("--no-progress", action="store_true")
    demo.add_argument("--verbose", action="store_true")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `onmodel` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
