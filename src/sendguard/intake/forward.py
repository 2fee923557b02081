"""The client's identity as a Postfix in front of us forwards it: XFORWARD and XCLIENT.

Postfix talks to sendguard on the client's behalf (the submission service relaying to us,
or a before/after-queue filter). Without help, every message would come from Postfix's
address, with no HELO and no login. Postfix's two SMTP extensions carry those facts:

- XFORWARD (Postfix XFORWARD_README): NAME ADDR PORT PROTO HELO IDENT SOURCE, for one mail
  transaction; reset at RSET and after DATA (and at EHLO, which starts a new one). Postfix's
  `smtp` client sends it with ``smtp_send_xforward_command = yes``, its `smtpd` proxy
  (``smtpd_proxy_filter``) whenever the filter announces it.
- XCLIENT (XCLIENT_README): NAME ADDR PORT PROTO HELO LOGIN, for the rest of the session,
  which starts again at the 220 greeting. Postfix itself never sends it; other proxies do
  (nginx mail proxy, Dovecot's submission proxy).

Both are accepted only from `forwarders` (``SENDGUARD_XFORWARD_HOSTS``): anyone else could
claim any address. The attribute values are xtext (RFC 1891), at most 255 characters, and
``[UNAVAILABLE]`` (XCLIENT's NAME also ``[TEMPUNAVAIL]``) means "not known".

Stock Postfix forwards no login: XFORWARD has no LOGIN attribute. What it has is its own
``Received:`` header, written above everything the client sent, which names the SASL login
with ``smtpd_sasl_authenticated_header = yes`` (`postfix_login`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Command = Literal["XFORWARD", "XCLIENT"]

XFORWARD_ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")
XCLIENT_ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN")
MAX_VALUE = 255
"""Octets of one attribute value as sent (XFORWARD_README note 1, XCLIENT_README note 1)."""
MAX_PROTO = 64
_UNAVAILABLE = "[UNAVAILABLE]"
_TEMPUNAVAIL = "[TEMPUNAVAIL]"
# xtext (RFC 1891 §5): "!".."~" except "+" and "=", or "+" and two hex digits.
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-Fa-f]{2})*")
_HEX = re.compile(r"\+([0-9A-Fa-f]{2})")


class ForwardError(ValueError):
    """An attribute list that is not what the README allows; the text is the 501 reply."""


@dataclass(frozen=True, slots=True)
class ClientAttributes:
    """What a forwarder told us about the real client; None is "unavailable" or not sent."""

    name: str | None = None
    addr: IPAddress | None = None
    port: int | None = None
    proto: str | None = None
    helo: str | None = None
    ident: str | None = None
    """XFORWARD: the message's queue id on the forwarding Postfix (for following it there)."""
    source: Literal["LOCAL", "REMOTE"] | None = None
    login: str | None = None
    """XCLIENT: the SASL login the forwarder authenticated."""


def xtext_decode(value: str) -> str:
    """RFC 1891 xtext to text; `ForwardError` when it is not xtext."""
    if not _XTEXT.fullmatch(value):
        raise ForwardError(f"501 5.5.4 Bad attribute value syntax: {_shown(value)}")
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), value)


def parse(command: Command, arg: str, current: ClientAttributes | None) -> ClientAttributes:
    """Apply one XFORWARD or XCLIENT command's attributes to `current` and return the result.

    `current` is None for a transaction's first XFORWARD: every attribute then starts as
    unavailable (XFORWARD_README, server operation). Either the whole command is valid and
    applied, or nothing is (`ForwardError`, whose text is the 501 reply).
    """
    allowed = XFORWARD_ATTRIBUTES if command == "XFORWARD" else XCLIENT_ATTRIBUTES
    words = arg.split()
    if not words:
        raise ForwardError(f"501 5.5.4 Syntax: {command} attribute=value...")
    result = current or ClientAttributes()
    for word in words:
        key, sep, raw = word.partition("=")
        key = key.upper()
        if not sep or key not in allowed:
            raise ForwardError(f"501 5.5.4 Bad {command} attribute name: {_shown(key)}")
        if len(raw) > MAX_VALUE:
            raise ForwardError(f"501 5.5.4 Bad {command} attribute value: {key} is too long")
        value = xtext_decode(raw)
        changes: dict[str, Any] = {key.lower(): _value(command, key, value)}
        result = replace(result, **changes)
    return result


