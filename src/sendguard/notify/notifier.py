"""Notices to senders and reviewers, and bounces, sent straight through the upstream.

The worker drains the store's outbox and calls `Notifier.send` for each notice; nothing
here touches the store. Notices go to the upstream directly (never back through the relay,
so they are never inspected or held) from the configured address, and carry
``X-Sendguard-Notification: yes`` and ``Auto-Submitted`` so mail loops and auto-replies
stop. Each method returns the upstream's reply; the worker retries a 4xx.
"""

from __future__ import annotations

import os
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid

import structlog

from sendguard.deliver import Upstream
from sendguard.model import Envelope, Reply
from sendguard.notify.dsn import build_dsn
from sendguard.notify.render import render, reviewers_of
from sendguard.notify.settings import NotifySettings
from sendguard.queue.store import Entry, NoticeKind

log = structlog.get_logger(__name__)
NOTHING_TO_SEND = Reply(250, "2.0.0 nothing to send")


class Notifier:
    """Composes and sends every notice about a queue entry."""

    def __init__(
        self, upstream: Upstream, settings: NotifySettings, *, hostname: str | None = None
    ) -> None:
        self._upstream = upstream
        self._settings = settings
        self._hostname = hostname or os.uname().nodename

    async def send(self, kind: NoticeKind, entry: Entry) -> Reply:
        """Send notice `kind` about `entry` (what the worker's outbox calls); never raises."""
        try:
            if kind == "bounce":
                return await self.bounce(entry)
            if kind == "reviewers":
                return await self.notify_reviewers(entry)
            return await self._to_sender(kind, entry)
        except Exception as exc:  # noqa: BLE001  # a bad template or address must not stop the outbox
            log.error("notice_compose_error", kind=kind, queue_id=entry.id, error=repr(exc))
            return Reply(451, f"4.3.0 notice not composed: {type(exc).__name__}")

    async def notify_held(self, entry: Entry) -> Reply:
        """Tell the sender the message is held, why, and who reviews it."""
        return await self._to_sender("held", entry)

    async def notify_delayed(self, entry: Entry) -> Reply:
        """Tell the sender when the message goes out and how to cancel it."""
        return await self._to_sender("delayed", entry)

    async def notify_released(self, entry: Entry) -> Reply:
        """Tell the sender a reviewer released the message."""
        return await self._to_sender("released", entry)

    async def notify_rejected(self, entry: Entry) -> Reply:
        """Tell the sender a reviewer rejected the message, and the reason given."""
        return await self._to_sender("rejected", entry)

    async def notify_expired(self, entry: Entry) -> Reply:
        """Tell the sender nobody decided in time, so the message was not sent."""
        return await self._to_sender("expired", entry)

    async def notify_reviewers(self, entry: Entry) -> Reply:
        """Ask the reviewers (the rule's, else the configured default) to decide."""
        reviewers = reviewers_of(entry, self._settings)
        if not reviewers:
            log.warning("notice_without_reviewers", queue_id=entry.id)
            return NOTHING_TO_SEND
        return await self._deliver("reviewers", entry, reviewers)

    async def bounce(self, entry: Entry) -> Reply:
        """Send a DSN (multipart/report) from ``<>`` to the sender of a failed message.

        A last error that is not a 5xx means retries ran out (status 4.4.7)."""
        if not entry.envelope.mail_from:
            return NOTHING_TO_SEND  # never bounce a bounce (RFC 5321 §4.5.5)
        text = render("bounce", entry, self._settings)
        data = build_dsn(
            entry,
            hostname=self._hostname,
            from_name=self._settings.bounce_from_name,
            subject=text.subject,
            human=text.body,
            gave_up=not entry.last_error.startswith("5"),
        )
        envelope = Envelope(
            mail_from="", rcpt_tos=(entry.envelope.mail_from,), transaction_id=f"dsn-{entry.id}"
        )
        return await self._send(envelope, data, kind="bounce", queue_id=entry.id)

    def compose(self, kind: NoticeKind, entry: Entry, to: tuple[str, ...]) -> bytes:
        """The complete notice message (CRLF), without sending it."""
        text = render(kind, entry, self._settings)
        msg = EmailMessage(policy=SMTP)
        msg["From"] = Address(self._settings.from_name, addr_spec=self._settings.from_address)
        msg["To"] = ", ".join(to)
        msg["Subject"] = text.subject
        msg["Message-ID"] = make_msgid(domain=self._hostname)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Sendguard-Notification"] = "yes"
        msg["X-Sendguard-Queue-ID"] = entry.id
        msg.set_content(text.body, charset="utf-8")
        return msg.as_bytes()

    async def _to_sender(self, kind: NoticeKind, entry: Entry) -> Reply:
        sender = entry.envelope.mail_from
        if not sender:
            return NOTHING_TO_SEND
        return await self._deliver(kind, entry, (sender,))

    async def _deliver(self, kind: NoticeKind, entry: Entry, to: tuple[str, ...]) -> Reply:
        if not self._settings.enabled:
            return NOTHING_TO_SEND
        envelope = Envelope(
            mail_from=self._settings.from_address,
            rcpt_tos=to,
            transaction_id=f"notice-{kind}-{entry.id}",
        )
        return await self._send(
            envelope, self.compose(kind, entry, to), kind=kind, queue_id=entry.id
        )

    async def _send(self, envelope: Envelope, data: bytes, *, kind: str, queue_id: str) -> Reply:
        try:
            reply = await self._upstream.send(envelope, data)
        except Exception as exc:  # noqa: BLE001  # an upstream bug must not stop the outbox
            log.error("notice_send_error", kind=kind, queue_id=queue_id, error=repr(exc))
            return Reply(451, f"4.3.0 notice not sent: {type(exc).__name__}")
        log.info("notice_sent" if reply.ok else "notice_refused", kind=kind, queue_id=queue_id,
                 code=reply.code)  # fmt: skip
        return reply
