"""SMTP AUTH for clients: a local users file (argon2id) or pass-through to the upstream.

Both checks are coroutines: argon2 is deliberately slow (tens of milliseconds) and runs on
a small thread pool of its own (so a flood of guesses cannot take the threads the rest of
the relay uses), and pass-through opens a session to the upstream, so neither may block the
loop (aiosmtpd's own `authenticator` hook is synchronous, which is why the handler implements
``auth_PLAIN``/``auth_LOGIN`` itself and calls these). How many checks run at once, and in
which order, is `sendguard.intake.guard.LoginGuard`'s business.

The users file has one ``name:argon2-hash`` per line; it is written atomically with mode
0600 by ``sendguard users add`` and read again when it changes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib
import argon2
import structlog

from sendguard.deliver.smtp import PinnedUpstream, SmtpUpstream
from sendguard.errors import ConfigError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated client: its user name, and its own upstream session in pass-through."""

    login: str
    upstream: PinnedUpstream | None = None


class Authenticator(Protocol):
    """Checks one user name and password."""

    async def check(self, username: str, password: str) -> Identity | None:
        """The identity, or None when the credentials are wrong; OSError/TimeoutError when
        the check itself could not be made (454, not counted as a failure)."""
        ...

    def knows(self, username: str) -> bool:
        """True when `username` is a real login name (so logs may name it)."""
        ...


class UsersFile:
    """Local users with argon2id hashes, reloaded when the file's mtime changes."""

    def __init__(self, path: Path, *, threads: int = 4) -> None:
        self.path = path
        self._hasher = argon2.PasswordHasher()
        self._mtime = -1.0
        self._users: dict[str, str] = {}
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

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
        """Verify on this file's own threads; a wrong or unknown user costs the same time."""
        digest = self._load().get(username)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="sendguard-auth")
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._pool, self._verify, digest, password)
        return Identity(login=username) if ok else None

    def knows(self, username: str) -> bool:
        """True when the users file has this name."""
        return username in self._load()

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

    def __init__(
        self, upstream: SmtpUpstream, *, known: Callable[[str], bool] | None = None
    ) -> None:
        self.upstream = upstream
        self._known = known

    async def check(self, username: str, password: str) -> Identity | None:
        """Log in upstream; the resulting session will carry this client's mail."""
        try:
            pinned = await self.upstream.authenticate(username, password)
        except aiosmtplib.SMTPException as exc:
            # Not an answer about the password (no STARTTLS, 4xx, dropped): 454, try later.
            raise ConnectionError(f"upstream: {type(exc).__name__}") from exc
        return Identity(login=username, upstream=pinned) if pinned else None

    def knows(self, username: str) -> bool:
        """True when the policy's ``[people]`` lists this login."""
        return self._known is not None and self._known(username)
