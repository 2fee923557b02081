"""Frozen value types that travel through the flow: envelope → mail view → findings → verdict.

Every stage reads these and returns new ones; nothing here is mutated after it is built,
so a value can be handed to a worker process, stored in the queue or logged without copies.
The types are deliberately small: bytes of the message are never kept on a `Mail`, only the
read-only view extracted from them (the original bytes travel beside it, untouched).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

# --------------------------------------------------------------------------- envelope


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP transaction as the relay validated it: the truth about who receives the mail.

    Recipients are never re-derived from headers (Postfix FILTER_README): `rcpt_tos` is what
    the client asked for at RCPT and what the upstream receives.
    """

    mail_from: str
    """Reverse path without angle brackets; "" for the null sender `<>`."""
    rcpt_tos: tuple[str, ...]
    mail_options: tuple[str, ...] = ()
    """ESMTP MAIL parameters to carry upstream, e.g. ``BODY=8BITMIME``, ``SMTPUTF8``."""
    transaction_id: str = ""
    client_address: str = ""
    """Peer IP of the submitting client (after PROXY protocol, if any)."""
    client_helo: str = ""
    auth_user: str | None = None
    """The SMTP AUTH login, None when the client did not authenticate (trusted network).
    Behind Postfix: the login Postfix authenticated (XCLIENT, or its ``Received:`` header)."""
    received_at: datetime | None = None
    sender_identity: str | None = None
    """Who the policy and the notices take the sender to be when the client authenticated:
    the login's own address from ``[people]`` ("" when it has none). None without AUTH,
    where the envelope sender stands for it (see `sender`)."""
    client_via: str = ""
    """The forwarder (Postfix) whose XFORWARD/XCLIENT gave the client's facts above; ""
    when the client connected itself."""
    client_ident: str = ""
    """XFORWARD IDENT: the message's queue id on that Postfix, to follow it there."""

    @property
    def sender(self) -> str:
        """The sender address that sender groups match: the login's own address for
        authenticated mail (never a MAIL FROM the client chose), else the envelope sender."""
        return self.mail_from if self.sender_identity is None else self.sender_identity


# --------------------------------------------------------------------------- mail view

HeaderField = Literal[
    "from", "to", "cc", "bcc", "reply-to", "sender", "resent-to", "resent-cc", "envelope"
]


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox, parsed strictly by our own addr-spec grammar (never `email.utils`)."""

    addr_spec: str
    """``local@domain`` with the domain in lower-case A-label (punycode) form."""
    local_part: str
    domain: str
    """Lower-case A-label (``xn--…``) form, what DNS and comparisons use."""
    domain_unicode: str
    """Lower-case U-label form, what a person reads."""
    registrable_domain: str
    """Organisation-level domain (public suffix list): ``mail.tanaka.co.jp`` → ``tanaka.co.jp``."""
    display_name: str = ""
    """RFC 2047-decoded display name."""
    field: HeaderField = "to"
    group: str | None = None
    """Name of the RFC 5322 group the mailbox was listed in, if any."""


@dataclass(frozen=True, slots=True)
class Table:
    """A table read from CSV/TSV, a sheet or a document table; rows of cell texts (NFKC)."""

    name: str
    """Sheet name or table label, "" when the format has none."""
    rows: tuple[tuple[str, ...], ...]
    truncated: bool = False
    """True when the row or cell limit cut the table; detectors may scale their counts."""


@dataclass(frozen=True, slots=True)
class CellDigest:
    """Everything a workbook's cells can render to, read from its raw parts before any table
    is built (`parse.extract.cells`): the detectors' candidate-first question."""

    texts: frozenset[str]
    """Each distinct text of a string cell, rich-text run join, phonetic run and sheet name
    (NFKC, as `Table` cells are)."""
    number_digits: int
    """Every other cell is a number of at most this many digits before its decimal point
    and six after it (or one before it and an exponent, ``1.5e-05``), rendered as a plain
    number (no custom format but dates) or, with `dates`, possibly as a date, time or
    duration (``1985-04-03``, ``1985-04-03 12:30:00``, ``12:30:00``, ``3 days, 1:00:00``;
    microseconds after a point)."""
    dates: bool = False
    """Some cell has a date, time or duration format."""


