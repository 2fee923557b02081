"""One error tree for the whole relay.

Each error also inherits the builtin it resembles (like aiosmtplib's
``SMTPTimeoutError(SMTPException, TimeoutError)``), so callers can catch either. Errors are
told apart by their class, never by their text: `sendguard.replies.reply_for` maps them to
SMTP replies in one place (used by the intake, the pipeline and the upstream client);
anything not in this tree is an internal error and answers 451, never 250.
"""

from __future__ import annotations


class SendguardError(Exception):
    """Base of every error sendguard raises on purpose."""


class ConfigError(SendguardError, ValueError):
    """Invalid settings or policy; the message names the file, key and what is allowed."""


class PolicyError(ConfigError):
    """A policy file failed validation."""

    def __init__(self, message: str, *, file: str = "", rule: str = "", field: str = "") -> None:
        super().__init__(message)
        self.file = file
        self.rule = rule
        self.field = field


class InspectionError(SendguardError, RuntimeError):
    """Parsing or detection failed; the message must not pass (fail closed)."""


class InspectionTimeout(InspectionError, TimeoutError):
    """A time budget ran out before a verdict was reached: the message's scan budget, a
    network detector's (a DNS lookup that never answers), an extraction worker's."""


class UpstreamError(SendguardError, ConnectionError):
    """The upstream could not be reached or talked to; nothing was accepted (a 4xx)."""


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The upstream did not answer in time."""


class UpstreamCertificate(UpstreamError):
    """The upstream's TLS certificate did not verify (never sent unverified)."""


class UpstreamLogin(UpstreamError):
    """The relay's own account could not log in to the upstream."""


class StaleSession(UpstreamError):
    """A pooled upstream session had been dropped before MAIL was accepted: nothing was
    sent, so the message may be retried at once on a fresh session."""


class StoreError(SendguardError, OSError):
    """The queue store could not commit or read; a message not committed gets 451."""


class Conflict(StoreError):
    """The entry is no longer in the state the caller expected (someone else changed it)."""


class NotFound(StoreError, LookupError):
    """No queue entry with that id."""


class ReviewError(SendguardError, PermissionError):
    """A review decision is not allowed (self-release, wrong state, missing approvals)."""
