"""Wiring: settings → upstream, policy, inspector, store, worker, pipeline, intake.

Nothing here is global: `build_app` constructs every part from the settings and passes it
in. `App.start` opens what needs I/O (store, extraction pool, upstream probe, listeners) and
starts the background tasks (queue worker, policy watcher); `App.reload` is SIGHUP;
`App.stop` drains (SIGTERM). `serve` runs one relay process until a signal says stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog

from sendguard.actions import apply_verdict, reject_reply
from sendguard.deliver import MaildirUpstream, SmtpUpstream, open_queue_upstream, open_upstream
from sendguard.entry import Entry
from sendguard.errors import ConfigError, StoreError
from sendguard.history.service import History
from sendguard.history.store import HistoryStore
from sendguard.inspect import Inspector
from sendguard.intake.auth import Authenticator, PassThrough, UsersFile
from sendguard.intake.budget import ByteBudget
from sendguard.intake.guard import LoginGuard
from sendguard.intake.handler import IntakeOptions, RelayHandler
from sendguard.intake.server import Intake, RelaySMTP, tls_context
from sendguard.intake.spool import Spool
from sendguard.model import Envelope, Organisation, Outgoing, Reply, Verdict
from sendguard.notify.notifier import Notifier
from sendguard.ops.http import Checks, OpsServer
from sendguard.parse.addresses import registrable_domain
from sendguard.parse.pool import ExtractionPool
from sendguard.pipeline import Pipeline, PipelineOptions
from sendguard.policy.holder import PolicyHolder
from sendguard.policy.load import LoadedPolicy
from sendguard.queue.auditkey import (
    anchor_path,
    default_key_path,
    key_path,
    load_or_create_key,
    write_anchor,
)
from sendguard.queue.backends import open_configured_store
from sendguard.queue.migrations import log_migration
from sendguard.queue.store import AuditHead, Store
from sendguard.queue.worker import Worker
from sendguard.review.reminders import Reminders
from sendguard.settings import Settings
from sendguard.web import mount as web_mount
from sendguard.web.console import ConsoleParts

log = structlog.get_logger(__name__)

_STOP_STEP_TIMEOUT = 10.0
AnyUpstream = MaildirUpstream | SmtpUpstream


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
    queue_upstream: AnyUpstream | None = None
    """Carries released mail, notices and bounces; None in pass-through without
    ``queue_upstream``, where nothing may be queued (`_Unqueueable`)."""
    pool: ExtractionPool | None = None
    bound: list[tuple[str, int]] = field(default_factory=list)
    web_bound: list[tuple[str, int]] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    ops: OpsServer | None = None
    _anchor_file: Path | None = None
    _anchored: AuditHead | None = None
    history: History | None = None
    spool: Spool | None = None

    async def start(self) -> list[tuple[str, int]]:
        """Open the store and the extraction pool, probe the upstream, start the worker, listen."""
        registrable_domain("example.co.jp")  # load the public suffix list before any client
        key_file = key_path(self.settings.store, self.settings.audit_key)
        audit_key, created = await asyncio.to_thread(load_or_create_key, key_file)
        if created:
            log.warning("audit_key_created", file=str(key_file), key_id=audit_key.key_id)
        self.store = await open_configured_store(
            self.settings.store, self.settings.queue, audit_key=audit_key
        )
        log_migration(self.store.migrated_from, await self.store.schema_version())
        await self.store.seal_chain()
        self._anchor_file = anchor_path(key_file, self.settings.audit_anchor_file)
        unqueueable = self.queue_upstream is None
        self.pipeline.queue = _Unqueueable(self.store) if unqueueable else self.store
        await self._open_history()
        self.pool = ExtractionPool(
            workers=max(1, self.settings.extract_workers),
            memory_limit_bytes=self.settings.extract_memory_limit or None,
            idle_timeout=self.settings.extract_idle_timeout,
            # The fork server imports the whole inspection stack once; workers start warm.
            preload=("sendguard.parse", "sendguard.detect.registry", "sendguard.inspect"),
        )
        self.inspector.pool = self.pool
        await self.inspector.warm_up()
        await self._probe()
        key = await web_mount.link_key(self.settings) if web_mount.wanted(self.settings) else None
        if self.queue_upstream is None:
            # Entries already in the store wait for a node that can deliver them.
            log.warning("queue_worker_disabled", reason="passthrough without queue_upstream")
        else:
            notifier = Notifier(
                self.queue_upstream,
                self.settings.notify,
                hostname=self.settings.hostname,
                policy=lambda: self.policy.current,
                links=web_mount.notice_links(self.settings, key) if key else None,
            )
            if self.settings.notify.enabled and notifier.from_address() is None:
                log.warning(
                    "notice_sender_unknown",
                    hint="notices are not sent until SENDGUARD_NOTIFY__FROM_ADDRESS or the"
                    " policy's internal_domains is set",
                )
            worker = Worker(
                self.store,
                _Learning(self.queue_upstream, self.history)
                if self.history
                else self.queue_upstream,
                notifier,
                self.settings.queue,
                node_id=f"{self.settings.hostname}:{os.getpid()}",
                prepare=self.pipeline.prepare,  # the live path's own: one Prepare
            )
            self.tasks.append(asyncio.create_task(worker.run(), name="queue-worker"))
            reminders = Reminders(self.store, self.settings.queue)
            self.tasks.append(asyncio.create_task(reminders.run(), name="hold-reminders"))
        self.tasks.append(asyncio.create_task(self.policy.watch(), name="policy-watch"))
        self.tasks.append(asyncio.create_task(self._anchor_audit(), name="audit-anchor"))
        if self.spool is not None:
            await asyncio.to_thread(self.spool.open)  # leftovers of a crash go before we listen
        self.bound = await self.intake.start(self.settings.listen)
        if self.settings.web_listen:
            self.ops = OpsServer(
                Checks(
                    store=lambda: self.store,
                    policy_version=lambda: self.policy.current.version,
                    upstream_probe=self._upstream_check(),
                )
            )
            if key is not None and self.settings.web.console:
                web_mount.mount(self.ops.app, self._console_parts(key))
            self.web_bound = await self.ops.start(
                self.settings.web_listen, web_mount.tls_context(self.settings)
            )
        return self.bound

    def _console_parts(self, key: bytes) -> ConsoleParts:
        return ConsoleParts(
            store=lambda: self.store,
            people=lambda: self.policy.current.people,
            users=UsersFile(self.settings.users_file),
            web=self.settings.web,
            notify=self.settings.notify,
            key=key,
        )

    async def _open_history(self) -> None:
        """The correspondent history in the same database (tables ``history_*``)."""
        if not self.settings.history.enabled:
            return
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

    async def _anchor_audit(self) -> None:
        """Every `audit_anchor_interval` s: the audit log's head to the log and the anchor file."""
        while True:
            await self.anchor_once()
            await asyncio.sleep(self.settings.audit_anchor_interval)

    async def anchor_once(self) -> None:
        """Write the head if it moved: an ``audit_head`` event (SIEMs keep it) and the file
        (`sendguard audit verify --head-file`). Records cut off or re-chained before an
        anchored head are then detected."""
        if self.store is None or self._anchor_file is None:
            return
        try:
            head = await self.store.audit_head()
            if head is None or head == self._anchored:
                return
            await asyncio.to_thread(write_anchor, self._anchor_file, head)
        # An anchor is evidence, not a gate: mail keeps flowing; the next pass retries.
        except Exception as exc:  # noqa: BLE001
            log.error("audit_anchor_failed", file=str(self._anchor_file), error=str(exc))
            return
        self._anchored = head
        log.info(
            "audit_head",
            seq=head.seq,
            hash=head.hash,
            at=head.at.isoformat() if head.at else None,
            file=str(self._anchor_file),
        )

    async def _probe(self) -> None:
        """Say in the log whether the upstream(s) answer — the queue's logs in with its account."""
        queue = self.queue_upstream if self.queue_upstream is not self.upstream else None
        await asyncio.gather(_probe(self.upstream, "live"), _probe(queue, "queue"))

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
        steps.append(("anchor", self.anchor_once()))
        if self.ops is not None:
            steps.append(("web", self.ops.stop()))
        steps.append(("upstream", self.upstream.close()))
        if self.queue_upstream is not None and self.queue_upstream is not self.upstream:
            steps.append(("queue upstream", self.queue_upstream.close()))
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


