"""`sendguard policy check|explain|test` on the shipped policy and its fixtures."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from sendguard.cli import policy as policy_cli
from sendguard.usecases.explain import ExplainReport

SHIPPED = Path(__file__).resolve().parents[3] / "policies"
FIXTURES = SHIPPED / "tests"
SENDER = "tanaka@example.co.jp"


def run(*argv: str | Path) -> int:
    """Run `sendguard policy …` through the real argument parser of the sub-command."""
    parser = argparse.ArgumentParser(prog="sendguard")
    policy_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", *map(str, argv)])
    code: int = args.func(args)
    return code


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A copy of the shipped policy (with its tests) that a test may extend."""
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED, target)
    return target


EXTRA = """
[[rule]]
id = "reject-ppap"
description = "Refuse encrypted ZIPs outright"
action = "reject"
reason = "Encrypted ZIP attachments are not allowed"
when.any = [{ detector = "uninspectable-attachment", code = "encrypted" }]

[[rule]]
id = "delay-confidential"
description = "Give the sender five minutes to cancel confidential mail"
action = "delay"
delay_minutes = 5
recipients = "any-external"
when.any = [{ detector = "confidential-marker" }]
"""

# fixture, recipients, extra rules?, expected action, deciding rule
EXPLAIN_CASES = [
    ("internal.eml", ["suzuki@example.co.jp"], False, "pass", None),
    (
        "confidential-external.eml",
        ["contact@agency.example"],
        False,
        "tag",
        "tag-confidential-external",
    ),
    (
        "many-customers.eml",
        [f"user{i}@client{i}.example" for i in range(12)],
        False,
        "rewrite-bcc",
        "bcc-many-external-visible",
    ),
    ("lookalike.eml", ["sato@gmial.com"], False, "hold", "hold-lookalike-domain"),
    ("confidential-external.eml", ["contact@agency.example"], True, "delay", "delay-confidential"),
    ("ppap.eml", ["contact@agency.example"], True, "reject", "reject-ppap"),
]


@pytest.mark.parametrize(("fixture", "rcpts", "extra", "action", "rule"), EXPLAIN_CASES)
def test_explain_json_for_each_action(
    policy_dir: Path,
    capsys: pytest.CaptureFixture[str],
    fixture: str,
    rcpts: list[str],
    extra: bool,
    action: str,
    rule: str | None,
) -> None:
    """explain --json reports the action and deciding rule, and matches the documented schema."""
    if extra:
        (policy_dir / "extra.toml").write_text(EXTRA, encoding="utf-8")
    argv: list[str | Path] = [
        "explain",
        FIXTURES / fixture,
        "--mail-from",
        SENDER,
        "--json",
        "--offline",
        "--policy-dir",
        policy_dir,
    ]
    for rcpt in rcpts:
        argv += ["--rcpt", rcpt]
    assert run(*argv) == 0
    document = json.loads(capsys.readouterr().out)
    report = ExplainReport.model_validate(document)  # extra keys refused: the schema is exact
    assert (report.action, report.rule) == (action, rule)
    assert set(document) == {
        "action",
        "rule",
        "reason",
        "findings",
        "rules",
        "warned",
        "policy_version",
        # Added (schema version 1 only ever gains keys): the sender binding of --auth-user.
        "auth_user",
        "sender",
        "sender_allowed",
    }
    for item in document["findings"]:
        assert set(item) == {
            "detector",
            "code",
            "count",
            "severity",
            "message",
            "evidence",
            "where",
        }
    for item in document["rules"]:
        assert set(item) == {"id", "matched", "action", "mode", "reasons"}
    assert len(report.rules) == 9 + (2 if extra else 0)
    assert report.reason.isascii()


