"""LoginGuard: failures per connection, address and login; the prioritised queue of checks."""

from __future__ import annotations

import asyncio

import pytest

from sendguard.intake.guard import GuardBusy, LoginGuard, LoginLimits


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Connection:
    """Stands for one client connection (the guard only needs a weak-referenceable key)."""


def test_connection_spent_after_per_connection_failures() -> None:
    guard = LoginGuard(LoginLimits(per_connection=3, per_address=100))
    conn = Connection()
    for expected in (1, 2):
        count, _ = guard.failed(conn, "192.0.2.1", "alice")
        assert count == expected and not guard.connection_spent(conn)
    guard.failed(conn, "192.0.2.1", "alice")
    assert guard.connection_spent(conn)
    assert not guard.connection_spent(Connection())


def test_address_blocked_until_its_failures_age_out() -> None:
    clock = Clock()
    guard = LoginGuard(LoginLimits(per_address=4, window=60), clock=clock)
    for _ in range(4):
        guard.failed(Connection(), "192.0.2.1", None)
        clock.now += 1
    assert guard.address_blocked("192.0.2.1")
    assert not guard.address_blocked("192.0.2.2")
    clock.now += 57  # the first failure is now 61 s old
    assert not guard.address_blocked("192.0.2.1")


def test_delay_doubles_with_the_address_failures_up_to_the_maximum() -> None:
    guard = LoginGuard(LoginLimits(per_address=100, fail_delay=0.5, max_delay=3))
    delays = [guard.failed(Connection(), "192.0.2.1", None)[1] for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_success_forgives_the_address() -> None:
    guard = LoginGuard(LoginLimits(per_address=3, fail_delay=1))
    for _ in range(2):
        guard.failed(Connection(), "192.0.2.1", "alice")
    guard.succeeded("192.0.2.1", "alice")
    assert guard.failed(Connection(), "192.0.2.1", "alice")[1] == 1


def test_login_blocked_except_from_its_homes() -> None:
    """A guesser spread over many addresses locks the login, but not at the user's own desk."""
    guard = LoginGuard(LoginLimits(per_login=5, per_address=100))
    guard.succeeded("10.0.0.7", "Alice")
    for n in range(5):
        guard.failed(Connection(), f"198.51.100.{n}", "alice")
    assert guard.login_blocked("alice", "198.51.100.99")
    assert guard.login_blocked("ALICE", "198.51.100.99")  # case-folded
    assert not guard.login_blocked("alice", "10.0.0.7")
    assert not guard.login_blocked("bob", "198.51.100.99")


def test_known_and_fingerprint() -> None:
    guard = LoginGuard()
    assert not guard.known("alice")
    guard.succeeded("10.0.0.7", "alice")
    assert guard.known("alice")
    digest = guard.fingerprint("hunter2-secret")
    assert digest == guard.fingerprint("hunter2-secret")
    assert "hunter2" not in digest and digest != LoginGuard().fingerprint("hunter2-secret")


def test_memory_is_bounded_per_key() -> None:
    guard = LoginGuard(LoginLimits(per_address=3))
    for _ in range(1000):
        guard.failed(Connection(), "192.0.2.1", "x")
    assert len(guard._by_address["192.0.2.1"].times) == 3


async def test_flooding_address_waits_behind_a_clean_one() -> None:
    """With one worker busy, 20 checks from a flooding address queue; a clean address's check
    queued after them runs next."""
    guard = LoginGuard(LoginLimits(workers=1, max_waiting=100))
    order: list[str] = []
    gate = asyncio.Event()

    async def check(address: str, name: str) -> None:
        async with guard.slot(address, "alice"):
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(check("192.0.2.1", "flood-0"))
    await asyncio.sleep(0)
    flood = [asyncio.create_task(check("192.0.2.1", f"flood-{n}")) for n in range(1, 21)]
    await asyncio.sleep(0)
    clean = asyncio.create_task(check("10.0.0.7", "clean"))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *flood, clean)
    assert order[:2] == ["flood-0", "clean"]
    assert sorted(order) == sorted(["clean", *(f"flood-{n}" for n in range(21))])


async def test_full_queue_refuses_suspect_attempts_but_queues_clean_ones() -> None:
    guard = LoginGuard(LoginLimits(workers=1, max_waiting=2))
    gate = asyncio.Event()

    async def check(address: str) -> None:
        async with guard.slot(address, "alice"):
            await gate.wait()

    tasks = [asyncio.create_task(check("192.0.2.1")) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(GuardBusy):
        async with guard.slot("192.0.2.1", "alice"):
            pass
    clean = asyncio.create_task(check("10.0.0.7"))  # no failures, nothing waiting: queued
    await asyncio.sleep(0)
    assert not clean.done()
    gate.set()
    await asyncio.gather(*tasks, clean)


async def test_cancelled_waiter_frees_its_place() -> None:
    guard = LoginGuard(LoginLimits(workers=1))
    gate = asyncio.Event()

    async def check(address: str) -> None:
        async with guard.slot(address, "alice"):
            await gate.wait()

    running = asyncio.create_task(check("192.0.2.1"))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(check("192.0.2.2"))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0)
    gate.set()
    await running
    async with asyncio.timeout(1):
        async with guard.slot("192.0.2.3", "alice"):
            pass
    assert guard._running == 0 and not guard._waiting and not guard._pending
