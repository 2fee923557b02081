"""Limits on SMTP AUTH: password guessing is slowed, then cut off; a flood cannot starve logins.

Every check (argon2 in ``local`` mode, a login to the upstream in ``passthrough``) goes
through one `LoginGuard`, which keeps, per relay process:

- failures per **connection**: after ``per_connection`` the connection gets ``421`` and is
  closed (a client must reconnect, and reconnecting costs the other limits);
- failures per **client address** within ``window``: each failure waits ``fail_delay``,
  doubling up to ``max_delay``; after ``per_address`` the address gets ``421`` at every AUTH
  until its failures age out — without any password being checked;
- failures per **login** (any address) within ``window``: after ``per_login`` that login is
  refused (``454``) — except from an address where it has logged in before, so a guesser
  spread over many addresses cannot lock a user out of their own desk;
- a bounded number of checks in flight (``workers``), at most one per address: the rest wait
  in a queue ordered by how suspect their address is (its recent failures plus its checks
  already waiting), so an address that floods the relay uses one worker and waits behind
  everyone else; when more than ``max_waiting`` wait, suspect attempts get ``454`` at once.

Counts live in this process only: with ``SENDGUARD_WORKERS=N`` an address may make up to N
times the limits (connections are spread over the processes by the kernel).

Log events name a login only when it is known (a local user, a ``[people]`` entry, or one
that has logged in here); otherwise they carry a keyed hash, so a password typed into the
user-name field never reaches the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

Clock = Callable[[], float]
_MAX_KEYS = 50_000
"""Addresses/logins remembered at most; a flood of random names cannot grow memory."""


class LoginLimits(BaseModel):
    """``SENDGUARD_AUTH_LIMITS__*``: how failed logins are slowed and cut off (per process)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_connection: int = Field(default=3, ge=1)
    """Failed AUTH attempts on one connection; the last one is answered 421 and the
    connection closed."""
    per_address: int = Field(default=10, ge=1)
    """Failures from one client address within `window`; then the address gets 421 at AUTH
    until they age out."""
    per_login: int = Field(default=20, ge=1)
    """Failures for one user name (from any address) within `window`; then it is refused
    (454) except from addresses it has logged in from."""
    window: float = Field(default=900.0, gt=0)
    """Seconds a failure is remembered."""
    fail_delay: float = Field(default=1.0, ge=0)
    """Seconds before answering a failure; doubles with each failure of the address."""
    max_delay: float = Field(default=8.0, ge=0)
    """Upper bound of that delay."""
    workers: int = Field(default=4, ge=1)
    """Checks in flight at once (argon2 threads, or logins to the upstream in pass-through)."""
    max_waiting: int = Field(default=64, ge=0)
    """Checks waiting for a worker beyond which attempts from addresses with failures or
    other waiting checks get 454 at once."""


class GuardBusy(Exception):
    """Too many checks waiting, and this attempt is not a clean one: answer 454."""


@dataclass(slots=True)
class _Failures:
    """The last `limit` failure times of one key: bounded, whatever the attacker does."""

    times: deque[float]

    def recent(self, now: float, window: float) -> int:
        cutoff = now - window
        while self.times and self.times[0] <= cutoff:
            self.times.popleft()
        return len(self.times)


