"""The README's examples work: its policy loads, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from sendguard.cli.main import build_parser
from sendguard.policy.load import load_policy

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_policy_example_is_valid(tmp_path: Path) -> None:
    """The complete policy in the README passes validation as it is printed."""
    text = README.read_text("utf-8")
    section = text.split("## Policy: what happens to risky mail", 1)[1]
    example = re.search(r"```toml\n(.*?)```", section, re.S)
    assert example is not None
    (tmp_path / "policy.toml").write_text(example.group(1), "utf-8")
    loaded = load_policy(tmp_path)
    assert {r.id for r in loaded.policy.rules} >= {"hold-lookalike-domain", "delay-external"}


def test_readme_commands_exist() -> None:
    """Every `sendguard …` sub-command the README shows is a real sub-command."""
    blocks = "\n".join(re.findall(r"```\w*\n(.*?)```", README.read_text("utf-8"), re.S))
    shown = set(re.findall(r"^(?:\$ )?sendguard (\w+)", blocks, re.M))
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert shown and shown <= known
