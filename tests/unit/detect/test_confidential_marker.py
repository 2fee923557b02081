"""Tests of the `confidential-marker` detector."""

from __future__ import annotations

from sendguard.detect.confidential_marker import ConfidentialMarker, ConfidentialMarkerSettings
from sendguard.model import Mail, Part

from .helpers import context, text_mail

CTX = context(["a@abc.co.jp"])


def test_marker_in_subject_body_filename_and_attachment() -> None:
    """Markers are counted in every place and each place is named."""
    doc = Part(
        path=("attachment 1", "計画.docx"), declared_type="", sniffed_type="",
        filename="【社外秘】計画.docx", text="INTERNAL ONLY\n本資料は極秘です", is_attachment=True,
    )  # fmt: skip
    mail = text_mail("機密 につき取扱注意", subject="Confidential: 来期計画", attachments=(doc,))
    (finding,) = ConfidentialMarker().detect(mail, CTX)
    assert finding.code == "marker"
    assert finding.count == 6
    assert finding.where == ("subject", "body", "attachment 1 › 計画.docx")
    assert set(finding.evidence) == {
        "confidential",
        "機密",
        "取扱注意",
        "社外秘",
        "internal only",
        "極秘",
    }


def test_full_width_and_spacing_variants_match() -> None:
    """NFKC makes full-width letters match; a hyphen or underscore matches a space."""
    mail = text_mail("ＣＯＮＦＩＤＥＮＴＩＡＬ / internal-only / Internal_Only")
    (finding,) = ConfidentialMarker().detect(mail, CTX)
    assert finding.count == 3


def test_talking_about_confidentiality_is_not_a_marker() -> None:
    """機密保持契約 (an NDA) mentions 機密 without marking the mail."""
    mail = text_mail("機密保持契約書をお送りします。秘密保持義務についてご確認ください。")
    assert ConfidentialMarker().detect(mail, CTX) == []


def test_configured_words_replace_the_defaults() -> None:
    """An organisation's own marker words are used instead of the defaults."""
    detector = ConfidentialMarker(ConfidentialMarkerSettings(words=("関係者限り",), exclude=()))
    assert detector.detect(text_mail("社外秘"), CTX) == []
    assert detector.detect(text_mail("関係者限りの資料"), CTX)[0].count == 1


def test_plain_mail_yields_nothing() -> None:
    """Ordinary business mail has no marker."""
    assert ConfidentialMarker().detect(Mail(subject="お見積りの件"), CTX) == []


def test_disclaimer_paragraphs_are_not_markers() -> None:
    """Footer disclaimers ('may contain confidential information … intended recipient',
    誤送信) mention confidentiality in every mail; the paragraph is skipped, the rest is not."""
    body = (
        "社外秘: 来期計画を添付します。\n\n"
        "NOTICE: This communication may contain privileged or other confidential\n"
        "information. If you are not the intended recipient, please delete it.\n\n"
        "本メールには機密情報が含まれています。誤送信の場合は破棄してください。"
    )
    (finding,) = ConfidentialMarker().detect(text_mail(body), CTX)
    assert finding.count == 1
    assert finding.evidence == ("社外秘",)