@dataclass(order=True, slots=True)
class _Waiter:
    priority: tuple[int, int, int]
    """(0 from a login's home else 1, the address's failures and checks waiting, arrival)."""
    address: str = field(compare=False)
    future: asyncio.Future[None] = field(
        compare=False, default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class LoginGuard:
    """The limits and the bounded, prioritised queue of checks of one relay process."""

    def __init__(self, limits: LoginLimits | None = None, *, clock: Clock = time.monotonic) -> None:
        self.limits = limits or LoginLimits()
        self._clock = clock
        self._by_address: dict[str, _Failures] = {}
        self._by_login: dict[str, _Failures] = {}
        self._by_connection: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._homes: dict[str, dict[str, float]] = {}
        """login → addresses it logged in from (and when): exempt from the login limit."""
        self._pending: dict[str, int] = {}
        self._running = 0
        self._busy: set[str] = set()
        """Addresses with a check running: one at a time each, so one address cannot take
        every worker."""
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()
        self._key = os.urandom(32)

    # ------------------------------------------------------------------ decisions

    def address_blocked(self, address: str) -> bool:
        """True when `address` has used up its failures: 421 without checking anything."""
        failures = self._by_address.get(address)
        now = self._clock()
        return failures is not None and failures.recent(now, self.limits.window) >= (
            self.limits.per_address
        )

    def login_blocked(self, login: str, address: str) -> bool:
        """True when `login` has used up its failures and `address` is not one of its homes."""
        key = login.casefold()
        failures = self._by_login.get(key)
        if failures is None:
            return False
        now = self._clock()
        if failures.recent(now, self.limits.window) < self.limits.per_login:
            return False
        return address not in self._homes.get(key, {})

    def failed(self, connection: object, address: str, login: str | None) -> tuple[int, float]:
        """Record a failure; returns the connection's failures and the delay to wait."""
        now = self._clock()
        by_address = _remember(self._by_address, address, self.limits.per_address)
        by_address.times.append(now)
        if login is not None:
            _remember(self._by_login, login.casefold(), self.limits.per_login).times.append(now)
        count = self._by_connection.get(connection, 0) + 1
        self._by_connection[connection] = count
        recent = by_address.recent(now, self.limits.window)
        delay = min(self.limits.fail_delay * 2 ** max(recent - 1, 0), self.limits.max_delay)
        return count, delay

    def refused(self, connection: object) -> bool:
        """Count an attempt refused unchecked (454, busy) on the connection; True when spent."""
        self._by_connection[connection] = self._by_connection.get(connection, 0) + 1
        return self.connection_spent(connection)

    def connection_spent(self, connection: object) -> bool:
        """True when this connection has had its last failure."""
        return self._by_connection.get(connection, 0) >= self.limits.per_connection

    def succeeded(self, address: str, login: str) -> None:
        """A good login: the address is one of the login's homes, and its failures are forgiven."""
        self._by_address.pop(address, None)
        homes = self._homes.setdefault(login.casefold(), {})
        homes[address] = self._clock()
        if len(homes) > 64:  # the oldest home goes first
            homes.pop(min(homes, key=homes.__getitem__))
        if len(self._homes) > _MAX_KEYS:
            self._homes.pop(next(iter(self._homes)))

    def known(self, login: str) -> bool:
        """True when `login` has logged in here (so it is a name, not a mistyped password)."""
        return login.casefold() in self._homes

    def fingerprint(self, login: str) -> str:
        """A keyed hash of a login that may be a password: correlates attempts in this process."""
        digest = hmac.new(self._key, login.encode("utf-8", "replace"), hashlib.sha256)
        return digest.hexdigest()[:16]

    # ------------------------------------------------------------------ the queue of checks

    @contextlib.asynccontextmanager
    async def slot(self, address: str, login: str) -> AsyncIterator[None]:
        """Wait for a worker: one check per address at a time, and addresses with failures or
        other checks waiting go last. Raises `GuardBusy` when the queue is full and this
        attempt is suspect."""
        now = self._clock()
        failures = self._by_address.get(address)
        recent = failures.recent(now, self.limits.window) if failures else 0
        load = recent + self._pending.get(address, 0)
        home = address in self._homes.get(login.casefold(), {})
        if len(self._waiting) >= self.limits.max_waiting and load > 0 and not home:
            raise GuardBusy  # a clean attempt, or one from a login's home, always waits its turn
        self._pending[address] = self._pending.get(address, 0) + 1
        try:
            if self._running < self.limits.workers and address not in self._busy:
                self._start(address)  # every waiter is held back by its own address's check
            else:
                await self._wait(_Waiter((0 if home else 1, load, next(self._order)), address))
            try:
                yield
            finally:
                self._finish(address)
        finally:
            left = self._pending[address] - 1
            if left:
                self._pending[address] = left
            else:
                del self._pending[address]

    def _start(self, address: str) -> None:
        self._running += 1
        self._busy.add(address)

    def _finish(self, address: str) -> None:
        self._running -= 1
        self._busy.discard(address)
        self._wake()

    async def _wait(self, waiter: _Waiter) -> None:
        self._waiting.append(waiter)
        try:
            await waiter.future
        except BaseException:
            if waiter.future.done() and not waiter.future.cancelled():
                self._finish(waiter.address)  # given the slot just as it was cancelled
            else:
                self._waiting.remove(waiter)
            raise

    def _wake(self) -> None:
        """Start the best waiters whose address has no check running, while workers are free."""
        while self._running < self.limits.workers:
            ready = [w for w in self._waiting if w.address not in self._busy]
            if not ready:
                return
            best = min(ready)
            self._waiting.remove(best)
            self._start(best.address)
            best.future.set_result(None)


def _remember(table: dict[str, _Failures], key: str, limit: int) -> _Failures:
    found = table.get(key)
    if found is None:
        if len(table) >= _MAX_KEYS:
            table.pop(next(iter(table)))  # the longest-known key goes first
        found = table[key] = _Failures(deque(maxlen=limit))
    return found
