"""Wiring: settings → upstream, inspector, store, pipeline, intake; built here, passed in.

`App.start` binds the listeners; `App.stop` drains them (SIGTERM); `App.reload` is the SIGHUP
hook. `serve` runs one relay process until a signal says stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from typing import Any

import structlog

from sendguard.deliver import MaildirUpstream, SmtpUpstream, open_upstream
from sendguard.errors import ConfigError
from sendguard.intake.auth import Authenticator, PassThrough, UsersFile
from sendguard.intake.handler import IntakeOptions, RelayHandler
from sendguard.intake.server import Intake, RelaySMTP, tls_context
from sendguard.model import PASS_VERDICT, Envelope, Finding, Mail, Reply, Verdict
from sendguard.parse.addresses import registrable_domain
from sendguard.pipeline import Inspected, Pipeline, PipelineOptions
from sendguard.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Passed:
    """PLACEHOLDER until the policy stage is wired: every message passes unchanged."""

    mail: Mail = field(default_factory=Mail)
    findings: tuple[Finding, ...] = ()
    verdict: Verdict = PASS_VERDICT


class PassEverything:
    """PLACEHOLDER verdict function (no inspection) used until `sendguard.inspect` is wired."""

    async def inspect(self, envelope: Envelope, data: bytes) -> Inspected:
        """Every message passes."""
        return _Passed()


@dataclass(frozen=True, slots=True)
class _Copy:
    rcpt_tos: tuple[str, ...]
    data: bytes


def _unchanged(data: bytes, inspected: Inspected, envelope: Envelope) -> tuple[_Copy, ...]:
    return (_Copy(envelope.rcpt_tos, data),)


def _reject(verdict: Verdict, reference: str) -> Reply:
    return Reply(550, f"5.7.1 Message rejected by policy (ref {reference})")


@dataclass
class App:
    """One relay process: everything it owns, so it can be started, reloaded and stopped."""

    settings: Settings
    upstream: MaildirUpstream | SmtpUpstream
    pipeline: Pipeline
    intake: Intake
    bound: list[tuple[str, int]] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def start(self) -> list[tuple[str, int]]:
        """Probe the upstream (to learn its extensions) and bind the listeners."""
        if isinstance(self.upstream, SmtpUpstream):
            # Bounded: a dead upstream must not keep the relay from listening (it will 451).
            try:
                reply = await asyncio.wait_for(self.upstream.probe(), timeout=5)
            except TimeoutError:
                reply = Reply(451, "4.4.2 upstream probe timed out")
            log.info("upstream_probed", upstream=str(self.upstream.target), reply=str(reply))
        # Load the public suffix list now, not during the first client's transaction.
        registrable_domain("example.co.jp")
        self.bound = await self.intake.start(self.settings.listen)
        return self.bound

    def reload(self) -> None:
        """SIGHUP: reload what can change without a restart (policies, users file)."""
        log.info("reload_requested")

    async def stop(self) -> None:
        """Stop accepting, finish in-flight transactions within the grace period, close upstream."""
        log.info("shutdown_started", grace=self.settings.shutdown_grace)
        await self.intake.stop(self.settings.shutdown_grace)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.upstream.close()
        log.info("shutdown_finished")


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
    """Build every part from the settings; nothing is started yet."""
    upstream = open_upstream(settings)
    pipeline = Pipeline(
        inspector=PassEverything(),
        upstream=upstream,
        prepare=_unchanged,
        reject_reply=_reject,
        options=PipelineOptions(scan_budget=settings.scan_budget, on_error=settings.on_error),
    )
    handler = RelayHandler(
        pipeline,
        IntakeOptions(
            trusted_networks=settings.trusted_networks,
            max_recipients=settings.max_recipients,
            max_message_size=settings.max_message_size,
            line_policy=settings.line_policy,
        ),
        authenticator=_authenticator(settings, upstream),
        capabilities=upstream,
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
        pipeline=pipeline,
        intake=Intake(factory, reuse_port=settings.workers != 1),
    )


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> int:
    """Run one relay process until SIGTERM/SIGINT; SIGHUP reloads."""
    app = build_app(settings)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    log.info(
        "started",
        listeners=[f"{h}:{p}" for h, p in app.bound],
        upstream=str(getattr(app.upstream, "target", settings.upstream)),
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
