"""`evaluate(lean=True)` (the live relay) decides exactly as the full evaluation: the same
verdict, and for pass and tag the same trace but for the rules' reasons; anything else is
the full verdict itself. Random findings and envelopes against the shipped policy and a
policy using every part of the rule language (nested all/any/none, senders and their
exceptions, clients, scopes, disabled and warn-mode rules, params, severity, where)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendguard.model import Action, Envelope, Finding, Mail, Part, Verdict
from sendguard.policy.evaluate import evaluate
from sendguard.policy.load import LoadedPolicy, load_policy

ROOT = Path(__file__).resolve().parents[3]

RICH = """
[organisation]
internal_domains = ["example.co.jp"]
external_lists = ["partners-ml@example.co.jp"]
[organisation.groups.sales]
domains = ["sales.example.co.jp"]
[organisation.groups.legal]
addresses = ["houmu@example.co.jp"]

[[rule]]
id = "combo"
description = "combo"
action = "hold"
recipients = "any-external"
when.all = [
  { detector = "personal-data" },
  { any = [
    { detector = "lookalike-domain" },
    { detector = "visible-recipients", count_at_least = 3 },
  ] },
]
when.none = [{ detector = "confidential-marker", where = "attachment" }]

[[rule]]
id = "nested-failing-all"
description = "findings of a failed nested group"
action = "tag"
when.all = [{ any = [
  { all = [{ detector = "personal-data" }, { detector = "lookalike-domain" }] },
  { detector = "confidential-marker" },
] }]

[[rule]]
id = "sales-only"
description = "sales"
action = "delay"
senders = ["sales"]
except_senders = ["legal"]
when.any = [
  { detector = "personal-data", code = ["my-number", "credit-card"], severity_at_least = "high" },
]

[[rule]]
id = "clients"
description = "clients"
action = "reject"
clients = [{ networks = ["10.0.0.0/8"], authenticated = false }, { logins = ["tanaka"] }]
except_clients = [{ networks = ["10.9.0.0/16"] }]
when.any = [{ detector = "visible-recipients", params_at_least = { organisations = 2 } }]

[[rule]]
id = "body-only"
description = "body"
action = "rewrite-bcc"
rewrite = "split"
recipients = "all-external"
when.any = [{ detector = "visible-recipients", where = "body", count_at_least = 2 }]

[[rule]]
id = "internal"
description = "internal"
action = "tag"
recipients = "all-internal"
when.any = [{ detector = "confidential-marker" }]

[[rule]]
id = "warned"
description = "warn"
action = "hold"
mode = "warn"
when.any = [{ detector = "unresolvable-domain" }]

[[rule]]
id = "off"
description = "off"
action = "reject"
enabled = false
when.any = [{ detector = "personal-data" }]

[[rule]]
id = "always"
description = "every outside message"
action = "tag"
recipients = "any-external"
"""

DETECTORS = {
    "personal-data": ("customer-list", "my-number", "credit-card", "phone"),
    "lookalike-domain": ("lookalike",),
    "visible-recipients": ("external-visible", "organisations-visible"),
    "confidential-marker": ("marker",),
    "unresolvable-domain": ("nxdomain", "dns-error"),
    "external-recipients": ("external",),
    "uninspectable-attachment": ("encrypted", "limit"),
}


@st.composite
def findings(draw: st.DrawFn) -> list[Finding]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        detector = draw(st.sampled_from(sorted(DETECTORS)))
        out.append(
            Finding(
                detector=detector,
                code=draw(st.sampled_from(DETECTORS[detector])),
                message="m",
                count=draw(st.integers(1, 15)),
                severity=draw(st.sampled_from(["info", "low", "medium", "high", "critical"])),
                params=draw(
                    st.dictionaries(st.sampled_from(["score", "organisations"]), st.integers(0, 4))
                ),
                where=tuple(
                    draw(
                        st.lists(
                            st.sampled_from(["body", "subject", "a.xlsx", "attachment 2"]),
                            max_size=2,
                        )
                    )
                ),
            )
        )
    return out


ADDRESSES = (
    "a@customer.example",
    "b@example.co.jp",
    "partners-ml@example.co.jp",
    "c@partner.example.jp",
)
SENDERS = ("tanaka@example.co.jp", "x@sales.example.co.jp", "houmu@example.co.jp", "")
CLIENTS = ("", "10.1.2.3", "10.9.1.1", "192.0.2.1", "::ffff:10.1.1.1")


@st.composite
def envelopes(draw: st.DrawFn) -> Envelope:
    return Envelope(
        mail_from=draw(st.sampled_from(SENDERS)),
        rcpt_tos=tuple(draw(st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=4))),
        client_address=draw(st.sampled_from(CLIENTS)),
        auth_user=draw(st.sampled_from([None, "tanaka", "suzuki"])),
    )


MAIL = Mail(
    parts=(
        Part(path=("body",), declared_type="text/plain", sniffed_type="text/plain"),
        Part(path=("a.xlsx",), declared_type="x", sniffed_type="x", is_attachment=True),
    )
)


def without_reasons(verdict: Verdict) -> Verdict:
    rules = tuple(dataclasses.replace(r, reasons=()) for r in verdict.trace.rules)
    return dataclasses.replace(verdict, trace=dataclasses.replace(verdict.trace, rules=rules))


def check(policy: LoadedPolicy, found: list[Finding], envelope: Envelope) -> Action:
    full = evaluate(policy, found, envelope, MAIL)
    lean = evaluate(policy, found, envelope, MAIL, lean=True)
    if full.action in (Action.PASS, Action.TAG):
        assert lean == without_reasons(full)
        assert all(r.reasons == () for r in lean.trace.rules)
    else:
        assert lean == full
    return full.action


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> list[LoadedPolicy]:
    rich = tmp_path_factory.mktemp("rich")
    (rich / "rules.toml").write_text(RICH, encoding="utf-8")
    return [load_policy(ROOT / "policies"), load_policy(rich)]


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(found=findings(), envelope=envelopes(), which=st.integers(0, 1))
def test_lean_decides_as_the_full_evaluation(
    policies: list[LoadedPolicy], found: list[Finding], envelope: Envelope, which: int
) -> None:
    check(policies[which], found, envelope)


def test_every_action_is_reached(policies: list[LoadedPolicy]) -> None:
    """The random inputs above are not all passes: each action of the rich policy occurs."""
    rich = policies[1]
    out = Envelope(mail_from="x@sales.example.co.jp", rcpt_tos=("a@customer.example",))
    inside = Envelope(mail_from="tanaka@example.co.jp", rcpt_tos=("b@example.co.jp",))

    def f(detector: str, code: str, **kw: object) -> Finding:
        return Finding(detector=detector, code=code, message="m", **kw)  # type: ignore[arg-type]

    cases: list[tuple[list[Finding], Envelope, Action]] = [
        ([], out, Action.TAG),
        ([], inside, Action.PASS),
        ([f("confidential-marker", "marker")], inside, Action.TAG),
        ([f("personal-data", "my-number", severity="high")], out, Action.DELAY),
        ([f("personal-data", "phone"), f("lookalike-domain", "lookalike")], out, Action.HOLD),
        (
            [f("visible-recipients", "external-visible", count=2, where=("body",))],
            out,
            Action.REWRITE,
        ),
        (
            [f("visible-recipients", "organisations-visible", params={"organisations": 3})],
            dataclasses.replace(out, client_address="10.1.2.3"),
            Action.REJECT,
        ),
    ]
    for found, envelope, action in cases:
        assert check(rich, found, envelope) is action
