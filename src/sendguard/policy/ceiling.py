"""The most severe action the policy could take for one envelope, and when findings of the
parts read so far already reach it: the relay's early stop.

Sits beside `evaluate`. `evaluate` picks the most severe matched enforce-mode action, so once
a rule whose action is the highest any rule could take for this envelope (its ceiling) is
matched, reading more of the message cannot change the action — provided that rule still
matches on the findings of the whole message. That holds for rules without ``none``
conditions (exceptions) when every content detector is monotone in the parts: more parts
only add values, records, problems and places, never take one away. So `EarlyStop` keeps
only such rules at the ceiling action; a policy whose ceiling rules all have exceptions
never stops early. `policy explain` does not use it and reports everything.

The same holds within a part read in rows (a sheet, a CSV): `row_prefix` is the message
with each long table cut to its first rows and its text to the lines they render to — a
text prefix, so it can only hold fewer values and records than the whole. When those
already reach the ceiling, the relay's action is the ceiling (a 50,000-row customer list
is decided on its first rows; tests/unit/test_early_stop.py compares it with `policy
explain` on every evaluation case). Its counts are then lower bounds; explain's are exact.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sendguard.model import Action, Envelope, Finding, Mail, Part, Table
from sendguard.policy.evaluate import ACTIONS, evaluate
from sendguard.policy.load import LoadedPolicy
from sendguard.policy.people import build_people
from sendguard.policy.schema import ConditionGroup, FindingCondition, Rule


@dataclass(frozen=True)
class EarlyStop:
    """The ceiling action of one envelope and the monotone rules that take it (picklable:
    sent to the extraction worker with the message)."""

    action: Action
    policy: LoadedPolicy
    """The policy reduced to those rules (no detector settings, people or files)."""
    envelope: Envelope

    def reached(self, findings: Sequence[Finding], mail: Mail) -> bool:
        """True when `findings` (of some parts of `mail`) already match a ceiling rule."""
        return evaluate(self.policy, findings, self.envelope, mail).action == self.action


def _monotone(condition: FindingCondition | ConditionGroup | None) -> bool:
    """No ``none`` group anywhere: more findings can only keep the condition true."""
    if condition is None or isinstance(condition, FindingCondition):
        return True
    return not condition.none and all(map(_monotone, (*condition.all, *condition.any)))


def early_stop(loaded: LoadedPolicy, envelope: Envelope) -> EarlyStop | None:
    """The early stop for this envelope, or None when no stop is possible (the ceiling is
    ``pass``, or every rule at the ceiling has exceptions)."""
    rules = loaded.policy.rules
    # Which rules could match at all: the same evaluation with every finding condition
    # removed (senders, clients and recipient scope still apply; disabled rules never match).
    open_policy = loaded.policy.model_copy(
        update={"rules": tuple(r.model_copy(update={"when": None}) for r in rules)}
    )
    opened = evaluate(replace(loaded, policy=open_policy), (), envelope, Mail())
    possible = {r.rule_id for r in opened.trace.rules if r.matched and r.mode == "enforce"}
    candidates = [r for r in rules if r.id in possible]
    if not candidates:
        return None
    ceiling = max(ACTIONS[r.action] for r in candidates)
    kept: list[Rule] = [r for r in candidates if ACTIONS[r.action] == ceiling and _monotone(r.when)]
    if ceiling == Action.PASS or not kept:
        return None
    reduced = replace(
        loaded,
        policy=loaded.policy.model_copy(update={"rules": tuple(kept)}),
        files=(),
        detector_settings={},
        rule_files={},
        people=build_people({}, ()),
    )
    return EarlyStop(ceiling, reduced, envelope)


PREFIX_ROWS = 1000
"""Rows of a part's tables the relay judges first (`row_prefix`): ~10 ms of detection, and
far beyond any record or value count a rule could need to reach the ceiling."""


def row_prefix(mail: Mail, rows: int = PREFIX_ROWS) -> Mail | None:
    """`mail` with each part whose tables hold more than `rows` rows cut to its first
    `rows`, or None when no part is that long."""
    parts = tuple(_prefix(part, rows) for part in mail.parts)
    if all(map(operator.is_, parts, mail.parts)):
        return None
    return replace(mail, parts=parts)


def _prefix(part: Part, rows: int) -> Part:
    if sum(len(t.rows) for t in part.tables) <= rows:
        return part
    kept: list[Table] = []
    left, lines = rows, 0
    for table in part.tables:
        if left <= 0:
            break
        kept.append(replace(table, rows=table.rows[:left]))
        lines += bool(table.name) + len(kept[-1].rows)
        left -= len(kept[-1].rows)
    # The first lines of the text, whatever it holds besides the tables: a prefix of it.
    text = "\n".join(part.text.split("\n", lines)[:lines])
    return replace(part, text=text, tables=tuple(kept))
