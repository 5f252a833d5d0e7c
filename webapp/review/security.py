"""Who may use the review app and how requests are checked: auth, sessions, CSRF, safe file keys, headers.

Bound to loopback the app needs no login (the reviewer's name comes from the command line); bound anywhere else
it refuses to start unless a token or a users file (scrypt password hashes) is configured. Every session,
logged in or not, carries a CSRF token that each state-changing request must echo (header or form field).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from webapp.upload import is_loopback

SESSION_COOKIE = "onmodel_review"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "x-csrf-token"
# Only these folders of the output root are served (images, contact sheets, cutouts, source thumbnails).
SERVED_ROOTS = frozenset({"images", "sheets", "cutouts", "sources"})
SCRYPT = {"n": 2**14, "r": 8, "p": 1}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class ReviewConfigError(ValueError):
    """The app cannot start as configured."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """'scrypt$<salt hex>$<hash hex>' for a users file."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT, dklen=32)
    return hmac.compare_digest(digest, expected)


def load_users(path: Path) -> dict[str, str]:
    """A JSON or YAML mapping user -> scrypt hash (make one with `onmodel review --hash-password`)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ReviewConfigError(f"cannot read the users file {path}: {error}") from error
    if not isinstance(data, dict) or not data:
        raise ReviewConfigError(
            f"{path}: map each user name to a password hash (onmodel review --hash-password)."
        )
    for user, stored in data.items():
        if not isinstance(stored, str) or not stored.startswith("scrypt$"):
            raise ReviewConfigError(
                f"{path}: the password of {user!r} is not a scrypt hash from --hash-password."
            )
    return {str(user): str(stored) for user, stored in data.items()}


@dataclass(frozen=True)
class ReviewAuth:
    """How reviewers prove who they are: nothing on loopback, else a shared token or a users file."""

    token: str = ""  # shared secret; the reviewer gives their name at login
    users: Mapping[str, str] = field(default_factory=dict)  # user -> scrypt hash
    local_reviewer: str = "reviewer"  # the name decisions carry when no login is needed
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))  # signs sessions and CSRF tokens

    @property
    def required(self) -> bool:
        return bool(self.token or self.users)

    def check_host(self, host: str) -> None:
        if not is_loopback(host) and not self.required:
            raise ReviewConfigError(
                f"refusing to serve the review app on {host} without auth: reviewers' decisions change what "
                "the next run renders. Give --token-env VAR (a shared token) or --users FILE (names with "
                "password hashes from `onmodel review --hash-password`), or bind to 127.0.0.1."
            )
        if self.token and len(self.token) < 16:
            raise ReviewConfigError(
                "the review token must be at least 16 characters (e.g. `openssl rand -hex 24`)."
            )

    def login(self, name: str, password: str) -> str | None:
        """The reviewer name when the credentials are good, else None."""
        name = name.strip()
        if self.users:
            stored = self.users.get(name)
            return name if stored is not None and verify_password(password, stored) else None
        if (
            self.token
            and name
            and len(name) <= 80
            and hmac.compare_digest(password.encode(), self.token.encode())
        ):
            return name
        return None

    # Sessions --------------------------------------------------------------------------------------------

    def _sign(self, payload: bytes) -> str:
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def new_session(self, reviewer: str) -> str:
        body = json.dumps(
            {"r": reviewer, "s": secrets.token_hex(16), "e": int(time.time()) + SESSION_SECONDS}
        )
        encoded = base64.urlsafe_b64encode(body.encode()).decode()
        return f"{encoded}.{self._sign(encoded.encode())}"

    def read_session(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        encoded, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(encoded.encode())):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(encoded.encode()))
            reviewer, sid, expires = str(body["r"]), str(body["s"]), int(body["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if expires < time.time():
            return None
        if not self.required and reviewer != self.local_reviewer:
            return None  # a session from another configuration of the app
        return Session(reviewer, self._sign(f"csrf|{sid}".encode()))


@dataclass(frozen=True)
class Session:
    reviewer: str
    csrf: str

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf)


def safe_key(path: str) -> str | None:
    """The storage key of a served file, or None: no traversal, hidden names or folders outside SERVED_ROOTS.

    The path arrives decoded once; anything still odd (a '%', a backslash, NUL) is refused rather than decoded
    again.
    """
    if not path or len(path) > 512 or any(c in path for c in ("\\", "\x00", "%", ":")):
        return None
    pure = PurePosixPath(path)
    parts = pure.parts
    if pure.is_absolute() or len(parts) < 2 or parts[0] not in SERVED_ROOTS:
        return None
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return None
    return "/".join(parts)


def within(root: Path, key: str) -> Path | None:
    """The file for a key if it really lies under root (symlinks resolved), else None."""
    base = root.resolve()
    candidate = (base / key).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate
