"""The run lock that keeps an ``exclusive`` test alone under pytest-xdist (tests/support/
parallel.py). Each holder opens the lock files itself, as each worker does: `flock` locks
belong to open files, so threads with their own `RunLock` exclude each other as processes do.
"""

from __future__ import annotations

import fcntl
import threading
import time
from pathlib import Path

from tests.support.parallel import RunLock


class Holder(threading.Thread):
    """Takes the lock (shared or exclusive), says so, and holds it until let go."""

    def __init__(self, directory: Path, *, exclusive: bool) -> None:
        super().__init__(daemon=True)
        self.lock = RunLock(directory)
        self.exclusive = exclusive
        self.holding = threading.Event()
        self.let_go = threading.Event()

    def run(self) -> None:
        with self.lock.hold(exclusive=self.exclusive):
            self.holding.set()
            self.let_go.wait(30)
        self.lock.close()

    def finish(self) -> None:
        self.let_go.set()
        self.join(30)


def gate_taken(directory: Path) -> bool:
    """True once somebody holds the gate (an exclusive holder waiting for its turn)."""
    deadline = time.monotonic() + 10
    with (directory / "gate.lock").open("ab") as gate:
        while time.monotonic() < deadline:
            try:
                fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(gate, fcntl.LOCK_UN)
            time.sleep(0.01)
    return False


def test_an_exclusive_holder_runs_alone_and_shared_holders_together(tmp_path: Path) -> None:
    """Shared holders overlap; an exclusive one waits for them, and a shared one asking while
    it waits or runs waits for it (the gate: it is not overtaken)."""
    first, second = (Holder(tmp_path, exclusive=False) for _ in range(2))
    first.start()
    second.start()
    assert first.holding.wait(10) and second.holding.wait(10)

    alone = Holder(tmp_path, exclusive=True)
    alone.start()
    assert gate_taken(tmp_path)
    assert not alone.holding.wait(0.3)  # the shared holders still run
    late = Holder(tmp_path, exclusive=False)
    late.start()
    first.finish()
    assert not alone.holding.wait(0.3)  # one shared holder still runs
    second.finish()
    assert alone.holding.wait(10)
    assert not late.holding.wait(0.3)  # it asked after the exclusive holder: it waits
    alone.finish()
    assert late.holding.wait(10)
    late.finish()
