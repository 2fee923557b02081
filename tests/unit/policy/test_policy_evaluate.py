"""evaluate(): every rule matched, the most severe action wins, order never matters."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from sendguard.model import Action, Envelope, Finding, HoldParams, Mail, Part
from sendguard.policy.evaluate import evaluate
from sendguard.policy.load import LoadedPolicy, load_policy

WritePolicy = Callable[..., Path]

ORG = """
[organisation]
internal_domains = ["example.co.jp"]
external_lists = ["partners-ml@example.co.jp"]
[organisation.groups.sales]
domains = ["sales.example.co.jp"]
[organisation.groups.legal]
addresses = ["houmu@example.co.jp"]
"""

OUT = Envelope(mail_from="tanaka@example.co.jp", rcpt_tos=("a@customer.example.com",))
IN = Envelope(mail_from="tanaka@example.co.jp", rcpt_tos=("b@example.co.jp",))


def rule(rule_id: str, action: str, when: str = "", **extra: str) -> str:
    """One [[rule]] table."""
    lines = [f'id = "{rule_id}"', f'description = "{rule_id}"', f'action = "{action}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    if when:
        lines.append(f"when.any = [{when}]")
    return "\n[[rule]]\n" + "\n".join(lines) + "\n"


def finding(detector: str, code: str, count: int = 1, **kw: object) -> Finding:
    """A finding as a detector would report it."""
    return Finding(detector=detector, code=code, message=f"{code} seen", count=count, **kw)  # type: ignore[arg-type]


LIST = finding(
    "personal-data", "customer-list", 40, severity="high", where=("attachment 1 › 顧客.csv",)
)
VISIBLE = finding("visible-recipients", "external-visible", 38, params={"organisations": 12})
LOOKALIKE = finding("lookalike-domain", "lookalike", params={"domain": "gmial.com"})
MARKER = finding("confidential-marker", "marker", where=("subject",))


def load(write_policy: WritePolicy, *rules: str, **files: str) -> LoadedPolicy:
    """A policy from the organisation above plus the given rules in one file."""
    return load_policy(write_policy(org=ORG, rules="".join(rules), **files))


def test_no_rule_matching_passes_with_every_rule_traced_as_miss(write_policy: WritePolicy) -> None:
    """With no hits the verdict is the default pass, and the trace still lists each rule."""
    policy = load(
        write_policy,
        rule("hold-lookalike", "hold", '{ detector = "lookalike-domain" }'),
        rule("tag-marker", "tag", '{ detector = "confidential-marker" }'),
    )
    verdict = evaluate(policy, [], OUT, Mail())
    assert verdict.action is Action.PASS
    assert verdict.rule_id is None
    assert [(r.rule_id, r.matched) for r in verdict.trace.rules] == [
        ("hold-lookalike", False),
        ("tag-marker", False),
    ]
    assert verdict.trace.rules[0].reasons == ("lookalike-domain: not found",)
    assert verdict.trace.policy_version == policy.version


def test_most_severe_action_wins_whatever_the_rule_order(write_policy: WritePolicy) -> None:
    """Every permutation of rules and files gives the same action, rule and parameters."""
    rules = [
        rule("tag-marker", "tag", '{ detector = "confidential-marker" }'),
        rule(
            "bcc-visible", "rewrite-bcc", '{ detector = "visible-recipients", count_at_least = 10 }'
        ),
        rule(
            "hold-list",
            "hold",
            '{ detector = "personal-data", code = "customer-list" }',
            reviewers='["boss@example.co.jp"]',
        ),
        rule("delay-out", "delay", '{ detector = "visible-recipients" }'),
        rule(
            "hold-lookalike",
            "hold",
            '{ detector = "lookalike-domain" }',
            reviewers='["sec@example.co.jp"]',
            approvals="2",
        ),
    ]
    verdicts = set()
    for index, order in enumerate(itertools.permutations(rules)):
        if index % 7:  # 120 orders; every 7th keeps the test fast and still varied
            continue
        directory = write_policy(org=ORG, rules="".join(order[:2]), zz="".join(order[2:]))
        verdict = evaluate(load_policy(directory), [MARKER, VISIBLE, LIST, LOOKALIKE], OUT, Mail())
        verdicts.add(
            (verdict.action, verdict.rule_id, verdict.rewrite, verdict.hold, verdict.reason)
        )
    assert verdicts == {
        (
            Action.HOLD,
            "hold-list",
            "undisclosed",
            HoldParams(reviewers=("boss@example.co.jp", "sec@example.co.jp"), approvals_required=2),
            "personal-data/customer-list",
        )
    }


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (("reject", "hold", "delay", "rewrite-bcc", "tag", "pass"), Action.REJECT),
        (("hold", "delay", "rewrite-bcc", "tag", "pass"), Action.HOLD),
        (("delay", "rewrite-bcc", "tag", "pass"), Action.DELAY),
        (("rewrite-bcc", "tag", "pass"), Action.REWRITE),
        (("tag", "pass"), Action.TAG),
        (("pass",), Action.PASS),
    ],
)
def test_severity_order(
    write_policy: WritePolicy, actions: tuple[str, ...], expected: Action
) -> None:
    """reject > hold > delay > rewrite-bcc > tag > pass."""
    rules = [rule(f"r-{a}", a, '{ detector = "lookalike-domain" }') for a in reversed(actions)]
    verdict = evaluate(load(write_policy, *rules), [LOOKALIKE], OUT, Mail())
    assert verdict.action is expected
    assert verdict.rule_id == f"r-{expected.label}"


def test_rewrite_applies_together_with_hold_and_delay(write_policy: WritePolicy) -> None:
    """A matched rewrite is carried on a hold (and a delay) verdict; not on a reject."""
    bcc = rule("bcc", "rewrite-bcc", '{ detector = "visible-recipients" }', rewrite='"split"')
    for action in ("hold", "delay"):
        policy = load(write_policy, bcc, rule("other", action, '{ detector = "lookalike-domain" }'))
        verdict = evaluate(policy, [VISIBLE, LOOKALIKE], OUT, Mail())
        assert (verdict.action.label, verdict.rewrite) == (action, "split")
    policy = load(write_policy, bcc, rule("other", "reject", '{ detector = "lookalike-domain" }'))
    assert evaluate(policy, [VISIBLE, LOOKALIKE], OUT, Mail()).rewrite is None


def test_rewrite_mode_default_and_most_protective_wins(write_policy: WritePolicy) -> None:
    """Without a mode the [settings] default applies; of several, split beats undisclosed."""
    when = '{ detector = "visible-recipients" }'
    policy = load(
        write_policy, rule("a", "rewrite-bcc", when), settings='[settings]\nrewrite = "sender"\n'
    )
    assert evaluate(policy, [VISIBLE], OUT, Mail()).rewrite == "sender"
    policy = load(
        write_policy,
        rule("a", "rewrite-bcc", when),
        rule("b", "rewrite-bcc", when, rewrite='"split"'),
    )
    assert evaluate(policy, [VISIBLE], OUT, Mail()).rewrite == "split"


def test_warn_mode_rules_are_listed_but_never_act(write_policy: WritePolicy) -> None:
    """A matched warn-mode hold leaves the mail to pass (or to enforce rules) and is recorded."""
    policy = load(
        write_policy,
        rule("hold-lookalike", "hold", '{ detector = "lookalike-domain" }', mode='"warn"'),
        rule("tag-marker", "tag", '{ detector = "confidential-marker" }'),
    )
    verdict = evaluate(policy, [LOOKALIKE], OUT, Mail())
    assert (verdict.action, verdict.rule_id, verdict.warned) == (
        Action.PASS,
        None,
        ("hold-lookalike",),
    )
    assert verdict.trace.rules[0].matched
    assert verdict.trace.rules[0].mode == "warn"
    verdict = evaluate(policy, [LOOKALIKE, MARKER], OUT, Mail())
    assert (verdict.action, verdict.rule_id, verdict.warned) == (
        Action.TAG,
        "tag-marker",
        ("hold-lookalike",),
    )


def test_tag_headers_are_added_alongside_a_hold(write_policy: WritePolicy) -> None:
    """Tag rules add their headers even when a more severe action decides."""
    policy = load(
        write_policy,
        rule("tag-marker", "tag", '{ detector = "confidential-marker" }'),
        rule("hold-lookalike", "hold", '{ detector = "lookalike-domain" }'),
    )
    verdict = evaluate(policy, [LOOKALIKE, MARKER], OUT, Mail())
    assert verdict.action is Action.HOLD
    assert verdict.tag_headers == (
        ("X-Sendguard-Verdict", f"hold; rule=hold-lookalike; policy={policy.version[:12]}"),
        ("X-Sendguard-Tag", "tag-marker; confidential-marker/marker"),
    )


def test_delay_minutes_longest_wins_and_default_comes_from_settings(
    write_policy: WritePolicy,
) -> None:
    """Two matched delays give the longer delay; a delay without minutes uses the default."""
    when = '{ detector = "visible-recipients" }'
    policy = load(
        write_policy,
        rule("a", "delay", when),
        rule("b", "delay", when, delay_minutes="3"),
        settings="[settings]\ndelay_minutes = 10\n",
    )
    verdict = evaluate(policy, [VISIBLE], OUT, Mail())
    assert (verdict.delay_minutes, verdict.rule_id, verdict.hold.self_release) == (10.0, "a", True)


def test_recipient_scope(write_policy: WritePolicy) -> None:
    """any-external, all-external and all-internal look at the envelope recipients."""
    policy = load(
        write_policy,
        rule("any-ext", "tag", recipients='"any-external"'),
        rule("all-ext", "tag", recipients='"all-external"'),
        rule("all-int", "tag", recipients='"all-internal"'),
    )

    def hits(*rcpts: str) -> list[str]:
        verdict = evaluate(policy, [], Envelope("tanaka@example.co.jp", rcpts), Mail())
        return [r.rule_id for r in verdict.trace.rules if r.matched]

    assert hits("b@example.co.jp", "c@dev.example.co.jp") == ["all-int"]
    assert hits("b@example.co.jp", "x@customer.example.com") == ["any-ext"]
    assert hits("x@customer.example.com") == ["any-ext", "all-ext"]
    assert hits("partners-ml@example.co.jp") == ["any-ext", "all-ext"]  # list with outsiders


def test_sender_groups_and_exceptions(write_policy: WritePolicy) -> None:
    """senders limits a rule to groups (by domain, address or list file); except_senders exempts."""
    directory = write_policy(
        org=ORG + '[organisation.groups.hr]\nlist_file = "hr.txt"\n',
        rules=rule("sales-only", "tag", senders='"sales"')
        + rule("not-legal", "tag", except_senders='["legal"]')
        + rule("hr-only", "tag", senders='["hr"]'),
    )
    (directory / "hr.txt").write_text(
        "# 人事部\nJinji@Example.co.jp  # manager\n", encoding="utf-8"
    )
    policy = load_policy(directory)

    def hits(sender: str) -> list[str]:
        verdict = evaluate(policy, [], Envelope(sender, ("x@customer.example.com",)), Mail())
        return [r.rule_id for r in verdict.trace.rules if r.matched]

    assert hits("yamada@sales.example.co.jp") == ["sales-only", "not-legal"]
    assert hits("houmu@example.co.jp") == []
    assert hits("jinji@example.co.jp") == ["not-legal", "hr-only"]
    verdict = evaluate(policy, [], Envelope("houmu@example.co.jp", ("x@c.example",)), Mail())
    assert verdict.trace.rules[1].reasons == ("sender is in excepted group legal",)


def test_conditions_on_count_params_severity_and_code(write_policy: WritePolicy) -> None:
    """count_at_least, params_at_least, severity_at_least and code lists all constrain a hit."""
    policy = load(
        write_policy,
        rule("count", "tag", '{ detector = "visible-recipients", count_at_least = 38 }'),
        rule("count-high", "tag", '{ detector = "visible-recipients", count_at_least = 39 }'),
        rule(
            "orgs",
            "tag",
            '{ detector = "visible-recipients", params_at_least = { organisations = 12 } }',
        ),
        rule(
            "orgs-high",
            "tag",
            '{ detector = "visible-recipients", params_at_least = { organisations = 13 } }',
        ),
        rule("sev", "tag", '{ detector = "personal-data", severity_at_least = "high" }'),
        rule("sev-crit", "tag", '{ detector = "personal-data", severity_at_least = "critical" }'),
        rule(
            "codes", "tag", '{ detector = "personal-data", code = ["my-number", "customer-list"] }'
        ),
        rule("code-card", "tag", '{ detector = "personal-data", code = "credit-card" }'),
    )
    verdict = evaluate(policy, [VISIBLE, LIST], OUT, Mail())
    assert {r.rule_id: r.matched for r in verdict.trace.rules} == {
        "count": True,
        "count-high": False,
        "orgs": True,
        "orgs-high": False,
        "sev": True,
        "sev-crit": False,
        "codes": True,
        "code-card": False,
    }
    miss = next(r for r in verdict.trace.rules if r.rule_id == "count-high")
    assert miss.reasons == (
        "visible-recipients count >= 39: not found (seen: external-visible count 38)",
    )
    hit = next(r for r in verdict.trace.rules if r.rule_id == "count")
    assert hit.findings == (VISIBLE,)


def test_where_attachment_or_body(write_policy: WritePolicy) -> None:
    """where = attachment needs the finding in an attachment part; body needs one outside."""
    policy = load(
        write_policy,
        rule("in-att", "tag", '{ detector = "personal-data", where = "attachment" }'),
        rule("in-body", "tag", '{ detector = "personal-data", where = "body" }'),
    )
    mail = Mail(
        parts=(
            Part(path=("body",), declared_type="text/plain", sniffed_type="text/plain"),
            Part(
                path=("attachment 1", "顧客.csv"),
                declared_type="text/csv",
                sniffed_type="text/csv",
                is_attachment=True,
            ),
        )
    )
    in_att = finding("personal-data", "phone", where=("attachment 1 › 顧客.csv",))
    in_body = finding("personal-data", "phone", where=("body",))

    def matched(fs: list[Finding]) -> list[str]:
        return [r.rule_id for r in evaluate(policy, fs, OUT, mail).trace.rules if r.matched]

    assert matched([in_att]) == ["in-att"]
    assert matched([in_body]) == ["in-body"]


def test_all_any_none_combinations(write_policy: WritePolicy) -> None:
    """all needs every condition, any one of them, none is an exception that blocks the rule."""
    text = """