async def _probe(upstream: AnyUpstream | None, role: str) -> None:
    if not isinstance(upstream, SmtpUpstream):
        return
    # Bounded: a dead upstream must not keep the relay from listening (it will 451).
    try:
        reply = await asyncio.wait_for(upstream.probe(), timeout=5)
    except TimeoutError:
        reply = Reply(451, "4.4.2 upstream probe timed out")
    log.info("upstream_probed", role=role, upstream=str(upstream.target), reply=str(reply))


class _Unqueueable:
    """The store as the live path sees it when nothing could deliver queued mail (pass-through
    without ``queue_upstream``): a hold or delay — a rule added by a reload, ``on_error=hold``
    — is answered 451 and the client keeps the message. Never accepted and then lost."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def enqueue(
        self,
        *,
        envelope: Envelope,
        data: bytes,
        verdict: Verdict,
        state: Literal["held", "delayed", "released"],
        release_at: dt.datetime | None = None,
        delivered_to: tuple[str, ...] = (),
        last_error: str = "",
    ) -> Entry:
        log.error("queue_upstream_missing", action=state, rule=verdict.rule_id)
        raise StoreError(
            f"{state} mail could never be delivered: pass-through has no queue upstream "
            "(set SENDGUARD_QUEUE_UPSTREAM)"
        )

    async def audit(
        self,
        event: str,
        *,
        actor: str,
        queue_id: str | None = None,
        transaction_id: str | None = None,
        details: Mapping[str, object],
    ) -> None:
        await self.store.audit(
            event, actor=actor, queue_id=queue_id, transaction_id=transaction_id, details=details
        )


def queueing_causes(loaded: LoadedPolicy, on_error: str) -> list[str]:
    """What can put mail in the queue: enforced hold/delay rules, and ``on_error=hold``."""
    causes = [
        f"rule {rule.id} ({rule.action})"
        for rule in loaded.policy.rules
        if rule.enabled and rule.mode == "enforce" and rule.action in ("hold", "delay")
    ]
    if on_error == "hold":
        causes.append("SENDGUARD_ON_ERROR=hold")
    return causes


def _require_queue_upstream(settings: Settings, policy: PolicyHolder) -> None:
    """Pass-through without a queue upstream may not start with a policy that queues mail."""
    causes = queueing_causes(policy.current, settings.on_error)
    if causes:
        shown = ", ".join(causes[:5]) + (f" and {len(causes) - 5} more" if len(causes) > 5 else "")
        raise ConfigError(
            f"auth_mode=passthrough can hold or delay mail ({shown}), but nothing could deliver "
            "it later: the users' passwords are never stored. Set SENDGUARD_QUEUE_UPSTREAM to "
            "an account that may send as every sender (e.g. smtp+starttls://relay%40example.co.jp"
            ":PASSWORD@smtp.office365.com:587 with SendAs rights, or a Microsoft 365 connector); "
            "it carries held, delayed and released mail, notices and bounces"
        )


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
    settings: Settings, upstream: AnyUpstream, policy: PolicyHolder
) -> Authenticator | None:
    if settings.auth_mode == "none":
        return None
    if settings.tls_cert is None:
        raise ConfigError(
            f"auth_mode={settings.auth_mode} needs tls_cert/tls_key: "
            "AUTH is only offered after STARTTLS"
        )
    if settings.auth_mode == "local":
        return UsersFile(settings.users_file, threads=settings.auth_limits.workers)
    if not isinstance(upstream, SmtpUpstream):
        raise ConfigError("auth_mode=passthrough needs an SMTP upstream, not maildir")
    if not upstream.target.encrypted and not settings.upstream_allow_plaintext:
        raise ConfigError(
            f"auth_mode=passthrough would send every user's password to {upstream.target} "
            "without TLS: use smtp+starttls:// or smtps:// (SENDGUARD_UPSTREAM_ALLOW_PLAINTEXT"
            "=true is for tests only)"
        )

    def listed(login: str) -> bool:
        return login.strip().casefold() in policy.current.people.listed

    return PassThrough(upstream, known=listed)


def build_app(settings: Settings) -> App:
    """Build every part from the settings; nothing is opened or started yet."""
    upstream = open_upstream(settings.upstream_options())
    queue_upstream = open_queue_upstream(settings.upstream_options(), upstream)
    policy = PolicyHolder(settings.policy_dir)  # raises PolicyError: a broken policy never serves
    if queue_upstream is None:
        _require_queue_upstream(settings, policy)
    inspector = Inspector(
        policy=policy,
        limits=settings.limits,
        network_timeout=settings.network_timeout,
        content_timeout=settings.scan_budget,
    )

    def prepare(
        data: bytes, verdict: Verdict, envelope: Envelope, organisation: Organisation | None
    ) -> tuple[Outgoing, ...]:
        # Live mail brings the organisation its inspection judged by; released mail (None)
        # is judged by the policy in force.
        organisation = organisation or policy.current.organisation
        keep_bcc = settings.bcc_header == "keep"
        return apply_verdict(data, verdict, envelope, organisation, keep_bcc=keep_bcc)

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
        authenticator=_authenticator(settings, upstream, policy),
        capabilities=upstream,
        people=lambda: policy.current.people,
        guard=LoginGuard(settings.auth_limits),
        budget=ByteBudget(inflight_budget(settings)),
    )
    spool = Spool(
        settings.spool_dir or default_key_path(settings.store).parent / "spool",
        settings.spool_threshold,
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
            reply_deadline=settings.reply_deadline,
            spool=spool,
            forwarders=settings.xforward_hosts,
        )

    return App(
        settings=settings,
        upstream=upstream,
        policy=policy,
        inspector=inspector,
        pipeline=pipeline,
        intake=Intake(factory, reuse_port=settings.workers != 1),
        queue_upstream=queue_upstream,
        spool=spool,
    )


def inflight_budget(settings: Settings) -> int:
    """`Settings.inflight_budget`, or by default a sixteenth of what the extraction processes
    may use: a message takes about four times its size there, and turns beyond what the
    workers can take at once would only wait (in memory) for a worker."""
    if settings.inflight_budget:
        return settings.inflight_budget
    return max(1, settings.extract_workers) * settings.extract_memory_limit // 16


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
