"""The policy language: pydantic models for what admins write in ``policies/*.toml``.

Sits between the files on disk and `sendguard.policy.load`, which reads each file into a
`PolicyFile`, merges them into one `Policy` and turns validation errors into messages that
name the file, the rule and the field. Every model is frozen and refuses unknown keys, so a
typo can never silently disable a rule. The language is documented in ``docs/policy.md``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    field_validator,
    model_validator,
)

from sendguard.model import RewriteMode, Severity
from sendguard.parse.addresses import ascii_domain

SEVERITY_ORDER: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
"""Severities from least to most severe; ``severity_at_least`` compares by this order."""

ActionName = Literal["pass", "tag", "rewrite-bcc", "delay", "hold", "reject"]
RecipientScope = Literal["any", "any-external", "all-external", "all-internal"]
Where = Literal["anywhere", "body", "attachment"]

_KEBAB = r"^[a-z0-9]+(-[a-z0-9]+)*$"
_GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class _Strict(BaseModel):
    """Base of every policy model: immutable, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def normalise_domain(value: str) -> str:
    """Lower-case A-label form of a domain (``例え.jp`` → ``xn--r8jz45g.jp``); ValueError if bad."""
    ascii_form = ascii_domain(value)  # ValueError names the value
    labels = ascii_form.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid domain name (e.g. example.co.jp)")
    return ascii_form


def normalise_address(value: str) -> str:
    """Lower-case ``local@domain`` with the domain in A-label form; ValueError if it is not one."""
    local, sep, domain = value.strip().rpartition("@")
    if not sep or not local or any(c.isspace() or c in '<>,;"' for c in local):
        raise ValueError(f"{value!r} is not a mail address (e.g. tanaka@example.co.jp)")
    return f"{local.lower()}@{normalise_domain(domain)}"


def _as_tuple(value: Any) -> Any:
    """Accept a single string where a list is expected (``code = "my-number"``)."""
    return (value,) if isinstance(value, str) else value


def _kebab(value: str) -> str:
    if len(value) > 64 or not re.fullmatch(_KEBAB, value):
        raise ValueError(
            "must be kebab-case: lower-case letters and digits joined by single hyphens,"
            " at most 64 characters (e.g. hold-customer-lists)"
        )
    return value


def _ascii_reason(value: str) -> str:
    """Short single-line printable ASCII: it goes into SMTP replies and headers."""
    if not value.isascii() or not value.isprintable():
        raise ValueError("must be printable ASCII on one line (it is used in SMTP replies)")
    if len(value) > 120:
        raise ValueError("must be at most 120 characters")
    return value


Domain = Annotated[str, AfterValidator(normalise_domain)]
MailAddress = Annotated[str, AfterValidator(normalise_address)]
Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


# --------------------------------------------------------------------------- organisation


class SenderGroup(_Strict):
    """A department or team of senders, named in rules through ``senders``."""

    description: str = ""
    """What the group is, for people reading the policy."""
    addresses: tuple[MailAddress, ...] = ()
    """Envelope sender addresses that belong to the group."""
    domains: tuple[Domain, ...] = ()
    """Sender domains that belong to the group (subdomains included)."""
    list_file: str | None = None
    """File of addresses, one a line, ``#`` comments; relative to the policy directory."""


class OrganisationSection(_Strict):
    """``[organisation]``: who counts as us; merged (union) across files."""

    internal_domains: tuple[Domain, ...] = ()
    """Our own domains; their subdomains are internal too."""
    partner_domains: tuple[Domain, ...] = ()
    """Trusted outside organisations: still external, but never lookalike targets of each other."""
    frequent_domains: tuple[Domain, ...] = ()
    """Domains we often write to; lookalikes of these are caught."""
    external_lists: tuple[MailAddress, ...] = ()
    """Mailing-list addresses with outside members: external even on an internal domain."""
    groups: dict[str, SenderGroup] = Field(default_factory=dict)
    """Sender groups by name (``[organisation.groups.sales]``)."""

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: dict[str, SenderGroup]) -> dict[str, SenderGroup]:
        for name in value:
            if not _GROUP_NAME.match(name):
                raise ValueError(f"group name {name!r} must be lower-case letters, digits, - or _")
        return value


