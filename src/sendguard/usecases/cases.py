"""Policy test cases (``policies/tests/*.toml``) and running them: ``sendguard policy test``.

Each case names a message file, an envelope and the expected action (optionally the rule
that must decide and the warn-mode rules expected), so admins can keep their policy under
CI. Cases run through `sendguard.inspect.inspect_sync` — the real parser, detectors and
evaluator — offline by default so results do not depend on DNS.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from sendguard.errors import PolicyError, SendguardError
from sendguard.inspect import inspect_sync
from sendguard.model import Envelope
from sendguard.parse import parse_message
from sendguard.parse.limits import ParseLimits
from sendguard.policy import messages
from sendguard.policy.load import LoadedPolicy
from sendguard.policy.schema import ActionName


class Case(BaseModel):
    """``[[case]]``: one message, one envelope, what the policy must do with it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    """What the case shows, printed in the results."""
    message: str
    """Message file (.eml), relative to the case file."""
    mail_from: str
    """Envelope sender."""
    rcpt: tuple[str, ...] = ()
    """Envelope recipients."""
    rcpt_from_headers: StrictBool = False
    """Also take every To/Cc/Bcc address of the message as an envelope recipient."""
    auth_user: str | None = None
    """The client authenticated as this login (sender groups then use its own address)."""
    client: str = ""
    """Client IP address, for rules with ``clients``."""
    expect: ActionName
    """Expected final action."""
    rule: str | None = None
    """Expected deciding rule id (optional)."""
    warned: tuple[str, ...] | None = None
    """Expected warn-mode rules that would have acted (optional; order ignored)."""


class CaseFile(BaseModel):
    """One ``tests/*.toml`` file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case: tuple[Case, ...] = Field(min_length=1)
    """``[[case]]`` entries."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    """Outcome of one case."""

    file: Path
    case: Case
    ok: bool
    got: str
    """``action (rule)`` as evaluated, or the error."""
    notes: tuple[str, ...] = ()


def smtp_bytes(data: bytes) -> bytes:
    """Bare LF → CRLF, as the message would arrive over SMTP."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def load_cases(directory: Path) -> list[tuple[Path, Case]]:
    """Every case of every ``*.toml`` in ``directory``; PolicyError on an invalid file."""
    found: list[tuple[Path, Case]] = []
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read test cases: {exc}", file=str(path)) from exc
        try:
            parsed = CaseFile.model_validate(data)
        except ValidationError as exc:
            raise messages.from_validation(exc, file=str(path), data=data, root=CaseFile) from exc
        found += [(path, case) for case in parsed.case]
    return found


def run_case(
    path: Path,
    case: Case,
    policy: LoadedPolicy,
    *,
    offline: bool,
    limits: ParseLimits | None = None,
    network_timeout: float = 5.0,
) -> CaseResult:
    """Inspect the case's message with its envelope and compare with the expectation.

    ``limits``: the relay's parsing limits (`Settings.limits`), so a case decides as the
    relay would; the defaults when not given.
    """
    limits = limits or ParseLimits.model_validate({})
    try:
        data = smtp_bytes((path.parent / case.message).read_bytes())
    except OSError as exc:
        return CaseResult(path, case, False, f"cannot read message: {exc.strerror}")
    rcpts = list(case.rcpt)
    if case.rcpt_from_headers:
        mail = parse_message(data, limits)
        rcpts += [a.addr_spec for a in (*mail.to, *mail.cc, *mail.bcc)]
    envelope = policy.people.bind(
        Envelope(
            mail_from=case.mail_from,
            rcpt_tos=tuple(dict.fromkeys(rcpts)),
            client_address=case.client,
            auth_user=case.auth_user,
        )
    )
    if case.auth_user is not None and not policy.people.may_send_as(case.auth_user, case.mail_from):
        got = f"refused at MAIL: {case.auth_user} may not send as <{case.mail_from}>"
        return CaseResult(path, case, False, got)
    try:
        inspection = inspect_sync(
            envelope, data, policy, limits, offline=offline, network_timeout=network_timeout
        )
    except SendguardError as exc:
        return CaseResult(path, case, False, f"inspection failed: {exc}")
    verdict = inspection.verdict
    got = f"{verdict.action.label} ({verdict.rule_id or 'no rule'})"
    ok = verdict.action.label == case.expect
    ok &= case.rule is None or case.rule == verdict.rule_id
    if case.warned is not None:
        ok &= sorted(case.warned) == sorted(verdict.warned)
        got += f" warned={list(verdict.warned)}"
    return CaseResult(path, case, ok, got, inspection.notes)
