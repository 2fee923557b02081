"""Several relay processes on the same ports, so one node uses every core.

Each child is a complete relay (`app.serve`) binding the listeners with SO_REUSEPORT, so the
kernel spreads connections over them; they share nothing but the store. The parent forks
before any event loop or thread exists, forwards SIGTERM/SIGINT/SIGHUP to the children, and
restarts a child that died unexpectedly (not during shutdown). It exits with the worst exit
code of its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import time

import structlog

from sendguard.ops.metrics import mark_process_dead
from sendguard.settings import Settings

log = structlog.get_logger(__name__)

_RESTART_PAUSE = 1.0
_QUICK_DEATH = 10.0
"""A worker that exits within this many seconds of starting counts towards a crash loop."""
_MAX_QUICK_DEATHS = 5


def worker_count(settings: Settings) -> int:
    """The configured number of relay processes; 0 means one per core."""
    return settings.workers if settings.workers > 0 else max(1, os.cpu_count() or 1)


def _spawn(settings: Settings) -> int:
    pid = os.fork()
    if pid == 0:  # the child: a whole relay of its own
        # Imported in the child, after the fork: prometheus-client chooses its multi-process
        # mode at first import (`sendguard serve` sets it up), and the parent stays small.
        from sendguard.app import serve

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        code = 1
        try:
            code = asyncio.run(serve(settings))
        except BaseException:  # the child must say why it died before os._exit hides it
            log.exception("worker_failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return pid


def preload(settings: Settings) -> None:
    """Import and warm the inspection stack once, here, before forking.

    Every relay process inspects plain mail itself, which imports the extractors and fills
    module-level caches on first use (~25 MB each). Done in the parent, those pages are
    shared copy-on-write by all relay processes; `gc.freeze` keeps the collector from
    touching (and so copying) them in the children.
    """
    from sendguard.inspect import inspect_sync
    from sendguard.model import Envelope
    from sendguard.policy.load import load_policy

    envelope = Envelope(mail_from="warm-up@sendguard.invalid", rcpt_tos=("a@b.invalid",))
    try:
        policy = load_policy(settings.policy_dir)
        inspect_sync(envelope, _WARM_UP, policy, settings.limits, offline=True)
    except Exception as exc:  # noqa: BLE001  # only a warm-up: the relay processes decide
        log.warning("preload_failed", error=type(exc).__name__)
    gc.collect()
    gc.freeze()


_WARM_UP = (
    b"From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: =?UTF-8?B?44OG44K544OI?=\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    + "個人番号 123456789018 電話 090-1234-5678 東京都千代田区 社外秘\r\n".encode()
)


def supervise(settings: Settings) -> int:
    """Run `worker_count` relay processes until SIGTERM; returns the exit code."""
    count = worker_count(settings)
    preload(settings)
    children = {_spawn(settings) for _ in range(count)}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    log.info("supervisor_started", workers=count)
    worst = 0
    started = {pid: time.monotonic() for pid in children}
    quick_deaths = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        mark_process_dead(pid)
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, abs(code))
        if stopping:
            continue
        log.error("worker_died", pid=pid, exit_code=code)
        lived = time.monotonic() - started.pop(pid, 0.0)
        quick_deaths = quick_deaths + 1 if lived < _QUICK_DEATH else 0
        if quick_deaths >= _MAX_QUICK_DEATHS:
            # Dying right after start again and again is not a crash to ride out (the
            # port is taken, the store is unreachable...): stop and say so.
            log.error("workers_crash_looping", deaths=quick_deaths)
            stopping = True
            forward(signal.SIGTERM, None)
            continue
        time.sleep(_RESTART_PAUSE)
        new = _spawn(settings)
        children.add(new)
        started[new] = time.monotonic()
    log.info("supervisor_finished", exit_code=worst)
    return worst