[[rule]]
id = "combo"
description = "combo"
action = "hold"
when.all = [
  { detector = "personal-data" },
  { any = [{ detector = "lookalike-domain" }, { detector = "visible-recipients" }] },
]
when.none = [{ detector = "confidential-marker" }]
"""
    policy = load(write_policy, text)

    def outcome(fs: list[Finding]) -> Action:
        return evaluate(policy, fs, OUT, Mail()).action

    assert outcome([LIST]) is Action.PASS
    assert outcome([LIST, VISIBLE]) is Action.HOLD
    assert outcome([LIST, LOOKALIKE]) is Action.HOLD
    assert outcome([LIST, LOOKALIKE, MARKER]) is Action.PASS
    reasons = evaluate(policy, [LIST, LOOKALIKE, MARKER], OUT, Mail()).trace.rules[0].reasons
    assert (
        reasons[-1]
        == "exception applies: confidential-marker: found (confidential-marker/marker count 1)"
    )


def test_disabled_rule_never_matches_and_says_so(write_policy: WritePolicy) -> None:
    """A disabled rule is a traced miss with the reason."""
    policy = load(
        write_policy,
        rule("off", "reject", '{ detector = "lookalike-domain" }', enabled="false"),
        deliberate="allow_empty = true\n",  # no enabled rule: deliberate here
    )
    verdict = evaluate(policy, [LOOKALIKE], OUT, Mail())
    assert verdict.action is Action.PASS
    assert verdict.trace.rules[0].reasons[0] == "rule is disabled"


def test_reason_from_rule_or_from_finding_ids(write_policy: WritePolicy) -> None:
    """The verdict reason is the rule's ASCII reason, else the detector/code ids (no evidence)."""
    policy = load(
        write_policy,
        rule(
            "r",
            "reject",
            '{ detector = "lookalike-domain" }',
            reason='"Recipient domain looks like a typo"',
        ),
    )
    assert evaluate(policy, [LOOKALIKE], OUT, Mail()).reason == "Recipient domain looks like a typo"
    policy = load(write_policy, rule("r", "reject", '{ detector = "lookalike-domain" }'))
    assert evaluate(policy, [LOOKALIKE], OUT, Mail()).reason == "lookalike-domain/lookalike"
    assert evaluate(policy, [LOOKALIKE], IN, Mail()).action is Action.REJECT
