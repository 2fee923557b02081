"""Who the client is: the ``clients`` / ``except_clients`` rule condition, and sender groups
matched for an authenticated login's own address instead of its MAIL FROM."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from sendguard.cli import policy as policy_cli
from sendguard.errors import PolicyError
from sendguard.model import Envelope, Mail
from sendguard.policy.evaluate import evaluate
from sendguard.policy.load import LoadedPolicy, load_policy

WritePolicy = Callable[..., Path]
ORG = """
[organisation]
internal_domains = ["example.co.jp"]
[organisation.groups.executives]
addresses = ["shacho@example.co.jp"]

[people.hisho]
addresses = ["hisho@example.co.jp", "shacho@example.co.jp"]
[people.batch]
addresses = ["@batch.example.co.jp"]
"""
RULES = """
[[rule]]
id = "hold-scripts"
description = "printers and scripts on the office network"
action = "hold"
clients = { networks = ["10.0.20.0/24", "2001:db8::/32"], authenticated = false }

[[rule]]
id = "tag-people"
description = "authenticated people, except the batch login"
action = "tag"
clients = [{ authenticated = true }]
except_clients = { logins = ["BATCH"] }

[[rule]]
id = "tag-outside-office"
description = "AUTH from anywhere but the office network"
action = "tag"
clients = { authenticated = true }
except_clients = [{ networks = "10.0.0.0/8" }]

[[rule]]
id = "hold-non-executives"
description = "everyone but the executives"
action = "hold"
except_senders = ["executives"]
"""


def _policy(write_policy: WritePolicy, rules: str = RULES) -> LoadedPolicy:
    return load_policy(write_policy(org=ORG, rules=rules))


def _hits(
    policy: LoadedPolicy, client: str, login: str | None, mail_from: str = "hisho@example.co.jp"
) -> list[str]:
    envelope = policy.people.bind(
        Envelope(mail_from, ("x@customer.example",), client_address=client, auth_user=login)
    )
    verdict = evaluate(policy, [], envelope, Mail())
    return [r.rule_id for r in verdict.trace.rules if r.matched]


def test_clients_match_network_auth_and_login(write_policy: WritePolicy) -> None:
    """A script on the office network, a person on it, a person outside it, the batch login."""
    policy = _policy(write_policy)
    assert _hits(policy, "10.0.20.7", None) == ["hold-scripts", "hold-non-executives"]
    assert _hits(policy, "2001:db8::25", None) == ["hold-scripts", "hold-non-executives"]
    assert _hits(policy, "::ffff:10.0.20.7", None)[0] == "hold-scripts"  # IPv4-mapped
    assert _hits(policy, "10.0.30.7", None) == ["hold-non-executives"]
    assert _hits(policy, "10.0.20.7", "hisho") == ["tag-people", "hold-non-executives"]
    assert _hits(policy, "198.51.100.9", "Hisho") == [
        "tag-people",
        "tag-outside-office",
        "hold-non-executives",
    ]
    batch = _hits(policy, "198.51.100.9", "batch", "job@batch.example.co.jp")
    assert batch == ["tag-outside-office", "hold-non-executives"]
    assert _hits(policy, "", None) == ["hold-non-executives"]  # address unknown: no network


def test_client_reasons_are_traced(write_policy: WritePolicy) -> None:
    """explain's trace says which client it was and which match held or failed."""
    policy = _policy(write_policy)
    envelope = Envelope("t@example.co.jp", ("x@c.example",), client_address="10.0.20.7")
    rules = {r.rule_id: r for r in evaluate(policy, [], envelope, Mail()).trace.rules}
    assert rules["hold-scripts"].reasons == (
        "client 10.0.20.7 without AUTH matches clients"
        " (networks 10.0.20.0/24, 2001:db8::/32; authenticated = false)",
    )
    assert rules["tag-people"].reasons == (
        "client 10.0.20.7 without AUTH is not one of the clients (authenticated = true)",
    )
    authed = Envelope("t@example.co.jp", ("x@c.example",), client_address="10.1.2.3",
                      auth_user="hisho")  # fmt: skip
    rules = {r.rule_id: r for r in evaluate(policy, [], authed, Mail()).trace.rules}
    assert rules["tag-outside-office"].reasons[-1] == (
        "client 10.1.2.3 with AUTH as hisho is excepted (networks 10.0.0.0/8)"
    )


