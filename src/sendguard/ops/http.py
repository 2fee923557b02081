"""The relay's HTTP listener: ``/healthz``, ``/readyz`` and ``/metrics`` (aiohttp).

It runs in every relay process on the same loop as SMTP, bound with SO_REUSEPORT like the
SMTP listeners, so an orchestrator's probe reaches a live relay process, and its handlers
only read: a probe or a scrape costs one store query and never touches mail in flight.

aiohttp rather than an ASGI server: its `AppRunner`/`SockSite` are the documented way to
embed a server in a loop the application owns, with no signal handlers of its own — the
relay's SIGTERM/SIGHUP handling stays the only one.

- ``/healthz``: the process and its event loop answer (liveness; no dependencies checked).
- ``/readyz``: the store answers, a policy is loaded, the upstream is reachable — each within
  a deadline; 503 with the failing check while draining (SIGTERM) or when one fails.
- ``/metrics``: Prometheus text for the whole node (`sendguard.ops.metrics`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from aiohttp import web

from sendguard.model import Listener, Reply
from sendguard.ops import metrics

log = structlog.get_logger(__name__)

_UPSTREAM_CHECK_EVERY = 15.0
"""Seconds a successful upstream check is reused: probes arrive every few seconds and must not
open an upstream session each time."""


class Depth(Protocol):
    """The part of the store the listener reads."""

    async def depth(self) -> tuple[dict[str, int], dt.datetime | None]: ...


@dataclass
class Checks:
    """What readiness looks at; callables so that the listener never holds stale parts."""

    store: Callable[[], Depth | None]
    policy_version: Callable[[], str | None]
    upstream_probe: Callable[[], Awaitable[Reply]] | None
    deadline: float = 3.0
    draining: bool = False
    _upstream_ok_at: float = field(default=-1e9, repr=False)

    async def run(self) -> dict[str, str]:
        """Each check's result, ``ok`` or why not."""
        results = {"process": "draining" if self.draining else "ok"}
        results["store"] = await self._bounded(self._store())
        results["policy"] = "ok" if self.policy_version() else "no policy loaded"
        results["upstream"] = await self._bounded(self._upstream())
        return results

    async def _bounded(self, check: Awaitable[str]) -> str:
        try:
            return await asyncio.wait_for(check, timeout=self.deadline)
        except TimeoutError:
            return f"no answer within {self.deadline:g}s"
        except Exception as exc:  # noqa: BLE001  # any failure is a reason to be unready
            return f"{type(exc).__name__}: {exc}"[:200]

    async def _store(self) -> str:
        store = self.store()
        if store is None:
            return "not open"
        await store.depth()
        return "ok"

    async def _upstream(self) -> str:
        if self.upstream_probe is None:
            return "ok"
        if time.monotonic() - self._upstream_ok_at < _UPSTREAM_CHECK_EVERY:
            return "ok"
        reply = await self.upstream_probe()
        if not reply.ok:
            return f"{reply.code} {reply.text}"[:200]
        self._upstream_ok_at = time.monotonic()
        return "ok"


class OpsServer:
    """The HTTP listener of one relay process."""

    def __init__(self, checks: Checks) -> None:
        self.checks = checks
        # Public so that the review console (`sendguard.web`) mounts its sub-application
        # here before `start`; these three routes stay unauthenticated.
        self.app = web.Application()
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/readyz", self._readyz)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self._sockets: list[socket.socket] = []

    async def start(
        self, listeners: tuple[Listener, ...], ssl_context: ssl.SSLContext | None = None
    ) -> list[tuple[str, int]]:
        """Bind every listener (SO_REUSEPORT), with TLS when `ssl_context` is given;
        returns the bound (host, port) pairs."""
        await self._runner.setup()
        bound: list[tuple[str, int]] = []
        for listener in listeners:
            sock = _reuse_port_socket(listener)
            self._sockets.append(sock)
            await web.SockSite(self._runner, sock, ssl_context=ssl_context).start()
            host, port = sock.getsockname()[:2]
            bound.append((host, port))
            log.info("web_listening", address=f"{host}:{port}")
        return bound

    async def stop(self) -> None:
        """Close the listeners and finish requests in flight."""
        await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        results = await self.checks.run()
        ready = all(v == "ok" for v in results.values())
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        depth: metrics.QueueDepth | None = None
        store = self.checks.store()
        if store is not None:
            try:
                counts, oldest = await asyncio.wait_for(store.depth(), self.checks.deadline)
            except Exception as exc:  # noqa: BLE001  # the other metrics are still worth serving
                log.warning("metrics_queue_depth_failed", error=type(exc).__name__)
            else:
                age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else None
                depth = metrics.QueueDepth(by_state=counts, oldest_held_seconds=age)
        body, content_type = await asyncio.to_thread(metrics.exposition, depth)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response


def _reuse_port_socket(listener: Listener) -> socket.socket:
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Every relay process binds the same port; the kernel spreads probes and scrapes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((listener.host, listener.port))
    sock.listen(64)
    sock.setblocking(False)
    return sock
