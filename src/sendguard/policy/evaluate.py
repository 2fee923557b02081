"""Findings + envelope + policy → one `Verdict` with a full trace.

Sits after the detectors and before the actions. Every rule is matched (hit or miss, with
reasons), then one action is chosen: the most severe matched action of the enforce-mode
rules wins (reject > hold > delay > rewrite-bcc > tag > pass). Ties between rules with the
same action are broken by rule id and their parameters are combined, so the order of rules
in the files can never change the outcome. A rewrite applies together with a delay or hold;
tag rules add headers whatever else happens (except a reject). Warn-mode rules are traced
and listed in `Verdict.warned` but never act. Pure: no I/O, no logging.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sendguard.detect.domains import is_internal
from sendguard.model import (
    Action,
    Envelope,
    Finding,
    HoldParams,
    Mail,
    RewriteMode,
    RuleResult,
    Trace,
    Verdict,
)
from sendguard.policy.load import LoadedPolicy
from sendguard.policy.schema import (
    SEVERITY_ORDER,
    ClientMatch,
    ConditionGroup,
    FindingCondition,
    Rule,
)
from sendguard.policy.scope import sender_groups

ACTIONS: dict[str, Action] = {action.label: action for action in Action}
"""Policy-file action names → `Action`."""

# Most protective first: split shows each outsider only themselves.
_REWRITE_RANK: dict[RewriteMode, int] = {"split": 2, "undisclosed": 1, "sender": 0}


@dataclass(frozen=True, slots=True)
class _Context:
    findings: tuple[Finding, ...]
    attachment_labels: frozenset[str]
    groups: frozenset[str]
    internal: int
    external: int
    client: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    login: str | None = None
    """The SMTP AUTH login (case-folded), None without AUTH."""

    @property
    def sender(self) -> str:
        """Who sender groups were matched for, as reasons say it."""
        return f"sender (login {self.login})" if self.login is not None else "sender"

    @property
    def client_label(self) -> str:
        where = str(self.client) if self.client is not None else "(address unknown)"
        return f"client {where} " + (f"with AUTH as {self.login}" if self.login else "without AUTH")


@dataclass(frozen=True, slots=True)
class _Outcome:
    held: bool
    reasons: tuple[str, ...]
    findings: tuple[Finding, ...] = ()


_LEAN_ACTIONS = (Action.PASS, Action.TAG)
"""Verdicts whose trace no one reads the reasons of: the message goes on as one copy (so no
split can leave a rest to queue), nothing is stored or rejected, no notice is sent."""


def evaluate(
    policy: LoadedPolicy,
    findings: Sequence[Finding],
    envelope: Envelope,
    mail: Mail,
    *,
    lean: bool = False,
) -> Verdict:
    """Match every rule and decide; the verdict's trace holds every finding and rule.

    ``lean`` (the live relay): rules are first matched without their reasons (the sentences
    cost ~3/4 of this function and are read only by people); when that decides pass or tag,
    that verdict is returned, its rule results without reasons. Any other verdict (stored,
    shown to a reviewer, rejected with a notice) is evaluated again in full. Either way the
    decision is the full evaluation's: tests/unit/policy/test_lean_evaluate.py."""
    internal = sum(1 for r in envelope.rcpt_tos if is_internal(r, policy.organisation))
    ctx = _Context(
        findings=tuple(findings),
        attachment_labels=frozenset(p.label for p in mail.parts if p.is_attachment),
        # Authenticated mail: the login's own address, never the MAIL FROM it chose.
        groups=sender_groups(envelope.sender, policy.groups),
        internal=internal,
        external=len(envelope.rcpt_tos) - internal,
        client=_ip(envelope.client_address),
        login=envelope.auth_user.casefold() if envelope.auth_user is not None else None,
    )
    if lean:
        quick = _decide(
            policy, tuple(_quick_rule(r, ctx) for r in policy.policy.rules), ctx.findings
        )
        if quick.action in _LEAN_ACTIONS:
            return quick
    results = tuple(_match_rule(rule, ctx) for rule in policy.policy.rules)
    return _decide(policy, results, ctx.findings)


# --------------------------------------------------------------------------- lean matching
# The same decisions as `_match_rule`, `_group` and `_condition` below, without reasons.


