"""Read a policy directory into one validated `LoadedPolicy`, or refuse it with a clear error.

Flow: ``policies/*.toml`` (file-name order) → `PolicyFile` each → merged `Policy` → checks
that need the whole policy (unique rule ids, known sender groups, known detectors and codes)
→ detector settings validated against each detector's own model → `LoadedPolicy`, which
`sendguard.policy.holder.PolicyHolder` serves and `sendguard.policy.evaluate` reads. Any
problem raises `PolicyError` naming the file, the rule, the field and what is allowed.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sendguard.detect.registry import settings_model
from sendguard.errors import PolicyError
from sendguard.model import Organisation
from sendguard.policy import codes, messages
from sendguard.policy.checks import check_rule
from sendguard.policy.people import People, build_people
from sendguard.policy.schema import (
    OrganisationSection,
    PersonEntry,
    Policy,
    PolicyFile,
    PolicySettings,
    Rule,
    SenderGroup,
    normalise_address,
)


@dataclass(frozen=True, slots=True)
class GroupMembers:
    """A sender group resolved to addresses and domains (list files read)."""

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy, ready to evaluate; replaced as a whole on reload."""

    policy: Policy
    version: str
    """sha256 over the names and contents of every file read (policy and list files)."""
    files: tuple[Path, ...]
    """Every file read, list files included: what `PolicyHolder.watch` watches."""
    organisation: Organisation
    detector_settings: Mapping[str, BaseModel]
    """Validated ``[detectors.<id>]`` settings by detector id."""
    groups: Mapping[str, GroupMembers] = field(default_factory=dict)
    """Sender groups by name."""
    disabled_detectors: frozenset[str] = frozenset()
    """Detectors switched off with ``enabled = false`` in their ``[detectors.<id>]`` table."""
    people: People = field(default_factory=lambda: build_people({}, ()))
    """Logins, the addresses each may send as, and roles (`sendguard.policy.people`)."""
    rule_files: Mapping[str, Path] = field(default_factory=dict)
    """The file each rule came from, by rule id (names what a reload would drop)."""

    def enabled_detectors(self) -> tuple[str, ...]:
        """Ids of the detectors that run under this policy, in registry order."""
        return tuple(d for d in codes.detector_ids() if d not in self.disabled_detectors)


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    raw: bytes
    data: dict[str, Any]
    parsed: PolicyFile


def load_policy(directory: Path) -> LoadedPolicy:
    """Load and validate every ``*.toml`` file directly in ``directory``."""
    if not directory.is_dir():
        raise PolicyError(f"{directory}: policy directory does not exist", file=str(directory))
    paths = sorted(directory.glob("*.toml"))
    if not paths:
        raise PolicyError(f"{directory}: no policy files (*.toml) found", file=str(directory))
    sources = [_read(path) for path in paths]
    _refuse_empty_files(sources)
    policy, rule_files = _merge(sources)
    groups, list_files = _resolve_groups(policy.organisation, directory, sources)
    detector_settings, disabled = _detector_settings(sources)
    for rule in policy.rules:
        check_rule(rule, rule_files[rule.id], frozenset(groups), disabled)
    _refuse_no_rules(directory, sources, policy)
    digest = hashlib.sha256()
    for path, raw in [(s.path, s.raw) for s in sources] + list_files:
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
    org = policy.organisation
    return LoadedPolicy(
        policy=policy,
        version=digest.hexdigest(),
        files=tuple(s.path for s in sources) + tuple(p for p, _ in list_files),
        organisation=Organisation(
            internal_domains=frozenset(org.internal_domains),
            partner_domains=frozenset(org.partner_domains),
            external_lists=frozenset(org.external_lists),
            frequent_domains=frozenset(org.frequent_domains),
        ),
        detector_settings=detector_settings,
        groups=groups,
        disabled_detectors=disabled,
        people=build_people(
            {login: (p.addresses, p.role) for login, p in policy.people.items()},
            org.internal_domains,
        ),
        rule_files={rule: Path(name) for rule, name in rule_files.items()},
    )


def _refuse_empty_files(sources: list[_Source]) -> None:
    """An empty file is what a truncated or half-written file looks like: refused."""
    for src in sources:
        if not src.data:
            name = str(src.path)
            raise PolicyError(
                f"{name}: the file is empty (no keys or tables): refused, because that is what a"
                " truncated or half-written file looks like; write the whole file, or delete it",
                file=name,
            )


