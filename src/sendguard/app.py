"""Wiring: settings → upstream, policy, inspector, store, worker, pipeline, intake.

Nothing here is global: `build_app` constructs every part from the settings and passes it
in. `App.start` opens what needs I/O (store, extraction pool, upstream probe, listeners) and
starts the background tasks (queue worker, policy watcher); `App.reload` is SIGHUP;
`App.stop` drains (SIGTERM). `serve` runs one relay process until a signal says stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from sendguard.actions import apply_stored_verdict, apply_verdict, reject_reply
from sendguard.deliver import MaildirUpstream, SmtpUpstream, open_upstream
from sendguard.errors import ConfigError
from sendguard.history.service import History
from sendguard.inspect import Inspector
from sendguard.intake.auth import Authenticator, PassThrough, UsersFile
from sendguard.intake.handler import IntakeOptions, RelayHandler
from sendguard.intake.server import Intake, RelaySMTP, tls_context
from sendguard.model import Envelope, Reply, Verdict
from sendguard.notify.notifier import Notifier
from sendguard.ops.http import Checks, OpsServer
from sendguard.parse.addresses import registrable_domain
from sendguard.parse.pool import ExtractionPool
from sendguard.pipeline import Inspected, Outgoing, Pipeline, PipelineOptions
from sendguard.policy.holder import PolicyHolder
from sendguard.queue.store import Entry, Store, open_configured_store
from sendguard.queue.worker import Worker
from sendguard.settings import Settings

log = structlog.get_logger(__name__)

_STOP_STEP_TIMEOUT = 10.0


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel until every task has ended.

    On Python 3.11 a cancellation that lands while an `asyncio.timeout`/`wait_for` expires
    can surface as TimeoutError, which the queue worker's catch-all (it must survive any
    single failure) then absorbs: one cancel() is not always enough, so it is repeated.
    """
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.5)


@dataclass
class App:
    """One relay process: everything it owns, so it can be started, reloaded and stopped."""

    settings: Settings
    upstream: MaildirUpstream | SmtpUpstream
    policy: PolicyHolder
    inspector: Inspector
    pipeline: Pipeline
    intake: Intake
    store: Store | None = None
    pool: ExtractionPool | None = None
    bound: list[tuple[str, int]] = field(default_factory=list)
    web_bound: list[tuple[str, int]] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    ops: OpsServer | None = None
    history: History | None = None

    async def start(self) -> list[tuple[str, int]]:
        """Open the store and the extraction pool, probe the upstream, start the worker, listen."""
        registrable_domain("example.co.jp")  # load the public suffix list before any client
        self.store = await open_configured_store(self.settings.store, self.settings.queue)
        self.pipeline.queue = self.store
        await self._open_history()
        self.pool = ExtractionPool(
            workers=max(1, self.settings.extract_workers),
            memory_limit_bytes=self.settings.extract_memory_limit or None,
            # The fork server imports the whole inspection stack once; workers start warm.
            preload=("sendguard.parse", "sendguard.detect.registry", "sendguard.inspect"),
        )
        self.inspector.pool = self.pool
        await self.inspector.warm_up()
        await self._probe()
        notifier = Notifier(
            self.upstream,
            self.settings.notify,
            hostname=self.settings.hostname,
            policy=lambda: self.policy.current,
        )
        if self.settings.notify.enabled and notifier.from_address() is None:
            log.warning(
                "notice_sender_unknown",
                hint="notices are not sent until SENDGUARD_NOTIFY__FROM_ADDRESS or the"
                " policy's internal_domains is set",
            )
        worker = Worker(
            self.store,
            _Learning(self.upstream, self.history) if self.history else self.upstream,
            notifier,
            self.settings.queue,
            node_id=f"{self.settings.hostname}:{os.getpid()}",
            prepare=self._prepare_release,
        )
        self.tasks.append(asyncio.create_task(worker.run(), name="queue-worker"))
        self.tasks.append(asyncio.create_task(self.policy.watch(), name="policy-watch"))
        self.bound = await self.intake.start(self.settings.listen)
        if self.settings.web_listen:
            self.ops = OpsServer(
                Checks(
                    store=lambda: self.store,
                    policy_version=lambda: self.policy.current.version,
                    upstream_probe=self._upstream_check(),
                )
            )
            self.web_bound = await self.ops.start(self.settings.web_listen)
        return self.bound

    async def _open_history(self) -> None:
        """The correspondent history in the same database (tables ``history_*``)."""
        if not self.settings.history.enabled:
            return
        from sendguard.history.store import HistoryStore

        store = await HistoryStore.open(self.settings.store, migrate=False)
        self.history = History(
            store, self.settings.history, lambda: self.policy.current.organisation
        )
        await self.history.start()
        self.pipeline.history = self.history
        self.inspector.history = self.history

    def _upstream_check(self) -> Callable[[], Awaitable[Reply]] | None:
        """Readiness of the upstream: an SMTP session opens (a maildir is checked on write)."""
        return self.upstream.probe if isinstance(self.upstream, SmtpUpstream) else None

    async def _probe(self) -> None:
        if not isinstance(self.upstream, SmtpUpstream):
            return
        # Bounded: a dead upstream must not keep the relay from listening (it will 451).
        try:
            reply = await asyncio.wait_for(self.upstream.probe(), timeout=5)
        except TimeoutError:
            reply = Reply(451, "4.4.2 upstream probe timed out")
        log.info("upstream_probed", upstream=str(self.upstream.target), reply=str(reply))

    def _prepare_release(self, entry: Entry) -> tuple[Outgoing, ...]:
        """A released delay/hold gets the edits its stored verdict asked for (e.g. To/Cc → Bcc)."""
        organisation = self.policy.current.organisation
        keep_bcc = self.settings.bcc_header == "keep"
        return apply_stored_verdict(
            entry.data, entry.verdict, entry.envelope, organisation, keep_bcc=keep_bcc
        )

    def reload(self) -> None:
        """SIGHUP: reload policies now (a broken file keeps the last good policy serving)."""
        log.info("reload_requested")
        self.policy.reload()

    async def stop(self) -> None:
        """Stop accepting, finish in-flight transactions within the grace period, close all."""
        log.info("shutdown_started", grace=self.settings.shutdown_grace)
        if self.ops is not None:
            self.ops.checks.draining = True  # /readyz says 503: load balancers stop sending
        await self.intake.stop(self.settings.shutdown_grace)
        # Each step is bounded: a stop must end, whatever a peer or a thread is doing.
        steps = [("audit", self.pipeline.drain()), ("tasks", _cancel_all(self.tasks))]
        if self.ops is not None:
            steps.append(("web", self.ops.stop()))
        steps.append(("upstream", self.upstream.close()))
        if self.history is not None:
            steps.append(("history", self.history.stop()))
        if self.pool is not None:
            steps.append(("pool", self.pool.close()))
        if self.store is not None:
            steps.append(("store", self.store.close()))
        for name, step in steps:
            try:
                await asyncio.wait_for(step, timeout=_STOP_STEP_TIMEOUT)
            except TimeoutError:
                log.error("shutdown_step_timed_out", step=name)
        log.info("shutdown_finished")


