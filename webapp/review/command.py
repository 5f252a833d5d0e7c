"""`onmodel review`: serve the review app for one output folder (uvicorn, 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from pipelines.production.outcomes import EXIT_USAGE

DEFAULT_PORT = 8600


def add_parser(subparsers: Any) -> None:
    """Register the `review` subcommand."""
    parser = subparsers.add_parser(
        "review",
        help="serve the review app: browse runs, approve or reject images, export approved ones",
        description="A web app over an output folder. On 127.0.0.1 (the default) no login is needed and "
        "decisions carry --reviewer; bound elsewhere it needs a shared token or a users file. Rejected images "
        "are rendered again with new seeds by the next run; approved ones are never touched.",
        epilog="example:\n  onmodel review --out outputs/\n"
        "  ONMODEL_REVIEW_TOKEN=$(openssl rand -hex 24) onmodel review --out outputs/ --host 0.0.0.0 "
        "--token-env ONMODEL_REVIEW_TOKEN\n"
        "  onmodel review --hash-password   # a line for a --users file",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="outputs", help="output folder of earlier runs (default: outputs/)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--reviewer", default="", help="name on decisions when no login is needed (default: you)"
    )
    parser.add_argument("--token-env", metavar="VAR", help="environment variable holding a shared team token")
    parser.add_argument("--users", type=Path, help="YAML/JSON file: user name -> password hash")
    parser.add_argument(
        "--state-url", help="state store URL (default: $ONMODEL_STATE_URL, else the folder's)"
    )
    parser.add_argument("--hash-password", action="store_true", help="read a password, print its hash, exit")
    parser.set_defaults(func=run)


def build(args: argparse.Namespace) -> Any:
    """The configured app (tests build it this way too); ValueError when it cannot start so."""
    from catalog.state import choose_state_url, open_job_store
    from pipelines.presets import load_presets
    from pipelines.production.layout import LocalStorage
    from pipelines.production.review import ReviewDesk
    from webapp.review.app import create_review_app
    from webapp.review.security import ReviewAuth, ReviewConfigError, load_users

    out = Path(args.out)
    if not (out / "catalogue.json").is_file():
        raise ReviewConfigError(f"{out} holds no onmodel catalogue yet; give the --out of an earlier run")
    token = ""
    if args.token_env:
        token = os.environ.get(args.token_env, "")
        if not token:
            raise ReviewConfigError(
                f"--token-env {args.token_env}: that environment variable is empty or unset"
            )
    users = load_users(args.users) if args.users else {}
    auth = ReviewAuth(token=token, users=users, local_reviewer=args.reviewer or _user())
    auth.check_host(args.host)
    storage = LocalStorage(out)
    store = open_job_store(choose_state_url(storage.state_db, args.state_url))
    return create_review_app(ReviewDesk(storage, store), auth, load_presets())


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; configuration problems are one line and exit 2."""
    if args.hash_password:
        from webapp.review.security import hash_password

        password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        print(hash_password(password))
        return 0
    try:
        app = build(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    import uvicorn

    print(f"review app: http://{args.host}:{args.port}/  (Ctrl+C stops it)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