def _refuse_no_rules(directory: Path, sources: list[_Source], policy: Policy) -> None:
    """No enabled rule means every message passes: refused unless ``allow_empty = true``."""
    if policy.allow_empty or any(rule.enabled for rule in policy.rules):
        return
    names = ", ".join(s.path.name for s in sources)
    what = "has no rule" if not policy.rules else "has no enabled rule"
    only = str(sources[0].path) if len(sources) == 1 else str(directory)
    raise PolicyError(
        f"{only}: the policy {what} (files read: {names}): refused, because mail would then"
        " pass unchecked; if that is deliberate, write allow_empty = true at the top of a"
        " policy file",
        file=only,
        field="rule",
    )


def _read(path: Path) -> _Source:
    """Parse one file: TOML syntax, then the `PolicyFile` model."""
    name = str(path)
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise PolicyError(f"{name}: cannot read: {exc.strerror}", file=name) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{name}: not UTF-8 text (byte {exc.start})", file=name) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{name}: invalid TOML: {exc}", file=name) from exc
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise messages.from_validation(exc, file=name, data=data, root=PolicyFile) from exc
    return _Source(path=path, raw=raw, data=data, parsed=parsed)


def _union(*lists: Iterable[str]) -> tuple[str, ...]:
    """Concatenate keeping the first occurrence of each item."""
    return tuple(dict.fromkeys(item for items in lists for item in items))


def _merge(sources: list[_Source]) -> tuple[Policy, dict[str, str]]:
    """One `Policy` from all files; returns it and the file each rule came from."""
    rules, rule_files = _collect_rules(sources)
    settings: tuple[PolicySettings, str] | None = None
    for src in sources:
        if src.parsed.settings is None:
            continue
        name = str(src.path)
        if settings is not None:
            raise PolicyError(
                f"{name}: [settings] already given in {settings[1]}; only one file may set it",
                file=name,
                field="settings",
            )
        settings = (src.parsed.settings, name)
    policy = Policy(
        organisation=_merge_organisation(sources),
        settings=settings[0] if settings else PolicySettings(),
        rules=tuple(rules),
        people=_merge_people(sources),
        allow_empty=any(src.parsed.allow_empty for src in sources),
    )
    return policy, rule_files


def _collect_rules(sources: list[_Source]) -> tuple[list[Rule], dict[str, str]]:
    """Every rule in file order; ids must be unique across files."""
    rule_files: dict[str, str] = {}
    rules: list[Rule] = []
    for src in sources:
        name = str(src.path)
        for rule in src.parsed.rule:
            if rule.id in rule_files:
                raise PolicyError(
                    f"{name}: rule {rule.id!r} field id: already defined in {rule_files[rule.id]};"
                    " rule ids must be unique across all policy files",
                    file=name,
                    rule=rule.id,
                    field="id",
                )
            rule_files[rule.id] = name
            rules.append(rule)
    return rules, rule_files


def _merge_people(sources: list[_Source]) -> dict[str, PersonEntry]:
    """Every file's ``[people]``; a login (case-folded) may be listed in one file only."""
    people: dict[str, PersonEntry] = {}
    owner: dict[str, str] = {}
    for src in sources:
        name = str(src.path)
        for login, entry in src.parsed.people.items():
            key = login.casefold()
            if key in owner:
                raise PolicyError(
                    f"{name}: [people.{login}] already defined in {owner[key]};"
                    " each login may be listed once",
                    file=name,
                    field=f"people.{login}",
                )
            owner[key] = name
            people[key] = entry
    return people


