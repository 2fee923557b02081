"""The target index of `lookalike-domain`: every look-up structure over the trusted domains,
built once per target set and cached on the detector.

Homoglyph skeletons, hyphen-less forms, IME kana renderings, names for suffix swaps, a
deletion index over names (edit distance up to 2) and one over whole domains (one edit, for
typos in the suffix such as ``yahoo.co.jo``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sendguard.detect.similarity import deletion_index, kana_form, skeleton
from sendguard.parse.addresses import registrable_domain

SWAP_MIN = 3
"""Shortest name for suffix swaps (``ocn.co.jp``); two letters (``au``) are too common."""


def split(domain: str) -> tuple[str, str]:
    """``tanaka-shoji.co.jp`` → (``tanaka-shoji``, ``co.jp``) by the public suffix list."""
    name, _, suffix = registrable_domain(domain).partition(".")
    return name, suffix


def to_unicode(domain: str) -> str:
    """The U-label form a person reads (``xn--…`` decoded)."""
    try:
        return domain.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return domain


@dataclass(frozen=True, slots=True)
class TargetIndex:
    """Precomputed look-ups over one target set."""

    targets: frozenset[str]
    skeletons: dict[str, str]
    dehyphened: dict[str, str]
    names: dict[str, tuple[str, ...]]
    kana: dict[str, str]
    deletes: dict[str, frozenset[str]]
    """Deletion variant of a name → target domains (edit distance on names)."""
    full_deletes: dict[str, frozenset[str]]
    """Deletion variant of a whole domain → target domains (one edit anywhere)."""
    lengths: frozenset[int]
    """Lengths of the indexed names: a name no target length is near cannot be a typo."""
    name_length: dict[str, int]


def _by_target(
    index: dict[str, frozenset[str]], names: dict[str, list[str]]
) -> dict[str, frozenset[str]]:
    return {k: frozenset(t for name in v for t in names[name]) for k, v in index.items()}


def build_index(targets: frozenset[str], min_length: int, max_distance: int) -> TargetIndex:
    """Index `targets` for the checks of `LookalikeDomain.match`."""
    skeletons: dict[str, str] = {}
    dehyphened: dict[str, str] = {}
    kana: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    name_length: dict[str, int] = {}
    for target in sorted(targets):
        name = split(target)[0]
        name_length[target] = len(name)
        skeletons.setdefault(skeleton(to_unicode(target)), target)
        dehyphened.setdefault(target.replace("-", ""), target)
        kana.setdefault(kana_form(target), target)
        if len(name) >= SWAP_MIN:
            names.setdefault(name, []).append(target)
    # Names, not whole domains, in the distance-2 index: 6× fewer variants per recipient;
    # the suffix is compared by the full distance check afterwards.
    eligible = [name for name in names if len(name) >= min_length]
    return TargetIndex(
        targets=targets,
        skeletons=skeletons,
        dehyphened=dehyphened,
        names={k: tuple(v) for k, v in names.items()},
        kana=kana,
        deletes=_by_target(deletion_index(eligible, max_distance), names),
        full_deletes=deletion_index(targets, 1),
        lengths=frozenset(len(n) for n in eligible),
        name_length=name_length,
    )