def _quick_rule(rule: Rule, ctx: _Context) -> RuleResult:
    """`_match_rule` without reasons; the cheap parts first, the conditions only if needed
    (an unmatched rule's findings are never kept)."""
    matched = (
        rule.enabled
        and (not rule.senders or bool(ctx.groups & set(rule.senders)))
        and not (ctx.groups & set(rule.except_senders))
        and (not rule.clients or any(_client_fits(m, ctx) for m in rule.clients))
        and not any(_client_fits(m, ctx) for m in rule.except_clients)
        and _in_scope(rule.recipients, ctx)
    )
    found: tuple[Finding, ...] = ()
    if matched and rule.when is not None:
        matched, found = _quick_group(rule.when, ctx)
    return RuleResult(
        rule_id=rule.id,
        description=rule.description,
        matched=matched,
        action=ACTIONS[rule.action],
        mode=rule.mode,
        findings=found if matched else (),
    )


def _quick_group(group: ConditionGroup, ctx: _Context) -> tuple[bool, tuple[Finding, ...]]:
    """`_group`'s held and findings: every `all` sub's findings, the held `any` subs'."""
    held = True
    found: list[Finding] = []
    if group.all:
        subs = [_quick_condition(c, ctx) for c in group.all]
        held &= all(s[0] for s in subs)
        found += [f for s in subs for f in s[1]]
    if group.any:
        subs = [_quick_condition(c, ctx) for c in group.any]
        held &= any(s[0] for s in subs)
        found += [f for s in subs if s[0] for f in s[1]]
    if group.none:
        held &= not any(_quick_condition(c, ctx)[0] for c in group.none)
    return held, _unique(found)


def _quick_condition(
    cond: FindingCondition | ConditionGroup, ctx: _Context
) -> tuple[bool, tuple[Finding, ...]]:
    if isinstance(cond, ConditionGroup):
        return _quick_group(cond, ctx)
    hits = tuple(f for f in ctx.findings if _fits(cond, f, ctx))
    return bool(hits), hits


# --------------------------------------------------------------------------- matching


def _match_rule(rule: Rule, ctx: _Context) -> RuleResult:
    """One rule, hit or miss, with a reason for every part that was checked."""
    parts: list[_Outcome] = []
    if not rule.enabled:
        parts.append(_Outcome(False, ("rule is disabled",)))
    if rule.senders:
        inside = sorted(ctx.groups & set(rule.senders))
        names = ", ".join(rule.senders)
        parts.append(
            _Outcome(True, (f"{ctx.sender} is in group {inside[0]}",))
            if inside
            else _Outcome(False, (f"{ctx.sender} is not in group(s) {names}",))
        )
    excluded = sorted(ctx.groups & set(rule.except_senders))
    if excluded:
        parts.append(_Outcome(False, (f"{ctx.sender} is in excepted group {excluded[0]}",)))
    if rule.clients:
        parts.append(_clients(rule.clients, ctx))
    spared = [i for i, m in enumerate(rule.except_clients) if _client_fits(m, ctx)]
    if spared:
        match = _describe_client(rule.except_clients[spared[0]])
        parts.append(_Outcome(False, (f"{ctx.client_label} is excepted ({match})",)))
    parts.append(_recipient_scope(rule.recipients, ctx))
    if rule.when is not None:
        parts.append(_group(rule.when, ctx))
    matched = all(p.held for p in parts)
    return RuleResult(
        rule_id=rule.id,
        description=rule.description,
        matched=matched,
        action=ACTIONS[rule.action],
        mode=rule.mode,
        reasons=tuple(r for p in parts for r in p.reasons),
        findings=_unique(f for p in parts for f in p.findings) if matched else (),
    )


def _clients(matches: tuple[ClientMatch, ...], ctx: _Context) -> _Outcome:
    """The rule's ``clients``: one of them must fit the client."""
    for match in matches:
        if _client_fits(match, ctx):
            return _Outcome(
                True, (f"{ctx.client_label} matches clients ({_describe_client(match)})",)
            )
    wanted = " | ".join(_describe_client(m) for m in matches)
    return _Outcome(False, (f"{ctx.client_label} is not one of the clients ({wanted})",))


def _client_fits(match: ClientMatch, ctx: _Context) -> bool:
    """Every key given holds: AUTH or not, the login, the network."""
    if match.authenticated is not None and match.authenticated != (ctx.login is not None):
        return False
    if match.logins and ctx.login not in match.logins:
        return False
    if match.networks:
        ip = ctx.client
        return ip is not None and any(
            ip.version == net.version and ip in net for net in map(_net, match.networks)
        )
    return True


