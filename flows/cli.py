"""The `onmodel` command line: run, validate, segment, reproduce, models, status, retry, export, prune, demo."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.production.layout import OutputLayout
from pipelines.production.outcomes import EXIT_USAGE
from pipelines.production.profile import REPO_ROOT

if TYPE_CHECKING:
    from pipelines.production.book import ProgressEvent
    from pipelines.production.outcomes import RunReport

SHARED_DEMO_CSV = REPO_ROOT.parent / "shared" / "data" / "garments" / "products.csv"
EXIT_CODES = """exit codes:
  0  every row produced or skipped
  1  jobs or products failed after their retries (see manifest.csv)
  2  the run could not start: missing CSV, unknown profile/preset/device, a model not on this machine,
     an unreachable Prefect server (the message says what to do)
  3  nothing failed, but rows or photos were rejected (see rejects.csv); --allow-rejects makes this 0"""


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
    layout = OutputLayout()
    here = f"{socket.gethostname()} pid {os.getpid()}"
    for usage in report.devices:  # a Dask run's devices say which worker drove them
        where = f" on {usage.worker}" if usage.worker and usage.worker != here else ""
        print(f"device {usage.describe()}{where}")
    if "://" in report.out_dir:  # an fsspec URL (s3://, file://): keys below it
        base = report.out_dir.rstrip("/")
        print(f"manifest: {base}/{layout.manifest}")
        print(f"rejects:  {base}/{layout.rejects}")
        print(f"run report: {base}/{layout.run_index(report.run_id)}")
        print(f"run index: {base}/{layout.index}  (the whole catalogue there)")
        return
    out = Path(report.out_dir)
    print(f"manifest: {out / layout.manifest}")
    print(f"rejects:  {out / layout.rejects}")
    print(f"run report: {(out / layout.run_index(report.run_id)).resolve()}")
    print(f"run index: {(out / layout.index).resolve()}  (the whole catalogue in this folder)")


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


def _prefect_server_problem() -> str | None:
    """Why the Prefect server named by PREFECT_API_URL cannot be used, or None (also when none is named)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        return None  # Prefect's embedded (ephemeral) API: nothing to reach
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=5.0, trust_env=False).raise_for_status()
    except httpx.HTTPError as error:
        return (
            f"the Prefect server at PREFECT_API_URL={url} does not answer ({type(error).__name__}). Start it "
            "with `prefect server start --host 127.0.0.1`, or unset PREFECT_API_URL to run on Prefect's "
            "embedded API."
        )
    return None


