"""deliver: hand a message to the upstream and report its reply (stage 6 of the flow).

Live mail and released mail use the same `Upstream.send`, so a reviewer's release takes
exactly the path a clean message takes.
"""

from __future__ import annotations

from typing import Protocol

from sendguard.deliver.maildir import MaildirUpstream
from sendguard.deliver.smtp import PinnedUpstream, SmtpOptions, SmtpUpstream
from sendguard.deliver.target import UpstreamTarget, parse_target
from sendguard.errors import ConfigError
from sendguard.model import Envelope, Reply
from sendguard.settings import Settings

__all__ = [
    "MaildirUpstream",
    "PinnedUpstream",
    "SmtpOptions",
    "SmtpUpstream",
    "Upstream",
    "UpstreamTarget",
    "open_queue_upstream",
    "open_upstream",
    "parse_target",
]


class Upstream(Protocol):
    """Anything that takes a message and answers like an SMTP server."""

    async def send(self, envelope: Envelope, data: bytes, /) -> Reply:
        """Deliver to every envelope recipient or none. Never raises for SMTP errors: a
        refusal is returned as the upstream's reply, a connection failure as a 4xx."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def open_upstream(settings: Settings, url: str | None = None) -> MaildirUpstream | SmtpUpstream:
    """Build the upstream named by ``SENDGUARD_UPSTREAM`` (or `url`); nothing connects yet."""
    target = parse_target(url or settings.upstream)
    if target.path is not None:
        return MaildirUpstream(target.path)
    return SmtpUpstream(
        target,
        SmtpOptions(
            local_hostname=settings.hostname,
            timeout=settings.upstream_timeout,
            data_timeout=settings.upstream_data_timeout,
            pool_size=settings.upstream_pool_size,
            max_connections=settings.upstream_max_connections,
            ca_file=settings.upstream_ca_file,
        ),
    )


def open_queue_upstream(
    settings: Settings, live: MaildirUpstream | SmtpUpstream
) -> MaildirUpstream | SmtpUpstream | None:
    """The upstream for queued mail, notices and bounces: ``SENDGUARD_QUEUE_UPSTREAM``, else
    the live upstream — except in pass-through, where that one only carries each client's
    own session and has no account of its own to send with (None: nothing can be queued)."""
    if settings.queue_upstream:
        target = parse_target(settings.queue_upstream)
        plaintext = target.password is not None and not target.encrypted
        if plaintext and not settings.upstream_allow_plaintext:
            raise ConfigError(
                f"queue_upstream {target} would send its password without TLS: use "
                "smtp+starttls:// or smtps:// (SENDGUARD_UPSTREAM_ALLOW_PLAINTEXT=true "
                "is for tests only)"
            )
        return open_upstream(settings, settings.queue_upstream)
    if settings.auth_mode == "passthrough":
        return None
    return live
