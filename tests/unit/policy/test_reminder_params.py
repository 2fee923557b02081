"""``remind_hours``, ``escalate_hours`` and ``escalate_to`` on hold rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendguard.errors import PolicyError
from sendguard.policy.load import load_policy

RULE = """\
[organisation]
internal_domains = ["corp.example"]

[[rule]]
id = "hold-all-external"
description = "hold"
action = "{action}"
recipients = "any-external"
{params}
"""


def _load(tmp_path: Path, params: str, action: str = "hold") -> object:
    (tmp_path / "p.toml").write_text(RULE.format(action=action, params=params), "utf-8")
    return load_policy(tmp_path)


def test_a_hold_rule_reminds_and_escalates(tmp_path: Path) -> None:
    loaded = _load(
        tmp_path, 'remind_hours = 4\nescalate_hours = 8\nescalate_to = ["bucho@corp.example"]'
    )
    rule = loaded.policy.rules[0]  # type: ignore[attr-defined]
    assert (rule.remind_hours, rule.escalate_hours, rule.escalate_to) == (
        4,
        8,
        ("bucho@corp.example",),
    )


@pytest.mark.parametrize(
    ("params", "action", "words"),
    [
        ("escalate_hours = 8", "hold", "escalate_hours and escalate_to go together"),
        ('escalate_to = ["bucho@corp.example"]', "hold", "go together"),
        ("remind_hours = 4", "delay", "does not apply to action 'delay'"),
    ],
)
def test_incomplete_or_misplaced_reminders_are_refused(
    tmp_path: Path, params: str, action: str, words: str
) -> None:
    with pytest.raises(PolicyError, match=words):
        _load(tmp_path, params, action)
