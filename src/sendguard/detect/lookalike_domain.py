"""`lookalike-domain`: a recipient domain that imitates one the organisation trusts.

Targets: the organisation's internal, partner and frequent domains, the built-in consumer
domains (`domains.CONSUMER_DOMAINS`) and any configured extra ones. Every target is
trusted, and a trusted recipient is never reported. The other recipient domains are checked
in order: homoglyphs / mixed script (skeleton equality), hyphen slips, suffix swaps
(``.co.jp`` ↔ ``.jp`` ↔ ``.com``), kana typed by a Japanese IME, then a bounded edit
distance through a deletion index. Indexes are built once per target set and cached on the
detector instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.domains import CONSUMER_DOMAINS, in_domains
from sendguard.detect.similarity import (
    deletion_index,
    deletions,
    distance,
    is_kana,
    kana_form,
    mixed_script,
    skeleton,
)
from sendguard.model import Address, Finding, Mail, Organisation
from sendguard.parse.addresses import registrable_domain

_CACHE_SIZE = 8


class LookalikeDomainSettings(DetectorSettings):
    """Settings of `lookalike-domain`."""

    consumer_domains: bool = pydantic.Field(
        default=True, description="Use the built-in Japanese consumer mail domains as targets."
    )
    extra_targets: tuple[str, ...] = pydantic.Field(
        default=(), description="More trusted domains to protect (A-label, lower case)."
    )
    min_length: int = pydantic.Field(
        default=4,
        ge=1,
        description="Shortest name (label before the public suffix) checked by edit "
        "distance and suffix swaps; shorter names (au, me) only by homoglyphs and kana.",
    )
    long_name: int = pydantic.Field(
        default=8,
        ge=1,
        description="Names this long or longer allow `max_distance` edits; shorter ones allow one.",
    )
    max_distance: int = pydantic.Field(
        default=2,
        ge=1,
        le=3,
        description="Largest edit distance (insert, delete, replace, swap) reported.",
    )


def _split(domain: str) -> tuple[str, str]:
    """``tanaka-shoji.co.jp`` → (``tanaka-shoji``, ``co.jp``) by the public suffix list."""
    reg = registrable_domain(domain)
    name, _, suffix = reg.partition(".")
    return name, suffix


def _unicode(domain: str) -> str:
    try:
        return domain.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return domain


@dataclass(frozen=True, slots=True)
class _Index:
    """Precomputed look-ups over one target set."""

    targets: frozenset[str]
    skeletons: dict[str, str]
    dehyphened: dict[str, str]
    names: dict[str, tuple[str, ...]]
    kana: dict[str, str]
    deletes: dict[str, frozenset[str]]
    lengths: frozenset[int]
    """Lengths of the indexed names: a name no target length is near cannot be a typo."""


def _build(targets: frozenset[str], cfg: LookalikeDomainSettings) -> _Index:
    skeletons: dict[str, str] = {}
    dehyphened: dict[str, str] = {}
    kana: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    for target in sorted(targets):
        name = _split(target)[0]
        skeletons.setdefault(skeleton(_unicode(target)), target)
        dehyphened.setdefault(target.replace("-", ""), target)
        kana.setdefault(kana_form(target), target)
        if len(name) >= cfg.min_length:
            names.setdefault(name, []).append(target)
    # The deletion index holds the names (label before the public suffix), not the whole
    # domains: 6× fewer variants to generate per recipient, and the suffix is compared by
    # the full distance check afterwards.
    eligible = [name for name in names if len(name) >= cfg.min_length]
    return _Index(
        targets=targets,
        skeletons=skeletons,
        dehyphened=dehyphened,
        names={k: tuple(v) for k, v in names.items()},
        kana=kana,
        deletes=_by_target(deletion_index(eligible, cfg.max_distance), names),
        lengths=frozenset(len(n) for n in eligible),
    )


def _by_target(
    index: dict[str, frozenset[str]], names: dict[str, list[str]]
) -> dict[str, frozenset[str]]:
    """Deletion variant → target domains (instead of target names)."""
    return {k: frozenset(t for name in v for t in names[name]) for k, v in index.items()}


class LookalikeDomain(ContentDetector):
    """Recipient domains that imitate trusted ones."""

    id: ClassVar[str] = "lookalike-domain"
    description: ClassVar[str] = "Recipient domains imitating trusted ones (typos, homoglyphs, IME)"
    Settings: ClassVar[type[pydantic.BaseModel]] = LookalikeDomainSettings
    codes: ClassVar[tuple[str, ...]] = ("lookalike",)

    def __init__(self, settings: pydantic.BaseModel | None = None) -> None:
        super().__init__(settings)
        self._indexes: dict[frozenset[str], _Index] = {}

    def _index(self, org: Organisation) -> _Index:
        cfg = self.settings_as(LookalikeDomainSettings)
        targets = frozenset(
            org.internal_domains | org.partner_domains | org.frequent_domains
            | set(cfg.extra_targets) | (CONSUMER_DOMAINS if cfg.consumer_domains else set())
        )  # fmt: skip
        index = self._indexes.get(targets)
        if index is None:
            if len(self._indexes) >= _CACHE_SIZE:
                self._indexes.clear()
            index = self._indexes[targets] = _build(targets, cfg)
        return index

    def _edit(self, reg: str, domain: str, index: _Index) -> str | None:
        cfg = self.settings_as(LookalikeDomainSettings)
        name = reg.partition(".")[0]
        if len(name) < cfg.min_length:
            return None
        if not any(abs(len(name) - n) <= cfg.max_distance for n in index.lengths):
            return None
        candidates: set[str] = set()
        for variant in deletions(name, cfg.max_distance):
            candidates |= index.deletes.get(variant, frozenset())
        best: tuple[int, str] | None = None
        for target in sorted(candidates):
            bound = cfg.max_distance if len(_split(target)[0]) >= cfg.long_name else 1
            for query in dict.fromkeys((reg, domain)):
                d = distance(query, target, bound)
                if d <= bound and (best is None or d < best[0]):
                    best = (d, target)
        return best[1] if best else None

    def match(self, address: Address, index: _Index) -> tuple[str, str] | None:
        """(imitated domain, technique) for one untrusted recipient domain, or None."""
        domain, reg = address.domain, address.registrable_domain
        shown = address.domain_unicode
        labels = reg.count(".") + 1
        reg_unicode = ".".join(shown.split(".")[-labels:])
        for candidate in (reg_unicode, shown):
            target = index.skeletons.get(skeleton(candidate))
            if target is not None and target not in (domain, reg):
                return target, "mixed-script" if mixed_script(candidate) else "homoglyph"
        target = index.dehyphened.get(reg.replace("-", ""))
        if target is not None and target != reg:
            return target, "hyphen"
        if any(is_kana(c) for c in shown):
            target = index.kana.get(kana_form(shown)) or index.kana.get(kana_form(reg_unicode))
            if target is not None:
                return target, "ime-kana"
        name = reg.partition(".")[0]
        if name in index.names:
            return index.names[name][0], "suffix-swap"
        target = self._edit(reg, domain, index)
        return (target, "edit-distance") if target is not None else None

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """One `lookalike` finding per suspicious recipient domain."""
        index = self._index(ctx.organisation)
        by_domain: dict[str, list[Address]] = {}
        for address in ctx.recipients:
            by_domain.setdefault(address.domain, []).append(address)
        found = []
        for domain, addresses in by_domain.items():
            if in_domains(domain, index.targets):
                continue  # trusted: never a lookalike of another trusted domain
            hit = self.match(addresses[0], index)
            if hit is None:
                continue
            target, technique = hit
            shown = addresses[0].domain_unicode
            found.append(
                Finding(
                    detector=self.id,
                    code="lookalike",
                    message="Recipient domain {domain} looks like {imitates} ({technique})",
                    count=len(addresses),
                    severity="high",
                    params={"domain": shown, "imitates": _unicode(target), "technique": technique},
                    evidence=(f"{shown} ≈ {_unicode(target)}",),
                    where=("envelope",),
                )
            )
        return found
