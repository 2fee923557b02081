"""Precision and recall of every detector and finding code on the labelled evaluation set.

Run ``python tests/eval/evaluate.py`` (``--parsed`` sends attachment cases through
`sendguard.parse.parse_message` as real files instead of building their parts directly).
`tests/eval/test_quality.py` holds the floors.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "tests.eval"  # run as a script: make relative imports work

from sendguard.detect import registry
from sendguard.model import Mail

from .case import Case, Label
from .cases_domains import lookalike_cases, recipient_cases
from .cases_hard import lookalike_hard_cases, pii_hard_cases
from .cases_headerless import headerless_cases
from .cases_other import marker_cases, uninspectable_cases
from .cases_pii import pii_cases
from .synth import Synth


def all_cases(seed: int = 20261123) -> list[Case]:
    """The whole evaluation set, deterministic for a seed."""
    s = Synth(seed)
    return [
        *pii_cases(s), *lookalike_cases(s), *recipient_cases(s), *marker_cases(s),
        *uninspectable_cases(s), *pii_hard_cases(s), *lookalike_hard_cases(s),
        *headerless_cases(),
    ]  # fmt: skip


@dataclass
class Score:
    """Confusion counts of one (detector, code)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    negatives: int = 0

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1.0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1.0 when there were no positives."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def fp_rate(self) -> float:
        """FP / cases where the code should not fire."""
        return self.fp / self.negatives if self.negatives else 0.0


@functools.cache
def _detectors(scope: frozenset[str]) -> registry.Detectors:
    # One build per scope: the lookalike index is then built once, as in the relay.
    return registry.build(enabled=[d for d in scope if d != "unresolvable-domain"])


def predict(case: Case, mail: Mail | None = None) -> frozenset[Label]:
    """(detector, code) pairs the in-scope content detectors report for a case."""
    found = registry.run_content(_detectors(case.scope), mail or case.mail, case.ctx())
    return frozenset((f.detector, f.code) for f in found)


def codes_in_scope(cases: Iterable[Case]) -> dict[str, set[str]]:
    """Codes judged per detector: every code some case expects."""
    out: dict[str, set[str]] = {}
    for case in cases:
        for detector, code in case.expected:
            out.setdefault(detector, set()).add(code)
    return out


def score(cases: list[Case], predictions: list[frozenset[Label]]) -> dict[Label, Score]:
    """Confusion counts per (detector, code); unexpected codes count as false positives."""
    judged = codes_in_scope(cases)
    scores: dict[Label, Score] = {}
    for case, predicted in zip(cases, predictions, strict=True):
        for detector in case.scope:
            codes = judged.get(detector, set()) | {c for d, c in predicted if d == detector}
            for code in codes:
                sc = scores.setdefault((detector, code), Score())
                want, got = (detector, code) in case.expected, (detector, code) in predicted
                sc.negatives += not want
                sc.tp += want and got
                sc.fp += got and not want
                sc.fn += want and not got
    return scores


def misses(cases: list[Case], predictions: list[frozenset[Label]]) -> Iterator[str]:
    """One line per case whose prediction differs from its labels."""
    for case, predicted in zip(cases, predictions, strict=True):
        scoped = frozenset(p for p in predicted if p[0] in case.scope)
        if scoped != case.expected:
            missing = sorted(c for _, c in case.expected - scoped)
            extra = sorted(c for _, c in scoped - case.expected)
            yield f"{case.name}: missing {missing} extra {extra}"


def report(scores: dict[Label, Score]) -> str:
    """The precision/recall table as text."""
    lines = [
        f"{'detector':26} {'code':22} {'TP':>5} {'FP':>4} {'FN':>4} "
        f"{'prec':>6} {'recall':>6} {'FP-rate':>7}"
    ]
    for (detector, code), sc in sorted(scores.items()):
        lines.append(
            f"{detector:26} {code:22} {sc.tp:5} {sc.fp:4} {sc.fn:4} "
            f"{sc.precision:6.3f} {sc.recall:6.3f} {sc.fp_rate:7.2%}"
        )
    return "\n".join(lines)


def group_recall(
    cases: list[Case], predictions: list[frozenset[Label]]
) -> dict[str, tuple[int, int]]:
    """(cases fully right, cases) per case group (format, technique, negative kind)."""
    totals: Counter[str] = Counter()
    right: Counter[str] = Counter()
    for case, predicted in zip(cases, predictions, strict=True):
        totals[case.group] += 1
        scoped = frozenset(p for p in predicted if p[0] in case.scope)
        right[case.group] += scoped == case.expected
    return {g: (right[g], totals[g]) for g in sorted(totals)}


def main(argv: list[str] | None = None) -> int:
    """Print the table (and, with --verbose, every case that differs)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="list every mislabelled case")
    parser.add_argument("--parsed", action="store_true", help="attachments through parse_message")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cases = all_cases()
    if args.parsed:
        from .mime import parsed_mail

        predictions = [predict(c, parsed_mail(c)) for c in cases]
    else:
        predictions = [predict(c) for c in cases]
    print(report(score(cases, predictions)))
    print("\ncases fully right per group:")
    for group, (ok, total) in group_recall(cases, predictions).items():
        print(f"  {group:32} {ok:4}/{total:<4}")
    if args.verbose:
        print("\n".join(misses(cases, predictions)))
    print(f"\n{len(cases)} cases in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