@dataclass(frozen=True, slots=True)
class Part:
    """One inspected unit: a MIME leaf, a file inside an archive, a forwarded message's part."""

    path: tuple[str, ...]
    """Human-readable location, e.g. ``("attachment 2", "顧客.zip", "list/顧客.csv")``."""
    declared_type: str
    """Content type as declared by the sender (MIME header or archive member name)."""
    sniffed_type: str
    """Content type by magic bytes / structure; what extraction was based on."""
    filename: str = ""
    size: int = 0
    """Decoded size in bytes."""
    text: str = ""
    """Extracted visible text, NFKC-normalised. Tables are also rendered here, row per line."""
    tables: tuple[Table, ...] = ()
    is_attachment: bool = False
    encrypted: bool = False
    """Password-protected or encrypted: content could not be read."""
    problem: str = ""
    """Why this part could not be fully inspected ("" when fully read); see `Problem`."""

    @property
    def label(self) -> str:
        """The path as a person reads it: ``attachment 2 › 顧客.zip › list/顧客.csv``."""
        return " › ".join(self.path)


ProblemKind = Literal[
    "encrypted",
    "limit",
    "malformed",
    "unsupported",
    "timeout",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that could not be inspected. It becomes a finding, never a silent pass."""

    kind: ProblemKind
    code: str
    """Stable kebab-case reason, e.g. ``encrypted-zip``, ``mime-depth``, ``expanded-size``."""
    where: str
    """The `Part.label` (or ``message``) concerned."""
    detail: str = ""
    """Human explanation with numbers, no personal data (``depth 2001 > limit 64``)."""


@dataclass(frozen=True, slots=True)
class Mail:
    """Read-only view of one message, built by `sendguard.parse` from a copy of the bytes."""

    subject: str = ""
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    resent_to: tuple[Address, ...] = ()
    """Resent-To (RFC 5322 §3.6.6): a re-sent message shows these to every recipient too."""
    resent_cc: tuple[Address, ...] = ()
    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    """The ``<id>``s of In-Reply-To: the message this one answers (thread-outsider)."""
    references: tuple[str, ...] = ()
    """The ``<id>``s of References: the thread this message belongs to."""
    parts: tuple[Part, ...] = ()
    problems: tuple[Problem, ...] = ()
    header_bytes: int = 0
    size: int = 0
    stopped_early: bool = False
    """The relay stopped reading parts here: the parts read already gave the most severe
    action the policy could take for the envelope (`policy.ceiling`); the rest is unread."""
    rows_cut: int = 0
    """With `stopped_early`: the last part read is a long table read only to its first
    `rows_cut` rows (its findings' counts are lower bounds); 0 when every row read was."""

    @property
    def visible_recipients(self) -> tuple[Address, ...]:
        """Addresses every recipient can see: To, Cc, Resent-To and Resent-Cc."""
        return self.to + self.cc + self.resent_to + self.resent_cc


# --------------------------------------------------------------------------- organisation


@dataclass(frozen=True, slots=True)
class Organisation:
    """Who "we" are, from the policy: what counts as internal, partner, or a list with outsiders."""

    internal_domains: frozenset[str] = frozenset()
    """Registrable or full domains (A-label, lower case); subdomains count as internal too."""
    partner_domains: frozenset[str] = frozenset()
    external_lists: frozenset[str] = frozenset()
    """Mailing lists with outside members: always external even if the domain is ours."""
    frequent_domains: frozenset[str] = frozenset()
    """Domains the organisation often writes to (from config and history): lookalike targets."""


# --------------------------------------------------------------------------- findings

Severity = Literal["info", "low", "medium", "high", "critical"]


@dataclass(frozen=True, slots=True)
class Finding:
    """What one detector saw. It explains itself (message + params) and decides nothing.

    `evidence` is masked (``0901234****``, ``t***@gmial.com``): no raw personal data may
    ever be placed in a finding, because findings go to logs, notifications and the queue.
    """

    detector: str
    """Kebab-case detector id, e.g. ``personal-data``."""
    code: str
    """Kebab-case finding code within the detector, e.g. ``my-number``."""
    message: str
    """English reason template with ``{name}`` fields filled from `params` when rendered."""
    count: int = 1
    severity: Severity = "medium"
    params: Mapping[str, str | int | float] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()
    where: tuple[str, ...] = ()
    """`Part.label`s (or ``subject``, ``envelope``, ``to``…) where it was seen."""

    def render(self) -> str:
        """The message with its parameters filled in."""
        try:
            return self.message.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return self.message


# --------------------------------------------------------------------------- verdict


class Action(enum.IntEnum):
    """What happens to a message; the integer order is severity (most severe wins)."""

    PASS = 0
    TAG = 1
    REWRITE = 2
    DELAY = 3
    HOLD = 4
    REJECT = 5

    @property
    def label(self) -> str:
        """The kebab-case name used in policy files, logs and the CLI."""
        return {Action.REWRITE: "rewrite-bcc"}.get(self, self.name.lower())


RewriteMode = Literal["undisclosed", "sender", "split"]


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's outcome in the trace: hit or miss, with the findings that made it hit."""

    rule_id: str
    description: str
    matched: bool
    action: Action
    mode: Literal["enforce", "warn"] = "enforce"
    reasons: tuple[str, ...] = ()
    """Human sentences: which conditions held or failed."""
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything that was considered: all findings and every rule, hit or miss."""

    findings: tuple[Finding, ...] = ()
    rules: tuple[RuleResult, ...] = ()
    policy_version: str = ""
    """Digest of the policy files that produced the verdict."""


@dataclass(frozen=True, slots=True)
class HoldParams:
    """How a held or delayed message is reviewed and released."""

    reviewers: tuple[str, ...] = ()
    self_release: bool = False
    approvals_required: int = 1
    expire_hours: float | None = None
    """Business hours until an undecided hold expires; None = the queue default."""
    notify_sender: bool = True
    notify_reviewers: bool = True
    remind_hours: float | None = None
    """Business hours after which an undecided hold reminds its reviewers; None = never."""
    escalate_hours: float | None = None
    """Business hours after which an undecided hold goes to `escalate_to`; None = never."""
    escalate_to: tuple[str, ...] = ()
    """Addresses an undecided hold escalates to (they may then decide as reviewers)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The single decision for a message, with its full trace.

    The most severe matched action wins; a rewrite may apply together with a delay or hold
    (`rewrite` set while `action` is DELAY/HOLD), and tags are added whenever any rule asked.
    """

    action: Action
    rule_id: str | None = None
    """The rule that decided (None for the default pass)."""
    reason: str = ""
    """Short ASCII reason for replies and logs (no personal data)."""
    rewrite: RewriteMode | None = None
    tag_headers: tuple[tuple[str, str], ...] = ()
    delay_minutes: float = 0.0
    hold: HoldParams = field(default_factory=HoldParams)
    trace: Trace = field(default_factory=Trace)
    warned: tuple[str, ...] = ()
    """Rule ids in warn mode that would have acted."""


PASS_VERDICT = Verdict(action=Action.PASS, reason="no rule matched")


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply; `str()` is what goes on the wire (multi-line replies joined by CRLF)."""

    code: int
    text: str

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        """5xx: retrying will not help."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        lines = self.text.splitlines() or [""]
        head = [f"{self.code}-{line}" for line in lines[:-1]]
        return "\r\n".join([*head, f"{self.code} {lines[-1]}"])


# --------------------------------------------------------------------------- listening

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
"""A trusted network of the settings (``SENDGUARD_TRUSTED_NETWORKS``)."""


class Listener(BaseModel):
    """One listening socket, ``host:port``; clients upgrade with STARTTLS when a cert is set."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listener:
        """Read ``127.0.0.1:2525``, ``[::1]:2525`` or ``0.0.0.0:587``."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not host or int(port) > 65535:
            raise ValueError(f"listener {text!r} is not host:port (e.g. 127.0.0.1:2525)")
        return cls(host=host.strip("[]"), port=int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


# --------------------------------------------------------------------------- sending


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One copy to send: its envelope recipients and its bytes (a split rewrite makes one per
    outside recipient; every other verdict one for all)."""

    rcpt_tos: tuple[str, ...]
    data: bytes


Prepare = Callable[[bytes, Verdict, Envelope, Organisation | None], tuple[Outgoing, ...]]
"""The copies a verdict sends: its tags and rewrite applied to a copy of the bytes
(`sendguard.actions.rewrite.apply_verdict`, bound by `sendguard.app`). The pipeline passes
the organisation its inspection judged by; the queue worker None (the policy in force)."""
