"""Every reply the relay makes itself, by name (like aiosmtpd's testing/statuscodes.py).

Replies mirrored from the upstream are not here: those are the upstream's own words.
`reply_for` is the one place where an error becomes a reply.
"""

from __future__ import annotations

from sendguard.errors import (
    InspectionTimeout,
    StaleSession,
    UpstreamCertificate,
    UpstreamError,
    UpstreamLogin,
    UpstreamTimeout,
)
from sendguard.model import Reply

SENDER_OK = Reply(250, "2.1.0 Sender ok")
RECIPIENT_OK = Reply(250, "2.1.5 Recipient ok")
RELAY_DENIED = Reply(
    550,
    "5.7.1 Relaying denied: authenticate (AUTH after STARTTLS) or connect from a trusted network",
)
SENDER_NOT_OWNED = Reply(553, "5.7.1 Sender address rejected: not owned by the authenticated user")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3 Too many recipients for one message")
BARE_LINE_ENDING = Reply(
    550,
    "5.6.0 Bare CR or LF in message content is not allowed (RFC 5321 2.3.8); use CRLF",
)
LINE_TOO_LONG = Reply(550, "5.6.0 Line longer than 998 octets (RFC 5322 2.1.1); encode the content")
UNSUPPORTED_PARAMETER = Reply(555, "5.5.4 Unsupported MAIL or RCPT parameter")
MESSAGE_TOO_BIG = Reply(552, "5.3.4 Message size exceeds the fixed limit")
TEMPFAIL_INTERNAL = Reply(451, "4.3.0 Internal error; message not accepted, try again later")
TEMPFAIL_BUDGET = Reply(451, "4.3.0 Inspection did not finish in time; try again later")
SPOOL_FAILED = Reply(451, "4.3.0 Could not store the message for inspection; try again later")
"""A big message could not be written to the spool (disk full, permissions)."""
SHUTTING_DOWN = Reply(421, "4.3.2 Service shutting down, try again later")
IDLE_TIMEOUT = Reply(421, "4.4.2 Timeout: nothing received for too long, closing the connection")
REPLY_DEADLINE = Reply(451, "4.4.2 The message could not be confirmed in time; try again later")
"""Sent by the intake when inspection or the upstream is not done by `reply_deadline`."""
ABANDONED = Reply(451, "4.4.2 Not delivered: the client was answered or left before delivery")
"""The pipeline's outcome when the client stopped waiting before the message was committed."""
INTERRUPTED = Reply(421, "4.3.2 Interrupted by shutdown")
"""The pipeline's outcome when a shutdown cancelled it (recorded; the client got 421)."""
FORWARD_UNAUTHORISED = Reply(550, "5.7.0 Error: insufficient authorization")
"""XFORWARD or XCLIENT from a host not in ``SENDGUARD_XFORWARD_HOSTS`` (Postfix's words)."""
XCLIENT_AFTER_AUTH = Reply(503, "5.5.1 Error: XCLIENT is not accepted after AUTH")
AUTH_TEMPFAIL = Reply(454, "4.7.0 Temporary authentication failure, try again later")
AUTH_TOO_MANY = Reply(421, "4.7.0 Too many failed logins; closing connection")
AUTH_ADDRESS_BLOCKED = Reply(421, "4.7.0 Too many failed logins from your address; try later")
AUTH_LOGIN_BLOCKED = Reply(454, "4.7.0 Too many failed logins for this user; try again later")


ROUTING_ADDRESS = Reply(
    553,
    "5.1.3 Address with routing characters (% ! or a quoted @) is not accepted; "
    "write the recipient's own address",
)
NON_ASCII_ADDRESS = Reply(
    553, "5.6.7 Non-ASCII address needs SMTPUTF8 (RFC 6531); use the ASCII (xn--) form"
)
NON_ASCII_UPSTREAM = Reply(
    553, "5.6.7 Non-ASCII address: the upstream does not support SMTPUTF8; use the ASCII form"
)

UPSTREAM_STALE = Reply(421, "4.4.2 stale session")
UPSTREAM_TIMEOUT = Reply(451, "4.4.2 upstream timed out")
UPSTREAM_UNAVAILABLE = Reply(451, "4.4.1 upstream unavailable")
UPSTREAM_CERTIFICATE = Reply(451, "4.7.5 upstream TLS certificate did not verify")
UPSTREAM_LOGIN = Reply(451, "4.7.0 the relay could not authenticate to the upstream")


def reply_for(error: BaseException) -> Reply:
    """The reply for a failure, by its class in `sendguard.errors`; anything else (a bug) is
    `TEMPFAIL_INTERNAL`: 451, never 250, never the exception's text."""
    if isinstance(error, InspectionTimeout):
        return TEMPFAIL_BUDGET
    if isinstance(error, UpstreamError):
        return _UPSTREAM.get(type(error), UPSTREAM_UNAVAILABLE)
    return TEMPFAIL_INTERNAL


_UPSTREAM: dict[type[UpstreamError], Reply] = {
    StaleSession: UPSTREAM_STALE,
    UpstreamTimeout: UPSTREAM_TIMEOUT,
    UpstreamCertificate: UPSTREAM_CERTIFICATE,
    UpstreamLogin: UPSTREAM_LOGIN,
}


def bad_address(reason: str) -> Reply:
    """553 for an address our own strict parser refused; the reason is ASCII and data-free."""
    return Reply(553, f"5.1.3 Bad address syntax: {reason}")


def with_reference(reply: Reply, reference: str) -> Reply:
    """The reply with a reference an admin can search the logs for."""
    return Reply(reply.code, f"{reply.text} (ref {reference})")
