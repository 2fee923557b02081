"""deliver: hand a message to the upstream and report its reply (stage 6 of the flow).

Live mail and released mail use the same `Upstream.send`, so a reviewer's release takes
exactly the path a clean message takes.
"""

from __future__ import annotations

from typing import Protocol

from sendguard.deliver.maildir import MaildirUpstream
from sendguard.deliver.smtp import PinnedUpstream, SmtpOptions, SmtpUpstream
from sendguard.deliver.target import UpstreamTarget, parse_target
from sendguard.model import Envelope, Reply
from sendguard.settings import Settings

__all__ = [
    "MaildirUpstream",
    "PinnedUpstream",
    "SmtpOptions",
    "SmtpUpstream",
    "Upstream",
    "UpstreamTarget",
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


def open_upstream(settings: Settings) -> MaildirUpstream | SmtpUpstream:
    """Build the upstream named by ``SENDGUARD_UPSTREAM`` (no connection is made yet)."""
    target = parse_target(settings.upstream)
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
