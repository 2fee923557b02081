"""Confidential-marker and uninspectable-attachment cases."""

from __future__ import annotations

from collections.abc import Iterator

from sendguard.model import Mail, Part, Problem

from .case import Case, labels
from .formats import Content, direct_part
from .synth import Synth

CM, UA = "confidential-marker", "uninspectable-attachment"
WORDS = (
    "社外秘",
    "極秘",
    "機密",
    "取扱注意",
    "Confidential",
    "CONFIDENTIAL",
    "Internal Only",
    "部外秘",
)
PLACES = ("subject", "body", "filename", "attachment")
NEUTRAL = (
    "機密保持契約書(NDA)のドラフトをお送りします。",
    "秘密保持義務の条項をご確認ください。",
    "来週の打ち合わせの件、承知いたしました。",
    "見積書を添付いたします。",
    "Thank you for your order.",
    "Please find the confidentiality agreement attached.",
    "議事録を共有します。",
)


def _marked(word: str, place: str) -> Mail:
    body = direct_part(Content(text="資料を送付します。"), "body-text")
    if place == "subject":
        return Mail(subject=f"【{word}】来期計画", parts=(body,))
    if place == "body":
        return Mail(
            subject="来期計画",
            parts=(direct_part(Content(text=f"本メールは{word}です。"), "body-text"),),
        )
    name = f"{word}_計画.docx" if place == "filename" else "計画.docx"
    text = f"{word}\n来期計画" if place == "attachment" else "来期計画"
    part = Part(("attachment 1", name), "", "", filename=name, text=text, is_attachment=True)
    return Mail(subject="来期計画", parts=(body, part))


def marker_cases(s: Synth) -> Iterator[Case]:
    """Marker words in each place (positives) and confidentiality talk (negatives)."""
    scope = frozenset({CM})
    for word in WORDS:
        for place in PLACES:
            yield Case(
                f"marker-{word}-{place}",
                f"marker:{place}",
                scope,
                labels(CM, "marker"),
                _marked(word, place),
            )
    for i, text in enumerate(NEUTRAL * 3):
        mail = Mail(subject="ご連絡", parts=(direct_part(Content(text=text), "body-text"),))
        yield Case(f"neutral-{i}", "negative:marker", scope, frozenset(), mail)


def uninspectable_cases(s: Synth) -> Iterator[Case]:
    """Each problem kind (positives) and fully read mail (negatives)."""
    scope = frozenset({UA})
    kinds = (
        ("encrypted", "encrypted-zip"),
        ("encrypted", "encrypted-office"),
        ("limit", "mime-depth"),
        ("malformed", "bad-zip"),
        ("unsupported", "rar"),
        ("timeout", "extract-time"),
    )
    for kind, code in kinds:
        mail = Mail(problems=(Problem(kind, code, "attachment 1 › 資料.zip"),))  # type: ignore[arg-type]
        yield Case(f"problem-{code}", f"uninspectable:{kind}", scope, labels(UA, kind), mail)
    for i in range(10):
        yield Case(
            f"readable-{i}",
            "negative:readable",
            scope,
            frozenset(),
            Mail(parts=(direct_part(Content(text="本文"), "body-text"),)),
        )
