"""Checks that need the whole merged policy: sender groups and detector/code names exist.

Called by `sendguard.policy.load` after every file has passed its own schema. A rule naming
a group, detector, finding code or parameter that does not exist would never match, which
would be a silent hole in the policy, so each is an error naming the rule and the field.
"""

from __future__ import annotations

from sendguard.errors import PolicyError
from sendguard.policy import codes
from sendguard.policy.schema import ConditionGroup, FindingCondition, Rule


def _fail(file: str, rule: str, field: str, problem: str) -> PolicyError:
    return PolicyError(
        f"{file}: rule {rule!r} field {field}: {problem}", file=file, rule=rule, field=field
    )


def check_rule(rule: Rule, file: str, groups: frozenset[str], disabled: frozenset[str]) -> None:
    """Checks that need the whole policy: sender groups and detector/code names exist."""
    for key in ("senders", "except_senders"):
        for index, name in enumerate(getattr(rule, key)):
            if name not in groups:
                known = ", ".join(sorted(groups)) or "none defined"
                raise _fail(
                    file,
                    rule.id,
                    f"{key}[{index}]",
                    f"unknown sender group {name!r}; groups: {known}"
                    " (define them under [organisation.groups.NAME])",
                )
    if rule.when is not None:
        _check_group(rule.when, "when", file, rule.id, disabled)


def _check_group(
    group: ConditionGroup, path: str, file: str, rule: str, disabled: frozenset[str]
) -> None:
    for key in ("all", "any", "none"):
        for index, cond in enumerate(getattr(group, key)):
            where = f"{path}.{key}[{index}]"
            if isinstance(cond, ConditionGroup):
                _check_group(cond, where, file, rule, disabled)
            else:
                _check_condition(cond, where, file, rule, disabled)


def _check_condition(
    cond: FindingCondition, path: str, file: str, rule: str, disabled: frozenset[str]
) -> None:
    known = codes.detector_ids()
    if cond.detector not in known:
        raise _fail(
            file,
            rule,
            f"{path}.detector",
            f"unknown detector {cond.detector!r}; known detectors: {', '.join(known)}",
        )
    if cond.detector in disabled:
        raise _fail(
            file,
            rule,
            f"{path}.detector",
            f"detector {cond.detector!r} is disabled ([detectors.{cond.detector}] enabled ="
            " false), so this condition could never hold; enable it or remove the condition",
        )
    allowed = codes.FINDING_CODES.get(cond.detector)
    for code in cond.code:
        if allowed is not None and code not in allowed:
            raise _fail(
                file,
                rule,
                f"{path}.code",
                f"detector {cond.detector!r} has no finding code {code!r};"
                f" its codes: {', '.join(sorted(allowed))}",
            )
    numeric = codes.NUMERIC_PARAMS.get(cond.detector, frozenset())
    for param in cond.params_at_least:
        if param not in numeric:
            fits = ", ".join(sorted(numeric)) or "none"
            raise _fail(
                file,
                rule,
                f"{path}.params_at_least.{param}",
                f"detector {cond.detector!r} has no numeric parameter {param!r};"
                f" its numeric parameters: {fits} (use count_at_least for counts)",
            )