@dataclass(frozen=True)
class _Learning:
    """The queue worker's upstream: a released message that is delivered is also noted in
    the correspondent history (in the background, like live mail)."""

    upstream: MaildirUpstream | SmtpUpstream
    history: History

    async def send(self, envelope: Envelope, data: bytes, /) -> Reply:
        reply = await self.upstream.send(envelope, data)
        if reply.ok:
            self.history.delivered(envelope, data)
        return reply

    async def close(self) -> None:
        await self.upstream.close()


def _authenticator(
    settings: Settings, upstream: MaildirUpstream | SmtpUpstream
) -> Authenticator | None:
    if settings.auth_mode == "none":
        return None
    if settings.tls_cert is None:
        raise ConfigError(
            f"auth_mode={settings.auth_mode} needs tls_cert/tls_key: "
            "AUTH is only offered after STARTTLS"
        )
    if settings.auth_mode == "local":
        return UsersFile(settings.users_file)
    if not isinstance(upstream, SmtpUpstream):
        raise ConfigError("auth_mode=passthrough needs an SMTP upstream, not maildir")
    return PassThrough(upstream)


def build_app(settings: Settings) -> App:
    """Build every part from the settings; nothing is opened or started yet."""
    upstream = open_upstream(settings)
    policy = PolicyHolder(settings.policy_dir)  # raises PolicyError: a broken policy never serves
    inspector = Inspector(
        policy=policy,
        limits=settings.limits,
        network_timeout=settings.network_timeout,
        content_timeout=settings.scan_budget,
    )

    def prepare(data: bytes, inspected: Inspected, envelope: Envelope) -> tuple[Outgoing, ...]:
        organisation = getattr(inspected, "organisation", policy.current.organisation)
        keep_bcc = settings.bcc_header == "keep"
        return apply_verdict(data, inspected, envelope, organisation, keep_bcc=keep_bcc)

    def reject(verdict: Verdict, reference: str) -> Reply:
        soft = settings.soft_reject or policy.current.policy.settings.soft_reject
        return reject_reply(verdict, reference, soft=soft)

    pipeline = Pipeline(
        inspector=inspector,
        upstream=upstream,
        prepare=prepare,
        reject_reply=reject,
        options=PipelineOptions(scan_budget=settings.scan_budget, on_error=settings.on_error),
    )
    handler = RelayHandler(
        pipeline,
        IntakeOptions(
            trusted_networks=settings.trusted_networks,
            max_recipients=settings.max_recipients,
            max_message_size=settings.max_message_size,
            line_policy=settings.line_policy,
            routing_addresses=settings.routing_addresses,
        ),
        authenticator=_authenticator(settings, upstream),
        capabilities=upstream,
        people=lambda: policy.current.people,
    )
    tls = tls_context(
        str(settings.tls_cert) if settings.tls_cert else None,
        str(settings.tls_key) if settings.tls_key else None,
    )

    def factory(intake: Intake) -> RelaySMTP:
        return RelaySMTP(
            intake,
            handler,
            hostname=settings.hostname,
            ident="sendguard",
            decode_data=False,
            enable_SMTPUTF8=True,
            data_size_limit=settings.max_message_size,
            tls_context=tls,
            require_starttls=False,
            auth_required=False,
            auth_require_tls=True,
            timeout=settings.smtp_timeout,
        )

    return App(
        settings=settings,
        upstream=upstream,
        policy=policy,
        inspector=inspector,
        pipeline=pipeline,
        intake=Intake(factory, reuse_port=settings.workers != 1),
    )


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> int:
    """Run one relay process until SIGTERM/SIGINT; SIGHUP reloads."""
    app = build_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before start(): once a listener is up, a SIGHUP or SIGTERM must never meet the
    # default action (terminate) — that would drop transactions in flight.
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    await app.start()
    log.info(
        "started",
        listeners=[f"{h}:{p}" for h, p in app.bound],
        upstream=str(getattr(app.upstream, "target", settings.upstream)),
        policy_version=app.policy.current.version[:12],
    )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        # Handlers stay installed while draining: a second SIGTERM must not kill in-flight mail.
        await app.stop()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    return 0
