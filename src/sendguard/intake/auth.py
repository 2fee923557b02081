"""SMTP AUTH for clients: a local users file (argon2id) or pass-through to the upstream.

Both checks are coroutines: argon2 is deliberately slow (tens of milliseconds) and runs in
a thread, and pass-through opens a session to the upstream, so neither may block the loop
(aiosmtpd's own `authenticator` hook is synchronous, which is why the handler implements
``auth_PLAIN``/``auth_LOGIN`` itself and calls these).

The users file has one ``name:argon2-hash`` per line; it is written atomically with mode
0600 by ``sendguard users add`` and read again when it changes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import argon2
import structlog

from sendguard.deliver.smtp import PinnedUpstream, SmtpUpstream
from sendguard.errors import ConfigError

log = structlog.get_logger(__name__)

_FAIL_DELAY = 1.0
"""Seconds a failed attempt waits before answering: slows password guessing per connection."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated client: its user name, and its own upstream session in pass-through."""

    login: str
    upstream: PinnedUpstream | None = None


class Authenticator(Protocol):
    """Checks one user name and password."""

    async def check(self, username: str, password: str) -> Identity | None:
        """The identity, or None when the credentials are wrong."""
        ...


class UsersFile:
    """Local users with argon2id hashes, reloaded when the file's mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hasher = argon2.PasswordHasher()
        self._mtime = -1.0
        self._users: dict[str, str] = {}

    def _load(self) -> dict[str, str]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if mtime != self._mtime:
            users: dict[str, str] = {}
            for number, line in enumerate(self.path.read_text("utf-8").splitlines(), 1):
                if not line.strip() or line.startswith("#"):
                    continue
                name, sep, digest = line.partition(":")
                if not sep or not digest.startswith("$argon2"):
                    raise ConfigError(f"{self.path}:{number}: expected name:argon2-hash")
                users[name] = digest
            self._users, self._mtime = users, mtime
        return self._users

    async def check(self, username: str, password: str) -> Identity | None:
        """Verify in a thread; a wrong or unknown user costs the same time."""
        digest = self._load().get(username)
        ok = await asyncio.to_thread(self._verify, digest, password)
        return Identity(login=username) if ok else None

    def _verify(self, digest: str | None, password: str) -> bool:
        try:
            if digest is None:
                # Hash anyway so an unknown user takes as long as a wrong password.
                self._hasher.hash(password)
                return False
            return self._hasher.verify(digest, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def add(self, username: str, password: str) -> None:
        """Add or replace a user; the file is rewritten atomically with mode 0600."""
        if not username or any(c in username for c in ":\r\n\0 ") or len(password) < 8:
            raise ConfigError(
                "user names may not contain ':', spaces or line breaks; "
                "passwords need 8+ characters"
            )
        users = dict(self._load())
        users[username] = self._hasher.hash(password)
        self._write(users)

    def remove(self, username: str) -> bool:
        """Remove a user; False if there was none."""
        users = dict(self._load())
        if users.pop(username, None) is None:
            return False
        self._write(users)
        return True

    def names(self) -> list[str]:
        """User names, sorted."""
        return sorted(self._load())

    def _write(self, users: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{name}:{digest}\n" for name, digest in sorted(users.items()))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._mtime = -1.0


class PassThrough:
    """The client's credentials are checked by logging in to the upstream with them."""

    def __init__(self, upstream: SmtpUpstream) -> None:
        self.upstream = upstream

    async def check(self, username: str, password: str) -> Identity | None:
        """Log in upstream; the resulting session will carry this client's mail."""
        pinned = await self.upstream.authenticate(username, password)
        return Identity(login=username, upstream=pinned) if pinned else None


async def fail_delay() -> None:
    """Wait before answering a failed attempt."""
    await asyncio.sleep(_FAIL_DELAY)