def test_explain_text_lists_detectors_rules_and_result(capsys: pytest.CaptureFixture[str]) -> None:
    """The human output names every detector, every rule hit or miss, and the decision."""
    code = run(
        "explain",
        FIXTURES / "lookalike.eml",
        "--mail-from",
        SENDER,
        "--rcpt",
        "sato@gmial.com",
        "--policy-dir",
        SHIPPED,
        "--offline",
    )
    out = capsys.readouterr().out
    assert code == 0
    for detector in (
        "external-recipients",
        "visible-recipients",
        "lookalike-domain",
        "personal-data",
        "confidential-marker",
        "uninspectable-attachment",
    ):
        assert f"  {detector}: " in out
    assert "  HIT   hold-lookalike-domain  -> hold" in out
    assert "  miss  tag-confidential-external  -> tag" in out
    assert "gmial.com" in out
    assert "gmail.com" in out
    assert "Note: offline: network detectors not run (unresolvable-domain)" in out
    assert out.rstrip().splitlines()[-1].startswith("Result: HOLD by rule hold-lookalike-domain: ")


def test_explain_unreadable_message_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A message file that cannot be read is an error, not an empty pass."""
    assert (
        run(
            "explain",
            tmp_path / "none.eml",
            "--mail-from",
            SENDER,
            "--rcpt",
            "a@b.example",
            "--policy-dir",
            SHIPPED,
        )
        == 2
    )
    assert "cannot read" in capsys.readouterr().err


def test_check_shipped_policy_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped default policy passes check and lists its rules."""
    assert run("check", SHIPPED) == 0
    out = capsys.readouterr().out
    assert out.startswith("policy OK: 1 file(s), 9 rule(s)")
    assert "  hold-nonexistent-domain: hold (warn mode)" in out


def test_check_broken_policy_exits_nonzero(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check prints the located error on stderr and exits 1."""
    (policy_dir / "extra.toml").write_text(
        '[[rule]]\nid = "x"\ndescription = "x"\naction = "drop"\n'
    )
    assert run("check", policy_dir) == 1
    err = capsys.readouterr().err
    assert f"{policy_dir / 'extra.toml'}: rule 'x' field action: Input should be 'pass'" in err


def test_policy_test_passes_on_the_shipped_cases(capsys: pytest.CaptureFixture[str]) -> None:
    """Every shipped case passes: the default policy does what its comments say."""
    code = run("test", SHIPPED)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.rstrip().endswith("16 passed, 0 failed")


def test_policy_test_fails_on_a_wrong_expectation(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case whose expectation the policy does not meet fails the run (exit 1)."""
    (policy_dir / "tests" / "wrong.toml").write_text(
        '[[case]]\nname = "lookalike must pass"\nmessage = "lookalike.eml"\n'
        'mail_from = "tanaka@example.co.jp"\nrcpt = ["sato@gmial.com"]\nexpect = "pass"\n',
        encoding="utf-8",
    )
    assert run("test", policy_dir) == 1
    out = capsys.readouterr().out
    assert (
        "FAIL  wrong.toml: lookalike must pass: expected pass, got hold (hold-lookalike-domain)"
        in out
    )
    assert out.rstrip().endswith("16 passed, 1 failed")


def test_policy_test_invalid_case_file(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case file with an unknown key is refused with its location."""
    (policy_dir / "tests" / "bad.toml").write_text(
        '[[case]]\nname = "x"\nmessage = "a.eml"\nmail_from = "a@b.example"\n'
        'expect = "hold"\nexpected = 1\n',
        encoding="utf-8",
    )
    assert run("test", policy_dir) == 1
    assert "bad.toml: field case[0].expected: unknown key 'expected'" in capsys.readouterr().err


def test_explain_text_previews_the_rewrite(capsys: pytest.CaptureFixture[str]) -> None:
    """For a rewrite verdict the human output shows what recipients will see in To/Cc."""
    argv: list[str | Path] = [
        "explain",
        FIXTURES / "many-customers.eml",
        "--mail-from",
        SENDER,
        "--policy-dir",
        SHIPPED,
        "--offline",
    ]
    for i in range(12):
        argv += ["--rcpt", f"user{i}@client{i}.example"]
    assert run(*argv) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-3].startswith("Result: REWRITE-BCC by rule bcc-many-external-visible: ")
    assert lines[-2:] == [
        "Rewrite preview (undisclosed): 1 copy",
        "  to 12 recipient(s): To: undisclosed-recipients:;",
    ]