# --------------------------------------------------------------------------- people


def _person_address(value: str) -> str:
    """A full address, or ``@domain`` for any address at that domain."""
    text = value.strip()
    if text.startswith("@"):
        return "@" + normalise_domain(text[1:])
    address = normalise_address(text)
    if "%" in address.rpartition("@")[0] or "!" in address:
        raise ValueError(f"{value!r}: '%' and '!' are routing characters, not part of an address")
    return address


class PersonEntry(_Strict):
    """``[people.<login>]``: one login (SMTP AUTH user and operating-system account)."""

    addresses: Annotated[
        tuple[Annotated[str, AfterValidator(_person_address)], ...], BeforeValidator(_as_tuple)
    ] = ()
    """MAIL FROM addresses the login may use; the first full one is its own (notices go
    there). ``@example.co.jp`` allows any address at that domain. Default when the login is
    not listed: the login itself if it is an address, else ``login@`` each internal domain."""
    role: Literal["sender", "reviewer", "admin"] = "sender"
    """``sender``; ``reviewer`` (may sign in to review); ``admin`` (may decide any queued
    message and act on someone's behalf, recorded as such)."""


# --------------------------------------------------------------------------- settings


class PolicySettings(_Strict):
    """``[settings]``: policy-wide defaults (at most one file may set them)."""

    soft_reject: StrictBool = False
    """Answer 451 4.7.1 instead of 550 5.7.1 for reject rules, for a rollout."""
    rewrite: RewriteMode = "undisclosed"
    """Default for ``rewrite-bcc`` rules: ``undisclosed``, ``sender`` or ``split``."""
    delay_minutes: StrictFloat = Field(default=5.0, gt=0, le=1440)
    """Default for ``delay`` rules without ``delay_minutes``."""


# --------------------------------------------------------------------------- conditions


class FindingCondition(_Strict):
    """Holds when at least one finding matches every constraint given."""

    detector: str
    """Detector id, e.g. ``personal-data``."""
    code: Names = ()
    """Finding code(s) of that detector; empty = any code. A string is accepted for one code."""
    count_at_least: StrictInt = Field(default=1, ge=1)
    """The finding's count must be at least this (records, addresses, occurrences)."""
    params_at_least: dict[str, StrictFloat] = Field(default_factory=dict)
    """Numeric finding parameters with minimums, e.g. ``{ organisations = 3 }``."""
    severity_at_least: Severity = "info"
    """Minimum severity: info < low < medium < high < critical."""
    where: Where = "anywhere"
    """``attachment``: seen in an attachment; ``body``: seen outside attachments."""


def _condition_kind(value: Any) -> str:
    """Route a table to `FindingCondition` when it names a detector, else to a group."""
    if isinstance(value, dict):
        return "finding" if "detector" in value else "group"
    return "finding" if isinstance(value, FindingCondition) else "group"


class ConditionGroup(_Strict):
    """Combines conditions; every non-empty list must hold (``all`` and ``any`` and ``none``)."""

    all: tuple[Condition, ...] = ()
    """Every condition must hold."""
    any: tuple[Condition, ...] = ()
    """At least one condition must hold."""
    none: tuple[Condition, ...] = ()
    """No condition may hold (exceptions)."""

    @model_validator(mode="after")
    def _not_empty(self) -> ConditionGroup:
        if not (self.all or self.any or self.none):
            raise ValueError("a condition group needs at least one of all, any, none")
        return self


Condition = Annotated[
    Annotated[FindingCondition, Tag("finding")] | Annotated[ConditionGroup, Tag("group")],
    Discriminator(_condition_kind),
]
ConditionGroup.model_rebuild()


# --------------------------------------------------------------------------- clients


def _network(value: str) -> str:
    """A CIDR (``10.0.20.0/24``, ``2001:db8::/32``) or one address, in canonical form."""
    text = value.strip() if isinstance(value, str) else value
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        try:
            near = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a network; write a CIDR such as 10.0.20.0/24 or one"
                " address such as 10.0.20.5"
            ) from exc
        raise ValueError(f"{value!r} has host bits set; did you mean {near}?") from exc


