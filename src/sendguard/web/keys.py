"""The link key: a random secret in a file of its own, created with mode 0600 on first use.

It signs links in notices and console session cookies. It lives outside the database on
purpose: whoever can read a database backup must not be able to forge a release link.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sendguard.errors import ConfigError

_KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, creating the file (and its directory) with a new key if absent."""
    try:
        text = path.read_text("ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(_KEY_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another relay process created it first
            return load_or_create_key(path)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key + "\n")
        return bytes.fromhex(key)
    except OSError as exc:
        raise ConfigError(f"link key file {path}: {exc}") from exc
    try:
        key_bytes = bytes.fromhex(text)
    except ValueError:
        key_bytes = b""
    if len(key_bytes) < 16:
        raise ConfigError(f"link key file {path} must hold at least 32 hex digits")
    return key_bytes
