"""`onmodel retry --failed [--out DIR]`: re-queue failed jobs in the state store for the next run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipelines.production.outcomes import EXIT_USAGE


def add_parser(subparsers: Any) -> None:
    """Register the `retry` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "retry",
        help="re-queue failed jobs so the next run renders them",
        description="Marks the jobs whose latest attempt failed as queued in the state store (the output "
        "folder's state.sqlite, or $ONMODEL_STATE_URL); the next run over their CSV renders them.",
        epilog="example:\n  onmodel retry --failed --out outputs/\n  onmodel retry --failed --only TEE-1 --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--failed", action="store_true", help="re-queue the failed jobs (required)")
    parser.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
    parser.add_argument("--only", nargs="+", metavar="SKU", help="only the failed jobs of these SKUs")
    parser.add_argument("--dry-run", action="store_true", help="list the failed jobs, change nothing")
    parser.add_argument(
        "--state-url", help="a state store URL (default: $ONMODEL_STATE_URL, else the folder's)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Re-queue; a missing folder or store is one line and exit 2."""
    from pipelines.production.layout import LocalStorage
    from pipelines.production.retry import requeue_failed_jobs
    from pipelines.production.status import open_status_store

    if not args.failed:
        print("error: say what to retry: `onmodel retry --failed`", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out)
    if not args.state_url and not out.is_dir():
        print(f"error: {out} is not a folder; give the --out of an earlier run", file=sys.stderr)
        return EXIT_USAGE
    try:
        store = open_status_store(LocalStorage(out), args.state_url)
    except ValueError as error:  # an unsupported URL, a store from a newer onmodel
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if store is None:
        print(f"error: {out} has no state store (no run has recorded jobs there)", file=sys.stderr)
        return EXIT_USAGE
    try:
        plan = requeue_failed_jobs(store, only=args.only, dry_run=args.dry_run, location=store.location)
    finally:
        store.close()
    print(plan.describe())
    return 0
