"""The homoglyph skeleton of `lookalike-domain`: Unicode TR39 confusables (maintained by the
`confusable-homoglyphs` package), shipped as a generated table."""

from __future__ import annotations

import pytest

from sendguard.detect.lookalike_domain import LookalikeDomain
from sendguard.detect.similarity import skeleton
from sendguard.model import Mail
from tests.support.confusables import SHIPPED, render, tr39_to_ascii

from .helpers import context


def test_the_shipped_table_is_the_installed_tr39_data() -> None:
    """Fails when confusable-homoglyphs brings new Unicode data: regenerate the table with
    ``python -m tests.support.confusables``."""
    assert SHIPPED.read_text("utf-8") == render(tr39_to_ascii())


@pytest.mark.parametrize(
    ("lookalike", "reads_as"),
    [
        ("ѕоnу", "sony"),  # Cyrillic dze, o, u
        ("τογοτα", "toyota"),  # Greek tau, omicron, gamma, alpha
        ("һіtасһі", "hitachi"),  # Cyrillic shha, i, es
        ("ѕоftbаnk", "softbank"),
        ("rnizuho", "mizuho"),  # rn for m
    ],
)
def test_cyrillic_and_greek_letters_read_as_latin(lookalike: str, reads_as: str) -> None:
    assert skeleton(lookalike) == skeleton(reads_as)


@pytest.mark.parametrize(
    ("recipient", "imitates"),
    [
        # Four look-alikes (Cyrillic ghe, Greek sigma and gamma): past the edit distance of 2.
        ("a@maгutaka-kσgγσ.co.jp", "marutaka-kogyo.co.jp"),
        # Armenian letters: տ is not confusable, but հ, ո and ս are.
        ("a@tanaka-sհoji.co.jp", "tanaka-shoji.co.jp"),
        ("a@sakuгa-bank.jp", "sakura-bank.jp"),
        ("a@examρle-cσrp.co.jp", "example-corp.co.jp"),
    ],
)
def test_lookalikes_of_japanese_company_domains_are_homoglyphs(
    recipient: str, imitates: str
) -> None:
    """Reported as script mixing (a homoglyph attack), not as a typo."""
    found = LookalikeDomain().detect(Mail(), context([recipient]))
    assert [(f.params["imitates"], f.params["technique"]) for f in found] == [
        (imitates, "mixed-script")
    ]
