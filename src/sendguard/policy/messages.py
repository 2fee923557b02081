"""Turn pydantic's `ValidationError` into a `PolicyError` a person can act on.

Called by `sendguard.policy.load` for every file. pydantic reports a location such as
``('rule', 2, 'when', 'any', 0, 'finding', 'count_at_least')``; the admin needs to read
``policies/default.toml: rule 'hold-lists' field when.any[0].count_at_least: …`` instead,
and for an unknown key the list of keys that are allowed there.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from sendguard.errors import PolicyError

_TAGS = frozenset({"finding", "group"})
# pydantic speaks Python; admins write TOML.
_TOML_WORDS = (
    ("a valid dictionary or instance of ConditionGroup", "a table such as { any = [...] }"),
    ("a valid dictionary", "a table"),
    ("a valid tuple", 'a list such as ["a", "b"]'),
    ("a valid list", 'a list such as ["a", "b"]'),
    ("a valid boolean", "true or false"),
)


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` wrappers."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of a union (or the type itself)."""
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(_unwrap(a) for a in typing.get_args(annotation) if a is not type(None))
    return (annotation,)


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation one location step further down, or None when it cannot be followed."""
    for member in _members(annotation):
        origin = typing.get_origin(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            field = member.model_fields.get(str(part))
            if field is not None:
                return field.annotation
        elif origin in (tuple, list) and isinstance(part, int):
            return typing.get_args(member)[0]
        elif origin is dict and isinstance(part, str):
            return typing.get_args(member)[1]
    if part in _TAGS:
        wanted = "FindingCondition" if part == "finding" else "ConditionGroup"
        for member in _members(annotation):
            if getattr(member, "__name__", "") == wanted:
                return member
    return None


def allowed_keys(root: type[BaseModel], loc: Sequence[str | int]) -> tuple[str, ...]:
    """The keys a table at ``loc`` (below ``root``) may hold; () when unknown."""
    annotation: Any = root
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return ()
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return tuple(member.model_fields)
    return ()


def field_path(loc: Sequence[str | int]) -> str:
    """``('when', 'any', 0, 'finding', 'code')`` → ``when.any[0].code``."""
    text = ""
    for part in loc:
        if part in _TAGS:
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _rule_id(data: Mapping[str, Any], loc: Sequence[str | int]) -> str:
    """The id of the rule an error is in, read from the raw table (or its position)."""
    if len(loc) < 2 or loc[0] != "rule" or not isinstance(loc[1], int):
        return ""
    rules = data.get("rule")
    if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
        rule_id = rules[loc[1]].get("id")
        if isinstance(rule_id, str):
            return rule_id
    return f"#{loc[1] + 1}"


def describe(err: ErrorDetails, root: type[BaseModel]) -> str:
    """One error as a sentence: the problem and what is allowed."""
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        keys = allowed_keys(root, loc[:-1])
        hint = f"; allowed keys: {', '.join(keys)}" if keys else ""
        return f"unknown key {loc[-1]!r}{hint}"
    if err["type"] == "missing":
        return "is required"
    message = str(err["msg"]).removeprefix("Value error, ")
    for pydantic_words, toml_words in _TOML_WORDS:
        message = message.replace(pydantic_words, toml_words)
    value = err.get("input")
    if isinstance(value, str | int | float) and len(str(value)) <= 60:
        return f"{message} (got {value!r})"
    return message


def from_validation(
    exc: ValidationError,
    *,
    file: str,
    data: Mapping[str, Any],
    root: type[BaseModel],
    prefix: Sequence[str | int] = (),
) -> PolicyError:
    """A `PolicyError` listing every error of ``exc``; file/rule/field of the first one."""
    lines: list[str] = []
    first: tuple[str, str] | None = None
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        rule = _rule_id(data, loc)
        inner = loc[2:] if rule else loc
        field = field_path(inner)
        where = f"rule {rule!r} " if rule else ""
        where += f"field {field}" if field else "top level"
        lines.append(f"{file}: {where}: {describe(err, root)}")
        if first is None:
            first = (rule, field)
    rule, field = first or ("", "")
    return PolicyError("\n".join(lines), file=file, rule=rule, field=field)
