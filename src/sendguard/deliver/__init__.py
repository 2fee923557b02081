"""deliver: hand a message to the upstream and report its reply (stage 6 of the flow).

Live mail and released mail use the same `Upstream.send`, so a reviewer's release takes
exactly the path a clean message takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sendguard.deliver.maildir import MaildirUpstream
from sendguard.deliver.smtp import PinnedUpstream, SmtpOptions, SmtpUpstream
from sendguard.deliver.target import UpstreamTarget, parse_target
from sendguard.errors import ConfigError
from sendguard.model import Envelope, Reply

__all__ = [
    "MaildirUpstream",
    "PinnedUpstream",
    "SmtpOptions",
    "SmtpUpstream",
    "Upstream",
    "UpstreamOptions",
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


@dataclass(frozen=True, slots=True)
class UpstreamOptions:
    """What building the upstreams needs from the settings (``SENDGUARD_UPSTREAM*``,
    ``SENDGUARD_QUEUE_UPSTREAM``); `sendguard.settings.Settings.upstream_options` makes it."""

    upstream: str
    hostname: str
    queue_upstream: str | None = None
    timeout: float = 60.0
    data_timeout: float = 600.0
    pool_size: int = 4
    max_connections: int = 10
    ca_file: Path | None = None
    allow_plaintext: bool = False
    passthrough: bool = False
    """Clients log in to the upstream themselves (``auth_mode=passthrough``)."""


def open_upstream(
    options: UpstreamOptions, url: str | None = None
) -> MaildirUpstream | SmtpUpstream:
    """Build the upstream named by ``SENDGUARD_UPSTREAM`` (or `url`); nothing connects yet."""
    target = parse_target(url or options.upstream)
    if target.path is not None:
        return MaildirUpstream(target.path)
    return SmtpUpstream(
        target,
        SmtpOptions(
            local_hostname=options.hostname,
            timeout=options.timeout,
            data_timeout=options.data_timeout,
            pool_size=options.pool_size,
            max_connections=options.max_connections,
            ca_file=options.ca_file,
        ),
    )


def open_queue_upstream(
    options: UpstreamOptions, live: MaildirUpstream | SmtpUpstream
) -> MaildirUpstream | SmtpUpstream | None:
    """The upstream for queued mail, notices and bounces: ``SENDGUARD_QUEUE_UPSTREAM``, else
    the live upstream — except in pass-through, where that one only carries each client's
    own session and has no account of its own to send with (None: nothing can be queued)."""
    if options.queue_upstream:
        target = parse_target(options.queue_upstream)
        plaintext = target.password is not None and not target.encrypted
        if plaintext and not options.allow_plaintext:
            raise ConfigError(
                f"queue_upstream {target} would send its password without TLS: use "
                "smtp+starttls:// or smtps:// (SENDGUARD_UPSTREAM_ALLOW_PLAINTEXT=true "
                "is for tests only)"
            )
        return open_upstream(options, options.queue_upstream)
    if options.passthrough:
        return None
    return live