def test_sender_groups_use_the_logins_own_address(write_policy: WritePolicy) -> None:
    """The secretary may send as the president, but the exemption stays the president's;
    without AUTH the MAIL FROM decides, as before."""
    policy = _policy(write_policy)
    as_president = "shacho@example.co.jp"
    assert "hold-non-executives" in _hits(policy, "10.9.9.9", "hisho", as_president)
    assert "hold-non-executives" not in _hits(policy, "10.9.9.9", "shacho", as_president)
    assert "hold-non-executives" not in _hits(policy, "10.9.9.9", None, as_president)
    envelope = policy.people.bind(
        Envelope(as_president, ("x@c.example",), auth_user="hisho", client_address="10.9.9.9")
    )
    assert envelope.sender == "hisho@example.co.jp"
    rules = {r.rule_id: r for r in evaluate(policy, [], envelope, Mail()).trace.rules}
    assert rules["hold-non-executives"].matched
    assert rules["hold-non-executives"].reasons == ()  # no group of hisho's is excepted


def test_a_login_with_only_wildcards_is_in_no_group(write_policy: WritePolicy) -> None:
    """A service login allowed @batch.example.co.jp has no own address: it gets no group
    (so no exemption), whatever MAIL FROM it uses."""
    policy = _policy(write_policy)
    assert policy.people.identity("batch") == ""
    envelope = policy.people.bind(
        Envelope("x@batch.example.co.jp", ("a@b.example",), auth_user="batch")
    )
    assert (envelope.sender_identity, envelope.sender) == ("", "")


@pytest.mark.parametrize(
    ("clients", "needle"),
    [
        ("{ }", "needs at least one of networks, logins, authenticated"),
        ('{ networks = ["10.0.20.5/24"] }', "has host bits set; did you mean 10.0.20.0/24?"),
        ('{ networks = ["office"] }', "'office' is not a network"),
        ('{ logins = ["tanaka"], authenticated = false }', "can never hold"),
        ('{ login = ["tanaka"] }', "unknown key 'login'; allowed keys: networks, logins"),
        ('{ authenticated = "yes" }', "authenticated"),
        ('{ logins = ["a b"] }', "may not be empty or contain spaces"),
    ],
)
def test_bad_clients_are_refused_with_the_field(
    write_policy: WritePolicy, clients: str, needle: str
) -> None:
    """Every mistake names the rule and the field and says what is allowed."""
    text = f'\n[[rule]]\nid = "r"\ndescription = "r"\naction = "tag"\nclients = {clients}\n'
    with pytest.raises(PolicyError) as info:
        _policy(write_policy, text)
    assert needle in str(info.value)
    assert "rule 'r' field clients" in str(info.value)


def test_explain_takes_the_login_and_the_client(
    write_policy: WritePolicy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``policy explain --auth-user --client`` shows the identity used, the binding and the
    clients trace."""
    directory = write_policy(org=ORG, rules=RULES)
    message = tmp_path / "m.eml"
    message.write_text("From: shacho@example.co.jp\nTo: x@c.example\nSubject: hi\n\nhello\n")
    parser = argparse.ArgumentParser(prog="sendguard")
    policy_cli.register(parser.add_subparsers(dest="command", required=True))

    def explain(*extra: str) -> str:
        args = parser.parse_args(
            ["policy", "explain", str(message), "--policy-dir", str(directory), "--offline",
             "--rcpt", "x@c.example", *extra]
        )  # fmt: skip
        assert args.func(args) == 0
        return capsys.readouterr().out

    out = explain("--mail-from", "shacho@example.co.jp", "--auth-user", "hisho", "--client",
                  "10.0.20.7")  # fmt: skip
    assert "with AUTH as hisho; sender groups and notices use its own address" in out
    assert "<hisho@example.co.jp>" in out
    assert "HIT   hold-non-executives" in out
    assert "client 10.0.20.7 with AUTH as hisho matches clients" in out
    out = explain("--mail-from", "shacho@example.co.jp", "--auth-user", "tanaka")
    assert "Sender binding: tanaka may not use MAIL FROM <shacho@example.co.jp>" in out
    out = explain("--mail-from", "shacho@example.co.jp", "--auth-user", "tanaka", "--json")
    assert '"sender_allowed": false' in out and '"sender": "tanaka@example.co.jp"' in out