def _describe_client(match: ClientMatch) -> str:
    """``networks 10.0.20.0/24; authenticated = false`` — the match as people read it."""
    parts = []
    if match.networks:
        parts.append("networks " + ", ".join(match.networks))
    if match.logins:
        parts.append("logins " + ", ".join(match.logins))
    if match.authenticated is not None:
        parts.append(f"authenticated = {'true' if match.authenticated else 'false'}")
    return "; ".join(parts)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0]) if text else None
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=256)
def _net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Networks are validated (canonical) strings in the policy; parsed once each."""
    return ipaddress.ip_network(text)


def _in_scope(scope: str, ctx: _Context) -> bool:
    return {
        "any": True,
        "any-external": ctx.external > 0,
        "all-external": ctx.external > 0 and ctx.internal == 0,
        "all-internal": ctx.external == 0 and ctx.internal > 0,
    }[scope]


def _recipient_scope(scope: str, ctx: _Context) -> _Outcome:
    held = _in_scope(scope, ctx)
    if scope == "any":
        return _Outcome(True, ())
    counts = f"{ctx.external} external, {ctx.internal} internal envelope recipient(s)"
    return _Outcome(held, (f"recipients {scope}: {'yes' if held else 'no'} ({counts})",))


def _group(group: ConditionGroup, ctx: _Context) -> _Outcome:
    """all: every one holds; any: at least one; none: not one. Empty lists are ignored."""
    outcomes: list[_Outcome] = []
    reasons: list[str] = []
    held = True
    if group.all:
        subs = [_condition(c, ctx) for c in group.all]
        held &= all(s.held for s in subs)
        outcomes += subs
        reasons += [r for s in subs for r in s.reasons]
    if group.any:
        subs = [_condition(c, ctx) for c in group.any]
        held &= any(s.held for s in subs)
        outcomes += [s for s in subs if s.held]
        reasons += [r for s in subs for r in s.reasons]
    if group.none:
        subs = [_condition(c, ctx) for c in group.none]
        held &= not any(s.held for s in subs)
        reasons += [
            f"exception {'applies' if s.held else 'absent'}: {r}" for s in subs for r in s.reasons
        ]
    return _Outcome(held, tuple(reasons), _unique(f for o in outcomes for f in o.findings))


def _condition(cond: FindingCondition | ConditionGroup, ctx: _Context) -> _Outcome:
    if isinstance(cond, ConditionGroup):
        return _group(cond, ctx)
    hits = tuple(f for f in ctx.findings if _fits(cond, f, ctx))
    label = _describe(cond)
    if hits:
        counts = ", ".join(f"{f.detector}/{f.code} count {f.count}" for f in hits)
        return _Outcome(True, (f"{label}: found ({counts})",), hits)
    near = [
        f
        for f in ctx.findings
        if f.detector == cond.detector and (not cond.code or f.code in cond.code)
    ]
    seen = f" (seen: {', '.join(f'{f.code} count {f.count}' for f in near)})" if near else ""
    return _Outcome(False, (f"{label}: not found{seen}",))


def _fits(cond: FindingCondition, finding: Finding, ctx: _Context) -> bool:
    if finding.detector != cond.detector or (cond.code and finding.code not in cond.code):
        return False
    if finding.count < cond.count_at_least:
        return False
    if SEVERITY_ORDER.index(finding.severity) < SEVERITY_ORDER.index(cond.severity_at_least):
        return False
    for name, minimum in cond.params_at_least.items():
        value = finding.params.get(name)
        if not isinstance(value, int | float) or value < minimum:
            return False
    if cond.where == "anywhere":
        return True
    in_attachment = [_is_attachment(w, ctx) for w in finding.where] or [False]
    return any(in_attachment) if cond.where == "attachment" else not all(in_attachment)


def _is_attachment(where: str, ctx: _Context) -> bool:
    return where in ctx.attachment_labels or where.startswith("attachment")


def _describe(cond: FindingCondition) -> str:
    """``personal-data/my-number|credit-card count >= 10`` — the condition as people read it."""
    text = cond.detector + ("/" + "|".join(cond.code) if cond.code else "")
    limits = [f"count >= {cond.count_at_least}"] if cond.count_at_least > 1 else []
    limits += [f"{k} >= {v:g}" for k, v in cond.params_at_least.items()]
    if cond.severity_at_least != "info":
        limits.append(f"severity >= {cond.severity_at_least}")
    if cond.where != "anywhere":
        limits.append(f"in {cond.where}")
    return text + (" " + ", ".join(limits) if limits else "")


def _unique(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Drop repeats of the same finding object, keeping the first (findings are unhashable)."""
    seen: set[int] = set()
    result: list[Finding] = []
    for f in findings:
        if id(f) not in seen:
            seen.add(id(f))
            result.append(f)
    return tuple(result)


