"""Quality floors of the history detectors on the synthetic office (see history_eval.py)."""

from __future__ import annotations

import asyncio

import pytest

from .history_eval import EXPECTED, Result, evaluate_office


@pytest.fixture(scope="module")
def result() -> Result:
    """The office evaluated once."""
    return asyncio.run(evaluate_office())


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_each_misdelivery_is_found(result: Result, kind: str) -> None:
    """Lookalikes of learned domains, autocomplete and one-letter slips, thread outsiders."""
    assert result.recall[kind] >= 0.95, f"{kind}: recall {result.recall[kind]:.3f}"


def test_every_misdelivery_is_also_a_first_contact(result: Result) -> None:
    """A wrong person is, nearly always, someone this sender never wrote to."""
    assert result.first_contact_recall >= 0.95


@pytest.mark.parametrize(
    ("detector", "ceiling"),
    [
        ("lookalike-domain", 0.01),
        ("thread-outsider", 0.01),
        ("recipient-slip", 0.02),
        # Real first contacts (a colleague's customer, a new company) are ~7 % of the week:
        # the finding is low severity, for a policy to warn or delay on, not to hold.
        ("first-contact", 0.12),
    ],
)
def test_false_flags_on_an_ordinary_week(result: Result, detector: str, ceiling: float) -> None:
    """The share of an ordinary week's messages each detector flags (what an office feels)."""
    assert result.false_flags[detector] <= ceiling, result.false_flags
