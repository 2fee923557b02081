"""Builders shared by the detector tests and the evaluation set: real `Address` values from
the strict parser, an envelope and a `DetectContext` for a list of recipients."""

from __future__ import annotations

from collections.abc import Iterable

from sendguard.detect.base import DetectContext
from sendguard.model import Address, Envelope, HeaderField, Mail, Organisation, Part
from sendguard.parse.addresses import parse_addr_spec

ORG = Organisation(
    internal_domains=frozenset({"example-corp.co.jp"}),
    partner_domains=frozenset({"tanaka-shoji.co.jp"}),
    external_lists=frozenset({"users@lists.example-corp.co.jp"}),
    frequent_domains=frozenset({"marutaka-kogyo.co.jp", "sakura-bank.jp"}),
)
SENDER = "yamada@example-corp.co.jp"


def addr(spec: str, field: HeaderField = "to") -> Address:
    """One address parsed like the relay parses it."""
    return parse_addr_spec(spec, field=field)


def addrs(specs: Iterable[str], field: HeaderField = "to") -> tuple[Address, ...]:
    """Several addresses in one header field."""
    return tuple(addr(s, field) for s in specs)


def context(
    recipients: Iterable[str], org: Organisation = ORG, sender: str = SENDER
) -> DetectContext:
    """A context whose envelope sends from `sender` to `recipients`."""
    rcpts = tuple(recipients)
    return DetectContext(
        organisation=org,
        envelope=Envelope(mail_from=sender, rcpt_tos=rcpts),
        recipients=tuple(addr(r, "envelope") for r in rcpts),
        sender=addr(sender, "envelope"),
    )


def text_mail(body: str, *, subject: str = "", attachments: Iterable[Part] = ()) -> Mail:
    """A mail with a plain-text body part and optional further parts."""
    body_part = Part(
        path=("body",), declared_type="text/plain", sniffed_type="text/plain", text=body
    )
    return Mail(subject=subject, parts=(body_part, *attachments))