def _merge_organisation(sources: list[_Source]) -> OrganisationSection:
    """Union of every ``[organisation]``; a group may be defined in one file only."""
    orgs = [(str(s.path), s.parsed.organisation) for s in sources if s.parsed.organisation]
    groups: dict[str, SenderGroup] = {}
    group_files: dict[str, str] = {}
    for name, org in orgs:
        for group in org.groups:
            if group in group_files:
                raise PolicyError(
                    f"{name}: [organisation.groups.{group}] already defined in "
                    f"{group_files[group]}; group names must be unique",
                    file=name,
                    field=f"organisation.groups.{group}",
                )
            group_files[group] = name
        groups.update(org.groups)
    return OrganisationSection(
        internal_domains=_union(*(o.internal_domains for _, o in orgs)),
        partner_domains=_union(*(o.partner_domains for _, o in orgs)),
        frequent_domains=_union(*(o.frequent_domains for _, o in orgs)),
        external_lists=_union(*(o.external_lists for _, o in orgs)),
        groups=groups,
    )


def _resolve_groups(
    org: OrganisationSection, directory: Path, sources: list[_Source]
) -> tuple[dict[str, GroupMembers], list[tuple[Path, bytes]]]:
    """Read each group's list file; returns the groups and the list files read."""
    owner = {
        g: str(s.path)
        for s in sources
        if s.parsed.organisation
        for g in s.parsed.organisation.groups
    }
    groups: dict[str, GroupMembers] = {}
    read: list[tuple[Path, bytes]] = []
    for name, group in org.groups.items():
        addresses = set(group.addresses)
        if group.list_file is not None:
            path = directory / group.list_file
            where = f"{owner[name]}: [organisation.groups.{name}] field list_file"
            try:
                raw = path.read_bytes()
                text = raw.decode("utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                raise PolicyError(
                    f"{where}: cannot read {path} ({exc}); give a UTF-8 file of addresses,"
                    " one a line, relative to the policy directory",
                    file=owner[name],
                    field=f"organisation.groups.{name}.list_file",
                ) from exc
            read.append((path, raw))
            for number, line in enumerate(text.splitlines(), start=1):
                entry = line.split("#", 1)[0].strip()
                if not entry:
                    continue
                try:
                    addresses.add(normalise_address(entry))
                except ValueError as exc:
                    raise PolicyError(
                        f"{path}:{number}: {exc} (group {name!r})",
                        file=str(path),
                        field=f"organisation.groups.{name}.list_file",
                    ) from exc
        groups[name] = GroupMembers(frozenset(addresses), frozenset(group.domains))
    return groups, read


def _detector_settings(sources: list[_Source]) -> tuple[dict[str, BaseModel], frozenset[str]]:
    """Validate ``[detectors.<id>]`` tables; returns the settings and the disabled ids."""
    result: dict[str, BaseModel] = {}
    disabled: set[str] = set()
    owner: dict[str, str] = {}
    for src in sources:
        name = str(src.path)
        for det_id, table in src.parsed.detectors.items():
            if det_id in owner:
                raise PolicyError(
                    f"{name}: [detectors.{det_id}] already given in {owner[det_id]};"
                    " each detector may be configured in one file only",
                    file=name,
                    field=f"detectors.{det_id}",
                )
            owner[det_id] = name
            settings = dict(table)
            # `enabled` belongs to the policy, not to the detector's own settings model.
            enabled = settings.pop("enabled", True)
            if not isinstance(enabled, bool):
                raise PolicyError(
                    f"{name}: [detectors.{det_id}] field enabled: Input should be true or false"
                    f" (got {enabled!r})",
                    file=name,
                    field=f"detectors.{det_id}.enabled",
                )
            if not enabled:
                disabled.add(det_id)
            result[det_id] = _one_detector(name, det_id, settings)
    return result, frozenset(disabled)


def _one_detector(file: str, det_id: str, table: dict[str, Any]) -> BaseModel:
    known = codes.detector_ids()
    try:
        model = settings_model(det_id)
    except KeyError as exc:
        raise PolicyError(
            f"{file}: [detectors.{det_id}]: unknown detector {det_id!r};"
            f" known detectors: {', '.join(known)}",
            file=file,
            field=f"detectors.{det_id}",
        ) from exc
    try:
        validated: BaseModel = model.model_validate(table)
        return validated
    except ValidationError as exc:
        lines = [
            f"{file}: [detectors.{det_id}] field {messages.field_path(err['loc']) or 'top level'}:"
            f" {messages.describe(err, model)}"
            for err in exc.errors()
        ]
        first = messages.field_path(exc.errors()[0]["loc"])
        raise PolicyError("\n".join(lines), file=file, field=f"detectors.{det_id}.{first}") from exc
