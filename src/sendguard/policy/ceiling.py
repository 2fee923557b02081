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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sendguard.model import Action, Envelope, Finding, Mail
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