def _login(value: str) -> str:
    text = value.strip().casefold()
    if not text or len(text) > 254 or any(c.isspace() or c in ':%!"' for c in text):
        raise ValueError(
            f"login {value!r} may not be empty or contain spaces, ':', '%', '!' or '\"'"
        )
    return text


def _as_tables(value: Any) -> Any:
    """Accept one table where a list of tables is expected (``clients = { … }``)."""
    return (value,) if isinstance(value, dict) else value


class ClientMatch(_Strict):
    """One kind of client (``clients`` / ``except_clients``): holds when every key given holds."""

    networks: Annotated[
        tuple[Annotated[str, AfterValidator(_network)], ...], BeforeValidator(_as_tuple)
    ] = ()
    """The client's IP address lies in one of these CIDRs (or is one of these addresses)."""
    logins: Annotated[
        tuple[Annotated[str, AfterValidator(_login)], ...], BeforeValidator(_as_tuple)
    ] = ()
    """The client authenticated (SMTP AUTH) as one of these logins (case-insensitive)."""
    authenticated: StrictBool | None = None
    """``true``: the client authenticated; ``false``: it did not (a trusted-network client
    such as a printer or a script)."""

    @model_validator(mode="after")
    def _sensible(self) -> ClientMatch:
        if not (self.networks or self.logins or self.authenticated is not None):
            raise ValueError(
                "a client match needs at least one of networks, logins, authenticated"
                ' (e.g. { networks = ["10.0.20.0/24"], authenticated = false })'
            )
        if self.logins and self.authenticated is False:
            raise ValueError(
                "logins with authenticated = false can never hold: a login exists only after"
                " AUTH; drop one of them"
            )
        return self


ClientMatches = Annotated[tuple[ClientMatch, ...], BeforeValidator(_as_tables)]


# --------------------------------------------------------------------------- rules

# Which action parameters make sense for which action; anything else is refused at load.
ACTION_PARAMS: dict[str, frozenset[str]] = {
    "pass": frozenset(),
    "tag": frozenset(),
    "rewrite-bcc": frozenset({"rewrite"}),
    "delay": frozenset({"delay_minutes", "notify_sender"}),
    "hold": frozenset(
        {
            "reviewers",
            "self_release",
            "approvals",
            "expire_hours",
            "notify_sender",
            "notify_reviewers",
            "remind_hours",
            "escalate_hours",
            "escalate_to",
        }
    ),
    "reject": frozenset(),
}
_ALL_PARAMS = frozenset().union(*ACTION_PARAMS.values())


