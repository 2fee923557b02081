"""Tests of the `uninspectable-attachment` detector."""

from __future__ import annotations

from sendguard.detect.uninspectable_attachment import UninspectableAttachment
from sendguard.model import Mail, Part, Problem

from .helpers import context

CTX = context(["a@abc.co.jp"])


def test_one_finding_per_problem_with_reason_and_place() -> None:
    """Each parser problem becomes a finding coded by its kind, with its reason and place."""
    mail = Mail(
        problems=(
            Problem("encrypted", "encrypted-zip", "attachment 1 › 資料.zip"),
            Problem("limit", "mime-depth", "message", "depth 80 > limit 64"),
        )
    )
    found = UninspectableAttachment().detect(mail, CTX)
    assert [(f.code, f.params["reason"], f.where) for f in found] == [
        ("encrypted", "encrypted-zip", ("attachment 1 › 資料.zip",)),
        ("limit", "mime-depth", ("message",)),
    ]
    assert found[0].severity == "high"


def test_encrypted_part_without_problem_is_reported_once() -> None:
    """An encrypted part the parser did not list as a problem is still reported, once."""
    part = Part(
        path=("attachment 1", "給与.xlsx"), declared_type="", sniffed_type="", encrypted=True
    )
    listed = Problem("encrypted", "encrypted-office", "attachment 1 › 給与.xlsx")
    assert len(UninspectableAttachment().detect(Mail(parts=(part,)), CTX)) == 1
    found = UninspectableAttachment().detect(Mail(parts=(part,), problems=(listed,)), CTX)
    assert [f.params["reason"] for f in found] == ["encrypted-office"]


def test_fully_read_mail_yields_nothing() -> None:
    """No problems, no findings."""
    assert UninspectableAttachment().detect(Mail(), CTX) == []


def test_malformed_visible_recipients_are_not_attachment_problems() -> None:
    """A broken To/Cc/Resent-To entry is reported by visible-recipients, not here; a broken
    From still is."""
    mail = Mail(
        problems=(
            Problem("malformed", "address-syntax", "to", "bad domain"),
            Problem("malformed", "address-syntax", "resent-cc", "bad domain"),
            Problem("malformed", "address-syntax", "from", "bad domain"),
        )
    )
    found = UninspectableAttachment().detect(mail, CTX)
    assert [f.where for f in found] == [("from",)]
