"""`policy explain` and `policy test` read the relay's settings: same limits, same policy.

On main they used default limits, so with ``SENDGUARD_LIMITS__*`` set they could decide
differently from the relay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from sendguard.cli import policy as policy_cli
from sendguard.inspect import Inspector
from sendguard.model import Envelope
from sendguard.policy.holder import PolicyHolder
from sendguard.settings import load_settings
from tests.support.attachments import Attachment, build_message, zip_archive

POLICY = """\
[organisation]
internal_domains = ["example.co.jp"]

[detectors.unresolvable-domain]
enabled = false

[[rule]]
id = "hold-uninspectable"
description = "Hold what could not be read whole"
action = "hold"
when.any = [{ detector = "uninspectable-attachment", code = "limit" }]
"""
CASES = """\
[[case]]
name = "a zip of three files"
message = "zip.eml"
mail_from = "tanaka@example.co.jp"
rcpt = ["sato@client.example"]
expect = "hold"
rule = "hold-uninspectable"
"""


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sendguard")
    policy_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", *argv])
    code: int = args.func(args)
    return code


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A policy directory (with one case) named only by the settings file, and a message
    whose ZIP has three members: over a limit of 1, fine under the default."""
    policies = tmp_path / "relay-policies"
    (policies / "tests").mkdir(parents=True)
    (policies / "p.toml").write_text(POLICY, "utf-8")
    members = {f"{n}.txt": b"hello" for n in range(3)}
    message = build_message(attachments=[Attachment("a.zip", zip_archive(members))])
    (policies / "tests" / "zip.eml").write_bytes(message)
    (policies / "tests" / "cases.toml").write_text(CASES, "utf-8")
    config = tmp_path / "sendguard.toml"
    config.write_text(f'policy_dir = "{policies}"\n', "utf-8")
    monkeypatch.setenv("SENDGUARD_CONFIG", str(config))
    monkeypatch.delenv("SENDGUARD_POLICY_DIR", raising=False)
    monkeypatch.setenv("SENDGUARD_LIMITS__MAX_ARCHIVE_MEMBERS", "1")
    monkeypatch.chdir(tmp_path)  # no ./policies here: only the settings name the directory
    return policies, policies / "tests" / "zip.eml"


async def _relay_action(data: bytes) -> str:
    """What the relay's own inspector decides with the same settings."""
    settings = load_settings()
    inspector = Inspector(policy=PolicyHolder(settings.policy_dir), limits=settings.limits)
    envelope = Envelope("tanaka@example.co.jp", ("sato@client.example",))
    result = await inspector.inspect(envelope, data)
    return result.verdict.action.label


def test_explain_uses_the_relays_limits_and_policy_dir(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, message = setup
    assert asyncio.run(_relay_action(message.read_bytes())) == "hold"
    capsys.readouterr()  # the relay's own log lines
    argv = ["--mail-from", "tanaka@example.co.jp", "--rcpt", "sato@client.example", "--json"]
    assert _run("explain", str(message), *argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["action"], report["rule"]) == ("hold", "hold-uninspectable")


def test_policy_test_uses_the_relays_limits_and_policy_dir(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("test") == 0
    assert "PASS  cases.toml: a zip of three files: hold (hold-uninspectable)" in (
        capsys.readouterr().out
    )


def test_check_defaults_to_the_relays_policy_dir(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("check") == 0
    assert "policy OK: 1 file(s), 1 rule(s)" in capsys.readouterr().out