def _produce(args: argparse.Namespace, csv_path: str) -> int:
    """Run the flow with a progress bar; user errors (profile, preset, device) are one line, exit 2."""
    from flows.produce import run_catalog
    from pipelines.model_sources import ModelNotAvailableError
    from pipelines.production.profile import ProfileError
    from pipelines.production.validate import RunConfigError

    if problem := _prefect_server_problem():
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with _progress_bar(not args.no_progress) as on_progress:
            report = run_catalog(
                csv_path,
                args.config,
                args.out,
                only=getattr(args, "only", None),
                presets=_presets(args.preset),
                device=args.device,
                force=getattr(args, "force", False),
                on_progress=on_progress,
                devices=args.devices,
                dask=getattr(args, "dask", None),
            )
    except (ProfileError, RunConfigError, ModelNotAvailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _print_summary(report)
    return report.exit_code(allow_rejects=getattr(args, "allow_rejects", False))


def _presets(values: list[str] | None) -> list[str] | None:
    """--preset amazon --preset shopify, or --preset master,amazon -> ['master', 'amazon']; None: the profile's."""
    from pipelines.production.profile import preset_names

    return list(preset_names(values)) if values else None


def cmd_run(args: argparse.Namespace) -> int:
    """Produce a catalogue."""
    _quiet_prefect(args.verbose)
    if not Path(args.csv).exists():
        print(f"error: {args.csv} does not exist", file=sys.stderr)
        return EXIT_USAGE
    return _produce(args, args.csv)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the verdict on a CSV as `run` with the same profile would give it; runs nothing."""
    from catalog import CatalogError, format_verdict
    from flows.caches import pose_library
    from pipelines.production.profile import ProfileError, load_profile
    from pipelines.production.validate import validate

    try:
        result = validate(Path(args.csv), load_profile(args.config), poses=pose_library(), deep=args.deep)
    except (ProfileError, CatalogError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(format_verdict(result))
    return 0 if not result.rejects else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Regenerate one image from its metadata."""
    _quiet_prefect(False)
    from catalog import ImageFetchError
    from flows import caches
    from pipelines.errors import InputError
    from pipelines.production.reproduce import reproduce_image
    from pipelines.production.validate import RunConfigError, check_device

    try:
        report = reproduce_image(
            Path(args.image),
            models=caches.MODELS,
            poses=caches.pose_library(),
            presets=caches.presets(),
            out_path=Path(args.out) if args.out else None,
            device=check_device(args.device),
        )
    except (
        InputError,
        ImageFetchError,
        RunConfigError,
    ) as error:  # no metadata, a changed photo: no traceback
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(report.describe())
    return 0 if report.matches or not args.check else 1


def cmd_status(args: argparse.Namespace) -> int:
    """Print what an output folder holds: products and images per state, and each run's counts."""
    from pipelines.production.layout import LocalStorage
    from pipelines.production.status import folder_status

    out = Path(args.out)
    if not out.is_dir():
        print(f"error: {out} is not a folder; give the --out of an earlier run", file=sys.stderr)
        return EXIT_USAGE
    print(folder_status(LocalStorage(out)).describe())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Derive presets from the stored masters of an output folder; renders nothing."""
    from flows import caches
    from pipelines.production.export import export_preset
    from pipelines.production.layout import LocalStorage

    out = Path(args.out)
    if not (out / OutputLayout().catalogue).is_file():
        print(f"error: {out} holds no onmodel catalogue; give the --out of an earlier run", file=sys.stderr)
        return EXIT_USAGE
    presets = caches.presets()
    names = _presets(args.preset) or []
    unknown = [name for name in names if name not in presets]
    if unknown:
        print(
            f"error: preset {', '.join(unknown)} is not in presets.yaml; choose from {', '.join(sorted(presets))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    resources = caches.resources(str(out))
    target = LocalStorage(Path(args.to)) if args.to else None
    missing = 0
    for name in names:
        result = export_preset(presets[name], resources, only=args.only or (), target=target)
        print(result.describe())
        missing += len(result.missing_master)
    where = Path(args.to) if args.to else out
    print(f"images: {where / 'images'}")
    return 1 if missing else 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete the retired images (dropped poses and variants) of an output folder."""
    from pipelines.production.layout import LocalStorage
    from pipelines.production.retire import prune_retired

    out = Path(args.out)
    if not out.is_dir():
        print(f"error: {out} is not a folder; give the --out of an earlier run", file=sys.stderr)
        return EXIT_USAGE
    result = prune_retired(LocalStorage(out), dry_run=args.dry_run)
    print(result.describe(out / OutputLayout().retired_root))
    return 0


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


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    """--devices (a pool) and --device (one device, the same as --devices with one name)."""
    parser.add_argument(
        "--devices",
        metavar="DEVICES",
        help="device pool: auto (every CUDA device), cpu, or a list such as cuda:0,cuda:1 (cpu:0,cpu:1: several "
        "CPU renderers, for tests); default: the profile's run.devices (demo: cpu)",
    )
    parser.add_argument("--device", default=None, help="one device: cpu, cuda or cuda:N (a one-device pool)")


def build_parser() -> argparse.ArgumentParser:
    """All subcommands; segment and models live in their own modules."""
    from flows import models_command, retry_command, segment_command, serve
    from pipelines.production.profile import code_version
    from webapp.review import command as review_command

    parser = argparse.ArgumentParser(
        prog="onmodel",
        description="Product CSV to on-model images and contact sheets.",
        epilog="Start with `onmodel demo`, then `onmodel validate products.csv` and `onmodel run products.csv`.",
    )
    parser.add_argument("--version", action="version", version=f"onmodel {code_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="produce a catalogue from a product CSV",
        description="Produce every pose x variant image of a product CSV, contact sheets and the run index.",
        epilog="example:\n  onmodel run products.csv --config sd15 --device cuda --preset amazon --out outputs/\n\n"
        + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("csv", help="product CSV (onmodel columns, Shopify export or Google Merchant feed)")
    run.add_argument(
        "--config", default="demo", help="profile name in configs/ or a YAML path (default: demo)"
    )
    run.add_argument(
        "--out",
        default="outputs",
        help="output folder, or an fsspec URL every host can reach (s3://bucket/prefix, file:///srv/out) "
        "(default: outputs/)",
    )
    run.add_argument("--only", nargs="+", metavar="SKU", help="produce only these SKUs")
    run.add_argument(
        "--preset",
        action="append",
        metavar="PRESET[,PRESET]",
        help="output preset(s) from configs/presets.yaml (master, amazon, shopify, zalando); several: "
        "--preset master,amazon. Each job renders once: presets are derived from its stored master",
    )
    _add_device_options(run)
    run.add_argument(
        "--dask",
        metavar="tcp://SCHEDULER:8786",
        help="run the chunks on a Dask cluster, one worker per GPU (README: Scaling out); default: the "
        "profile's run.dask, else this host's devices",
    )
    run.add_argument("--force", action="store_true", help="re-render jobs even if already produced")
    run.add_argument(
        "--allow-rejects",
        action="store_true",
        help="exit 0 (not 3) when rows were rejected but nothing failed",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    run.add_argument("--verbose", action="store_true", help="Prefect task logs at INFO")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser(
        "validate",
        help="check a product CSV and print the verdict; runs nothing",
        description="The verdict `run` would give with the same profile: exit 0 all rows ok, 1 rows rejected, "
        "2 the file or profile cannot be read.",
        epilog="example:\n  onmodel validate products.csv --config sd15 --deep",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("csv", help="product CSV (onmodel columns, Shopify export or Google Merchant feed)")
    validate.add_argument(
        "--deep", action="store_true", help="also fetch and decode every photo (catches truncated files)"
    )
    validate.add_argument(
        "--config", default="demo", help="the profile whose image policy and poses apply (default: demo)"
    )
    validate.set_defaults(func=cmd_validate)

    segment_command.add_parser(sub)

    reproduce = sub.add_parser(
        "reproduce",
        help="regenerate one image from its embedded metadata",
        description="Re-run segmentation, placement, the renderer and the preset with the recorded profile and "
        "seed, and compare the pixels with the original.",
        epilog="example:\n  onmodel reproduce outputs/images/master/TEE-1/TEE-1__front__v0.png --check",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    serve.add_serve_parser(sub)

    status = sub.add_parser(
        "status",
        help="show what an output folder holds: products and images per state, and each run",
        epilog="example:\n  onmodel status --out outputs/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
    status.set_defaults(func=cmd_status)

    export = sub.add_parser(
        "export",
        help="derive a preset from the stored master renders of an output folder (renders nothing)",
        description="Every produced job keeps its master render (lossless PNG); export writes another preset of "
        "each from it, into the folder itself (later runs keep it current) or into --to. Exit 1 when some "
        "jobs have no stored master.",
        epilog="example:\n  onmodel export --preset amazon --out outputs/\n"
        "  onmodel export --preset zalando --only oxford-shirt--white --out outputs/ --to upload/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--preset", action="append", required=True, metavar="PRESET[,PRESET]", help="preset(s) to derive"
    )
    export.add_argument("--out", default="outputs", help="output folder of earlier runs (default: outputs/)")
    export.add_argument("--only", nargs="+", metavar="PRODUCT", help="only these product keys")
    export.add_argument("--to", help="write into this folder instead (same images/<preset>/ layout)")
    export.set_defaults(func=cmd_export)

    prune = sub.add_parser(
        "prune",
        help="delete retired images (poses or variants a product no longer has)",
        description="A run moves the images of jobs its products no longer plan under retired/<run id>/; prune "
        "deletes that folder.",
        epilog="example:\n  onmodel prune --out outputs/ --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prune.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    prune.set_defaults(func=cmd_prune)
    retry_command.add_parser(sub)
    review_command.add_parser(sub)

    demo = sub.add_parser(
        "demo",
        help="run the offline demo catalogue with the draft renderer",
        description="The photos in ../shared/data/garments beside the checkout, else generated flat-lays, "
        "through the real flow; needs no GPU, weights or network.",
        epilog="example:\n  onmodel demo --synthetic --products 4 --out outputs/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    demo.add_argument("--config", default="demo", help="profile name or YAML path (default: demo)")
    demo.add_argument(
        "--preset", action="append", metavar="PRESET[,PRESET]", help="output preset(s) (master, amazon, ...)"
    )
    _add_device_options(demo)
    demo.add_argument("--synthetic", action="store_true", help="use generated flat-lays even if photos exist")
    demo.add_argument("--products", type=int, default=12, help="generated products (with --synthetic)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--verbose", action="store_true", help="Prefect task logs at INFO")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `onmodel` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):  # bare `onmodel`: show what it can do
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`onmodel validate big.csv | head`): stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
