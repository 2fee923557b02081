"""`lookalike-domain`: a recipient domain that imitates one the organisation trusts.

Targets: the organisation's internal, partner and frequent domains, the domains the
correspondent history shows it writes to often (`learned_min_count`), the built-in consumer
domains (`domains.CONSUMER_DOMAINS`) and any configured extra ones. Every target is
trusted, and a trusted recipient is never reported. The other recipient domains are checked
in order: homoglyphs / mixed script (skeleton equality), hyphen slips, suffix swaps
(``.co.jp`` ↔ ``.jp`` ↔ ``.com``), kana typed by a Japanese IME, then a bounded edit
distance through a deletion index. Indexes are built once per target set and cached on the
detector instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pydantic

from sendguard.detect.base import ContentDetector, DetectContext, DetectorSettings
from sendguard.detect.domains import CONSUMER_DOMAINS, in_domains
from sendguard.detect.lookalike_index import SWAP_MIN, TargetIndex, build_index, to_unicode
from sendguard.detect.similarity import (
    deletions,
    distance,
    is_kana,
    kana_form,
    mixed_script,
    skeleton,
)
from sendguard.model import Address, Finding, Mail, Organisation

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
    learned_min_count: int = pydantic.Field(
        default=5,
        ge=0,
        description="Domains the organisation has written to at least this many times (from "
        "the correspondent history) become targets too; 0 = no learned targets.",
    )
    max_distance: int = pydantic.Field(
        default=2,
        ge=1,
        le=3,
        description="Largest edit distance (insert, delete, replace, swap) reported.",
    )


class LookalikeDomain(ContentDetector):
    """Recipient domains that imitate trusted ones."""

    reads_parts: ClassVar[bool] = False

    id: ClassVar[str] = "lookalike-domain"
    description: ClassVar[str] = "Recipient domains imitating trusted ones (typos, homoglyphs, IME)"
    Settings: ClassVar[type[pydantic.BaseModel]] = LookalikeDomainSettings
    codes: ClassVar[tuple[str, ...]] = ("lookalike",)

    def __init__(self, settings: pydantic.BaseModel | None = None) -> None:
        super().__init__(settings)
        self._indexes: dict[frozenset[str], TargetIndex] = {}
        self._learned: tuple[Mapping[str, int], frozenset[str]] | None = None
        """The last learned mapping seen and its frequent domains (the relay replaces the
        mapping on refresh, so identity says whether to recompute)."""

    def _index(self, org: Organisation, learned: Mapping[str, int]) -> TargetIndex:
        cfg = self.settings_as(LookalikeDomainSettings)
        if self._learned is None or self._learned[0] is not learned:
            frequent = frozenset(
                d
                for d, n in learned.items()
                if cfg.learned_min_count and n >= cfg.learned_min_count
            )
            self._learned = (learned, frequent)
        frequent = self._learned[1]
        targets = frozenset(
            org.internal_domains | org.partner_domains | org.frequent_domains | frequent
            | set(cfg.extra_targets) | (CONSUMER_DOMAINS if cfg.consumer_domains else set())
        )  # fmt: skip
        index = self._indexes.get(targets)
        if index is None:
            if len(self._indexes) >= _CACHE_SIZE:
                self._indexes.clear()
            index = self._indexes[targets] = build_index(targets, cfg.min_length, cfg.max_distance)
        return index

    def _edit(self, reg: str, domain: str, index: TargetIndex) -> str | None:
        cfg = self.settings_as(LookalikeDomainSettings)
        candidates: set[str] = set()
        for variant in deletions(domain, 1):  # one slip anywhere, suffix included
            candidates |= index.full_deletes.get(variant, frozenset())
        name = reg.partition(".")[0]
        near = any(abs(len(name) - n) <= cfg.max_distance for n in index.lengths)
        if len(name) >= cfg.min_length and near:
            for variant in deletions(name, cfg.max_distance):
                candidates |= index.deletes.get(variant, frozenset())
        best: tuple[int, str] | None = None
        for target in sorted(candidates):
            long = index.name_length[target] >= cfg.long_name
            bound = cfg.max_distance if long else 1
            if index.name_length[target] < cfg.min_length:
                # au.com, me.com: one edit makes other real domains; ocn.ne.jp is long enough
                bound = 1 if len(target) >= 8 else 0
            for query in dict.fromkeys((reg, domain)):
                d = distance(query, target, bound)
                if 0 < d <= bound and (best is None or d < best[0]):
                    best = (d, target)
        return best[1] if best else None

    @staticmethod
    def _embedded(domain: str, index: TargetIndex) -> str | None:
        """A trusted domain inside another (``gmail.com.example.net``, ``nifty.ne.jp.com``)."""
        labels = domain.split(".")
        for i in range(len(labels)):
            for j in range(i + 2, len(labels)):  # never the whole tail: that is a subdomain
                if ".".join(labels[i:j]) in index.targets:
                    return ".".join(labels[i:j])
        return None

    def match(self, address: Address, index: TargetIndex) -> tuple[str, str] | None:
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
        if len(name) >= SWAP_MIN and name in index.names:
            return index.names[name][0], "suffix-swap"
        target = self._embedded(domain, index)
        if target is not None:
            return target, "embedded"
        target = self._edit(reg, domain, index)
        return (target, "edit-distance") if target is not None else None

    def detect(self, mail: Mail, ctx: DetectContext) -> list[Finding]:
        """One `lookalike` finding per suspicious recipient domain."""
        index = self._index(ctx.organisation, ctx.learned)
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
                    params={
                        "domain": shown,
                        "imitates": to_unicode(target),
                        "technique": technique,
                    },
                    evidence=(f"{shown} ≈ {to_unicode(target)}",),
                    where=("envelope",),
                )
            )
        return found
