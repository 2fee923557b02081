"""Notices to senders and reviewers, and bounces, sent straight through the upstream.

The worker drains the store's outbox and calls `Notifier.send` for each notice; nothing
here touches the store. Notices go to the upstream directly (never back through the relay,
so they are never inspected or held) from the configured address, and carry
``X-Sendguard-Notification: yes`` and ``Auto-Submitted`` so mail loops and auto-replies
stop. Each method returns the upstream's reply; the worker retries a 4xx.

Notices name rule ids, recipients and reviewers, so they go only to someone inside: the
authenticated login's own address (``[people]``, never a MAIL FROM the client chose), or,
for mail without AUTH, an envelope sender on an internal domain. Anything else is not sent
and ``notice_not_sent`` says why. Notices come from ``notify.from_address``, by default
``postmaster@`` the first internal domain of the policy (never a made-up host name).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from typing import Literal

import structlog

from sendguard.deliver import Upstream
from sendguard.detect.domains import is_internal
from sendguard.entry import Entry, NoticeKind
from sendguard.model import Envelope, Reply
from sendguard.notify.dsn import build_dsn
from sendguard.notify.render import LinkBlock, render, reviewers_of
from sendguard.notify.settings import NotifySettings
from sendguard.policy.load import LoadedPolicy

log = structlog.get_logger(__name__)
NOTHING_TO_SEND = Reply(250, "2.0.0 nothing to send")


class Notifier:
    """Composes and sends every notice about a queue entry."""

    def __init__(
        self,
        upstream: Upstream,
        settings: NotifySettings,
        *,
        hostname: str | None = None,
        policy: Callable[[], LoadedPolicy] | None = None,
        links: LinkBlock | None = None,
    ) -> None:
        self._upstream = upstream
        self._links = links  # signed links in notices (`sendguard.web.links`), when set up
        self._settings = settings
        self._hostname = hostname or os.uname().nodename
        # The serving policy (it reloads): internal domains and [people]. Without one nothing
        # counts as internal, so only notices with an explicit address can go out.
        self._policy = policy

    def from_address(self) -> str | None:
        """Where notices come from: the setting, else ``postmaster@`` the first internal
        domain of the policy; None when neither is known (then no notice is sent)."""
        if self._settings.from_address:
            return self._settings.from_address
        loaded = self._policy() if self._policy else None
        domains = loaded.policy.organisation.internal_domains if loaded else ()
        return f"postmaster@{domains[0]}" if domains else None

    def sender_address(self, entry: Entry) -> tuple[str | None, str]:
        """Where the sender's notice goes, or None and why it may not be sent."""
        env = entry.envelope
        loaded = self._policy() if self._policy else None
        if env.auth_user is not None:
            own = env.sender_identity
            if own is None:  # stored before logins were bound: ask [people] now
                own = loaded.people.identity(env.auth_user) if loaded else ""
            return (own, "") if own else (None, "login-without-own-address")
        if not env.mail_from:
            return None, "null-sender"
        if loaded is not None and is_internal(env.mail_from, loaded.organisation):
            return env.mail_from, ""
        return None, "external-sender"

    async def send(self, kind: NoticeKind, entry: Entry) -> Reply:
        """Send notice `kind` about `entry` (what the worker's outbox calls); never raises."""
        try:
            if kind == "bounce":
                return await self.bounce(entry)
            if kind in ("reviewers", "reminder"):
                return await self.notify_reviewers(entry, kind)
            if kind == "escalation":
                return await self.escalate(entry)
            return await self._to_sender(kind, entry)
        except Exception as exc:  # noqa: BLE001  # a bad template or address must not stop the outbox
            log.error("notice_compose_error", kind=kind, queue_id=entry.id, error=repr(exc))
            return Reply(451, f"4.3.0 notice not composed: {type(exc).__name__}")

    async def notify_held(self, entry: Entry) -> Reply:
        """Tell the sender the message is held, why, and who reviews it."""
        return await self._to_sender("held", entry)

    async def notify_expired(self, entry: Entry) -> Reply:
        """Tell the sender nobody decided in time, so the message was not sent."""
        return await self._to_sender("expired", entry)

    async def notify_reviewers(
        self, entry: Entry, kind: Literal["reviewers", "reminder"] = "reviewers"
    ) -> Reply:
        """Ask the reviewers (the rule's, else the configured default) to decide; a
        ``reminder`` when the hold is still undecided after the rule's ``remind_hours``."""
        reviewers = reviewers_of(entry, self._settings)
        if not reviewers:
            log.warning("notice_without_reviewers", queue_id=entry.id)
            return NOTHING_TO_SEND
        return await self._deliver(kind, entry, reviewers)

    async def escalate(self, entry: Entry) -> Reply:
        """Ask the rule's ``escalate_to`` list to decide a hold nobody decided in time."""
        if not entry.verdict.hold.escalate_to:
            return NOTHING_TO_SEND
        return await self._deliver("escalation", entry, entry.verdict.hold.escalate_to)

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

    def compose(
        self, kind: NoticeKind, entry: Entry, to: tuple[str, ...], *, sender: str | None = None
    ) -> bytes:
        """The complete notice message (CRLF), without sending it; From: is ``sender`` or
        `from_address`."""
        text = render(kind, entry, self._settings, self._links)
        msg = EmailMessage(policy=SMTP)
        from_address = sender or self.from_address()
        if from_address is None:
            raise ValueError("no notice sender: set notify.from_address or internal_domains")
        msg["From"] = Address(self._settings.from_name, addr_spec=from_address)
        msg["To"] = ", ".join(to)
        msg["Subject"] = text.subject
        msg["Message-ID"] = make_msgid(domain=self._hostname)
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Sendguard-Notification"] = "yes"
        msg["X-Sendguard-Queue-ID"] = entry.id
        msg.set_content(text.body, charset="utf-8")
        return msg.as_bytes()

    async def _to_sender(self, kind: NoticeKind, entry: Entry) -> Reply:
        address, why = self.sender_address(entry)
        if address is None:
            if why != "null-sender":
                log.info("notice_not_sent", kind=kind, queue_id=entry.id, reason=why)
            return NOTHING_TO_SEND
        return await self._deliver(kind, entry, (address,))

    async def _deliver(self, kind: NoticeKind, entry: Entry, to: tuple[str, ...]) -> Reply:
        if not self._settings.enabled:
            return NOTHING_TO_SEND
        sender = self.from_address()
        if sender is None:
            log.error("notice_not_sent", kind=kind, queue_id=entry.id, reason="no-from-address")
            return NOTHING_TO_SEND
        envelope = Envelope(
            mail_from=sender, rcpt_tos=to, transaction_id=f"notice-{kind}-{entry.id}"
        )
        data = self.compose(kind, entry, to, sender=sender)
        return await self._send(envelope, data, kind=kind, queue_id=entry.id)

    async def _send(self, envelope: Envelope, data: bytes, *, kind: str, queue_id: str) -> Reply:
        try:
            reply = await self._upstream.send(envelope, data)
        except Exception as exc:  # noqa: BLE001  # an upstream bug must not stop the outbox
            log.error("notice_send_error", kind=kind, queue_id=queue_id, error=repr(exc))
            return Reply(451, f"4.3.0 notice not sent: {type(exc).__name__}")
        log.info("notice_sent" if reply.ok else "notice_refused", kind=kind, queue_id=queue_id,
                 code=reply.code)  # fmt: skip
        return reply