# --------------------------------------------------------------------------- deciding


def _decide(
    loaded: LoadedPolicy, results: tuple[RuleResult, ...], findings: tuple[Finding, ...]
) -> Verdict:
    """The most severe enforce-mode hit decides; parameters of equal hits are combined."""
    rules = {rule.id: rule for rule in loaded.policy.rules}
    trace = Trace(findings=findings, rules=results, policy_version=loaded.version)
    warned = tuple(r.rule_id for r in results if r.matched and r.mode == "warn" and r.action)
    acting = [r for r in results if r.matched and r.mode == "enforce"]
    if not acting:
        return Verdict(action=Action.PASS, reason="no rule matched", trace=trace, warned=warned)
    top = max(r.action for r in acting)
    deciding = min((r for r in acting if r.action == top), key=lambda r: r.rule_id)
    same = [rules[r.rule_id] for r in acting if r.action == top]

    def of(action: Action) -> list[Rule]:
        return [rules[r.rule_id] for r in acting if r.action == action]

    rewrite: RewriteMode | None = None
    if top in (Action.REWRITE, Action.DELAY, Action.HOLD) and of(Action.REWRITE):
        default = loaded.policy.settings.rewrite
        modes: list[RewriteMode] = [r.rewrite or default for r in of(Action.REWRITE)]
        best: RewriteMode = max(modes, key=_REWRITE_RANK.__getitem__)
        rewrite = best
    tags = [r for r in acting if r.action == Action.TAG] if top != Action.REJECT else []
    verdict_header = f"{top.label}; rule={deciding.rule_id}; policy={loaded.version[:12]}"
    return Verdict(
        action=top,
        rule_id=deciding.rule_id,
        reason=rules[deciding.rule_id].reason or _auto_reason(deciding),
        rewrite=rewrite,
        tag_headers=_tag_headers(tags, verdict_header),
        delay_minutes=max(r.delay_minutes or loaded.policy.settings.delay_minutes for r in same)
        if top == Action.DELAY
        else 0.0,
        hold=_hold_params(same, top),
        trace=trace,
        warned=warned,
    )


def _tag_headers(tags: list[RuleResult], verdict_header: str) -> tuple[tuple[str, str], ...]:
    """The verdict header plus one header per matched tag rule (none without tag rules)."""
    if not tags:
        return ()
    per_rule = (
        ("X-Sendguard-Tag", f"{r.rule_id}; {_codes(r.findings)}")
        for r in sorted(tags, key=lambda r: r.rule_id)
    )
    return (("X-Sendguard-Verdict", verdict_header), *per_rule)


def _codes(findings: Iterable[Finding]) -> str:
    return ", ".join(sorted({f"{f.detector}/{f.code}" for f in findings})) or "no findings"


def _auto_reason(result: RuleResult) -> str:
    """ASCII reason from the findings' ids (never their evidence)."""
    if not result.findings:
        return f"matched rule {result.rule_id}"
    return _codes(result.findings)


def _hold_params(rules: list[Rule], top: Action) -> HoldParams:
    """Combine equal-severity rules the strict way: every reviewer, most approvals, shortest
    expiry (and reminder and escalation), self-release only if every rule allows it, notify
    if any rule asks."""
    if top not in (Action.HOLD, Action.DELAY):
        return HoldParams()
    expiries = [r.expire_hours for r in rules if r.expire_hours is not None]
    reminders = [r.remind_hours for r in rules if r.remind_hours is not None]
    escalations = [r.escalate_hours for r in rules if r.escalate_hours is not None]
    return HoldParams(
        reviewers=tuple(sorted({a for r in rules for a in r.reviewers})),
        self_release=top == Action.DELAY or all(r.self_release for r in rules),
        approvals_required=max(r.approvals for r in rules),
        expire_hours=min(expiries) if expiries else None,
        notify_sender=any(r.notify_sender for r in rules),
        notify_reviewers=top == Action.HOLD and any(r.notify_reviewers for r in rules),
        remind_hours=min(reminders) if reminders and top == Action.HOLD else None,
        escalate_hours=min(escalations) if escalations and top == Action.HOLD else None,
        escalate_to=tuple(sorted({a for r in rules for a in r.escalate_to}))
        if top == Action.HOLD
        else (),
    )
