"""The audit key: an HMAC key kept outside the database, so whoever can write the database
cannot rewrite the audit chain without it going unnoticed.

The key lives in a file (`Settings.audit_key`, environment ``SENDGUARD_AUDIT_KEY``): base64 of
32 random bytes on one line, like ``openssl rand -base64 32`` writes. `sendguard serve`
creates it, mode 0600, when it is absent; every other command only reads it. The default
place is beside the store: ``audit.key`` in the SQLite file's directory, ``./var/audit.key``
for PostgreSQL (every node of a PostgreSQL queue needs the same key file).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sendguard.errors import ConfigError
from sendguard.queue.store import AuditHead

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuditKey:
    """An HMAC-SHA256 key for the audit chain, and where it came from (for messages)."""

    secret: bytes
    path: str = ""

    def __repr__(self) -> str:  # never print the secret
        return f"AuditKey(key_id={self.key_id!r}, path={self.path!r})"

    @property
    def key_id(self) -> str:
        """A public name of the key (16 hex digits): stored in each keyed record."""
        return hmac.new(self.secret, b"sendguard audit key id", hashlib.sha256).hexdigest()[:16]

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 of `data`, hex."""
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()


def default_key_path(store_url: str) -> Path:
    """``audit.key`` beside a SQLite store; ``./var/audit.key`` for PostgreSQL."""
    if store_url.startswith("sqlite:///"):
        return Path(store_url.removeprefix("sqlite:///")).parent / "audit.key"
    return Path("var") / "audit.key"


def key_path(store_url: str, configured: Path | None) -> Path:
    """The audit key file: the configured one, else `default_key_path`."""
    return configured if configured is not None else default_key_path(store_url)


def anchor_path(key_file: Path, configured: Path | None) -> Path:
    """The anchor file: the configured one, else ``audit.head`` beside the key file."""
    return configured if configured is not None else key_file.parent / "audit.head"


def read_key(path: Path) -> AuditKey:
    """Read the key file; ConfigError saying what is wrong (missing, unreadable, malformed)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"audit key file {path} does not exist (SENDGUARD_AUDIT_KEY): `sendguard serve`"
            " creates it; copy the relay's key file here to check or extend its audit log"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read audit key file {path}: {exc}") from exc
    try:
        secret = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"audit key file {path} is not base64 text") from exc
    if len(secret) < KEY_BYTES:
        raise ConfigError(
            f"audit key file {path} holds {len(secret)} bytes; at least {KEY_BYTES} are needed"
            " (openssl rand -base64 32)"
        )
    return AuditKey(secret, str(path))


def load_or_create_key(path: Path) -> tuple[AuditKey, bool]:
    """The key in `path`, created (mode 0600, atomically) if absent; and whether it was."""
    if path.exists():
        return read_key(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    text = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temp, path)  # fails if another process created it first: use theirs
            created = True
        except FileExistsError:
            created = False
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return read_key(path), created


def write_anchor(path: Path, head: AuditHead) -> None:
    """Replace the anchor file atomically with the head as one JSON line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(head_json(head) + "\n", encoding="utf-8")
    os.replace(temp, path)


def head_json(head: AuditHead) -> str:
    """``{"seq": …, "hash": …, "at": …}``: what the anchor file and `audit head` print."""
    at = head.at.isoformat() if head.at else None
    return json.dumps({"seq": head.seq, "hash": head.hash, "at": at})


def parse_head(text: str) -> AuditHead:
    """A head given by a person: ``HASH``, ``SEQ:HASH`` or the anchor file's JSON line."""
    text = text.strip()
    try:
        if text.startswith("{"):
            data = json.loads(text)
            return AuditHead(int(data["seq"]), str(data["hash"]).lower())
        seq, _, digest = text.rpartition(":")
        head = AuditHead(int(seq) if seq else 0, digest.lower())
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{text[:80]!r} is not an audit head (HASH, SEQ:HASH or JSON)") from exc
    if len(head.hash) != 64 or any(c not in "0123456789abcdef" for c in head.hash):
        raise ConfigError(f"{text[:80]!r}: an audit head hash is 64 hex digits")
    return head