def _value(command: Command, key: str, value: str) -> object:
    """One attribute's decoded value, checked as the READMEs describe it."""
    upper = value.upper()
    if upper == _UNAVAILABLE or (upper == _TEMPUNAVAIL and command == "XCLIENT" and key == "NAME"):
        return None
    if not value.isascii() or not value.isprintable() or " " in value:
        # Note 1: no control characters, non-ASCII or whitespace after decoding. Postfix
        # itself forwards a HELO of several words (xtext +20): such names are made printable
        # as Postfix does (`?`), so its mail is not refused; a login is never altered.
        if key == "LOGIN":
            raise ForwardError(f"501 5.5.4 Bad {command} LOGIN: not printable ASCII")
        value = _printable(value)
    if key == "ADDR":
        return _address(command, value)
    if key == "PORT":
        if not value.isdigit() or int(value) > 65535:
            raise ForwardError(f"501 5.5.4 Bad {command} PORT syntax: {_shown(value)}")
        return int(value)
    if key == "PROTO":
        if len(value) > MAX_PROTO or (command == "XCLIENT" and upper not in ("SMTP", "ESMTP")):
            raise ForwardError(f"501 5.5.4 Bad {command} PROTO syntax: {_shown(value)}")
        return value
    if key == "SOURCE":
        if upper not in ("LOCAL", "REMOTE"):
            raise ForwardError(f"501 5.5.4 Bad {command} SOURCE syntax: {_shown(value)}")
        return upper
    return value


def _address(command: Command, value: str) -> IPAddress:
    """IPv4 as dotted quad, IPv6 with the ``IPV6:`` prefix (any case), never in brackets."""
    try:
        if value[:5].upper() == "IPV6:":
            v6 = ipaddress.IPv6Address(value[5:])
            return v6.ipv4_mapped or v6
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ForwardError(f"501 5.5.4 Bad {command} ADDR syntax: {_shown(value)}") from None


def _printable(text: str) -> str:
    """Every control, non-ASCII or space character as ``?`` (Postfix's printable())."""
    return "".join(c if c.isascii() and c.isprintable() and c != " " else "?" for c in text)


def _shown(text: str) -> str:
    """A client-supplied token as it may appear in a reply: printable ASCII, bounded."""
    return _printable(text[:40])


# --------------------------------------------------------------------------- Postfix's login

_FIRST_RECEIVED = re.compile(rb"(?im)^Received:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)")
_AUTH_LINE = re.compile(
    r"\r\n\t\(Authenticated sender: (?P<login>[!-'*-~]+)\)"
    r"\r\n\tby \S+ \([^()\r\n]+\) with [A-Z]*A\b"
)


def postfix_login(data: bytes, forwarded: ClientAttributes) -> str | None:
    """The SASL login in the ``Received:`` header Postfix wrote for this very client, or None.

    Postfix writes its header first, above everything the client sent::

        Received: from HELO (NAME [ADDR])
        \t(Authenticated sender: LOGIN)
        \tby HOST (Postfix) with ESMTPSA id QUEUEID   (no id as a before-queue proxy)

    The one header read is the topmost ``Received:``, and only when it starts with exactly
    the HELO, name and address XFORWARD gave for this transaction: what follows them is
    Postfix's own text (the HELO is the one part a client writes, and it is skipped by its
    known length). ``with ESMTPA``/``ESMTPSA`` (the A is Postfix's "authenticated") must
    follow the login line. Anything else (no header, another layout, a HELO or address that
    differs) gives None: no login, so the mail is judged like an unauthenticated client's.
    """
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[: end + 2]
    match = _FIRST_RECEIVED.search(head)
    if match is None or forwarded.helo is None or forwarded.addr is None:
        return None
    text = match.group(1).decode("ascii", errors="replace")
    name = forwarded.name or "unknown"
    addr = forwarded.addr
    shown = f"IPv6:{addr}" if addr.version == 6 else str(addr)
    prefix = f"from {forwarded.helo} ({name} [{shown}]"
    if not text.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    comment_end = rest.find(")")
    if comment_end < 0 or "\r\n" in rest[:comment_end]:
        return None  # only ":port" may follow the address inside the comment
    auth = _AUTH_LINE.search(rest, comment_end)
    if auth is None or "\r\n\tby " in rest[comment_end : auth.start()]:
        return None
    return auth.group("login")