class Rule(_Strict):
    """``[[rule]]``: conditions, a scope and one action."""

    id: Annotated[str, AfterValidator(_kebab)]
    """Kebab-case, unique across all files; shown in replies, logs, notifications."""
    description: str = Field(min_length=1)
    """What the rule is for, for admins and reviewers."""
    enabled: StrictBool = True
    """A disabled rule is listed in traces as a miss and never matches."""
    mode: Literal["enforce", "warn"] = "enforce"
    """``warn``: log and trace what would have happened, then let the mail pass."""
    action: ActionName
    """``pass``, ``tag``, ``rewrite-bcc``, ``delay``, ``hold`` or ``reject``."""
    senders: Names = ()
    """Sender group names; when given, the rule applies only to these senders."""
    except_senders: Names = ()
    """Sender group names the rule never applies to."""
    clients: ClientMatches = ()
    """Kinds of client (network, login, AUTH or not); when given, the rule applies only to
    mail from a client that matches one of them. One table or a list of tables."""
    except_clients: ClientMatches = ()
    """Kinds of client the rule never applies to."""
    recipients: RecipientScope = "any"
    """Envelope recipient scope: ``any``, ``any-external``, ``all-external``, ``all-internal``."""
    when: ConditionGroup | None = None
    """Conditions on findings; absent = the rule matches on sender and recipient scope alone."""
    reason: Annotated[str, AfterValidator(_ascii_reason)] | None = None
    """Short ASCII reason for replies and logs; default names the findings that matched."""
    rewrite: RewriteMode | None = None
    """``rewrite-bcc`` only: ``undisclosed``, ``sender`` or ``split`` (default from settings)."""
    delay_minutes: StrictFloat | None = Field(default=None, gt=0, le=1440)
    """``delay`` only: minutes before the mail leaves (default from settings)."""
    reviewers: Annotated[tuple[MailAddress, ...], BeforeValidator(_as_tuple)] = ()
    """``hold`` only: reviewer addresses."""
    self_release: StrictBool = False
    """``hold`` only: the sender may release their own held mail."""
    approvals: StrictInt = Field(default=1, ge=1, le=10)
    """``hold`` only: distinct reviewers who must approve before release."""
    expire_hours: StrictFloat | None = Field(default=None, gt=0)
    """``hold`` only: business hours until an undecided hold expires (default: queue setting)."""
    notify_sender: StrictBool = True
    """``hold``/``delay``: tell the sender."""
    notify_reviewers: StrictBool = True
    """``hold`` only: tell the reviewers."""
    remind_hours: StrictFloat | None = Field(default=None, gt=0)
    """``hold`` only: business hours until an undecided hold reminds its reviewers."""
    escalate_hours: StrictFloat | None = Field(default=None, gt=0)
    """``hold`` only: business hours until an undecided hold goes to `escalate_to`."""
    escalate_to: Annotated[tuple[MailAddress, ...], BeforeValidator(_as_tuple)] = ()
    """``hold`` only: the second list of reviewers an undecided hold escalates to."""

    @model_validator(mode="after")
    def _escalation_has_a_list(self) -> Rule:
        if (self.escalate_hours is None) != (not self.escalate_to):
            raise ValueError("escalate_hours and escalate_to go together")
        return self

    @model_validator(mode="after")
    def _params_fit_action(self) -> Rule:
        allowed = ACTION_PARAMS[self.action]
        wrong = sorted((self.model_fields_set & _ALL_PARAMS) - allowed)
        if wrong:
            fits = ", ".join(sorted(allowed)) or "none"
            raise ValueError(
                f"{', '.join(wrong)} does not apply to action {self.action!r} "
                f"(parameters for {self.action!r}: {fits})"
            )
        return self


class PolicyFile(_Strict):
    """One TOML file as written; a directory of them is merged into a `Policy`."""

    organisation: OrganisationSection | None = None
    """``[organisation]``."""
    settings: PolicySettings | None = None
    """``[settings]``."""
    detectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """``[detectors.<id>]``, validated against each detector's own settings model."""
    rule: tuple[Rule, ...] = ()
    """``[[rule]]`` entries."""
    people: dict[str, PersonEntry] = Field(default_factory=dict)
    """``[people.<login>]``: which addresses each login may send as, and its role."""
    allow_empty: StrictBool = False
    """``allow_empty = true`` (a top-level key, before any table): a policy without any
    enabled rule is deliberate. Without it such a policy is refused, because an emptied or
    truncated file looks exactly like that."""

    @field_validator("people")
    @classmethod
    def _logins(cls, value: dict[str, PersonEntry]) -> dict[str, PersonEntry]:
        for login in value:
            if not login or len(login) > 254 or any(c.isspace() or c in ':%!"' for c in login):
                raise ValueError(
                    f"login {login!r} may not be empty or contain spaces, ':', '%', '!' or '\"'"
                )
        return value


class Policy(_Strict):
    """The merged policy of a directory."""

    organisation: OrganisationSection = OrganisationSection()
    """Union of every file's ``[organisation]``."""
    settings: PolicySettings = PolicySettings()
    """The one ``[settings]`` table, or the defaults."""
    rules: tuple[Rule, ...] = ()
    """Every rule of every file, in file-name order (order never changes the outcome)."""
    people: dict[str, PersonEntry] = Field(default_factory=dict)
    """Every file's ``[people]``, by case-folded login (a login may be listed in one file)."""
    allow_empty: bool = False
    """Some file says ``allow_empty = true``: no enabled rule is deliberate."""
