"""Message bodies, headers, filenames and forwarded messages in every Japanese encoding."""

from __future__ import annotations

import pytest

from sendguard.parse import ParseLimits, parse_message
from tests.support.attachments import Attachment, build_message

from .helpers import part

TEXT = "お客様各位\n電話番号は０９０-１２３４-５６７８です。"
NFKC_TEXT = "お客様各位\n電話番号は090-1234-5678です。"


def _raw(content_type: str, body: bytes, cte: str = "8bit") -> bytes:
    head = "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: x\r\n"
    head += f"Content-Type: {content_type}\r\n"
    return head.encode() + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body


@pytest.mark.parametrize("charset", ["utf-8", "shift_jis", "cp932", "euc-jp", "iso-2022-jp"])
def test_plain_body_in_each_declared_charset(charset: str) -> None:
    """text/plain decodes from UTF-8, Shift_JIS, CP932, EUC-JP and ISO-2022-JP, NFKC."""
    mail = parse_message(build_message(body=TEXT, charset=charset), ParseLimits())
    assert part(mail, "body").text.strip() == NFKC_TEXT


@pytest.mark.parametrize(
    ("declared", "codec"),
    [("iso-2022-jp", "cp932"), ("us-ascii", "utf-8"), ("shift_jis", "euc-jp"), ("", "cp932")],
)
def test_mislabelled_or_undeclared_charset_still_reads(declared: str, codec: str) -> None:
    """A body whose label is wrong (or missing) is decoded by detection, not as mojibake."""
    charset = f"; charset={declared}" if declared else ""
    mail = parse_message(_raw(f"text/plain{charset}", TEXT.encode(codec)), ParseLimits())
    assert part(mail, "body").text.strip() == NFKC_TEXT


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16"])
def test_byte_order_marks_win(codec: str) -> None:
    """A BOM decides the encoding whatever the label says."""
    mail = parse_message(_raw("text/plain; charset=shift_jis", TEXT.encode(codec)), ParseLimits())
    assert part(mail, "body").text.strip() == NFKC_TEXT


def test_html_visible_text_and_tables_only() -> None:
    """HTML yields visible text (no script, style or head) and its tables as tables."""
    html = (
        "<html><head><title>件名</title><style>p{color:red}</style></head><body>"
        "<p>ご確認ください。</p><script>var secret='見えない';</script>"
        "<table><tr><th>氏名</th><th>電話</th></tr><tr><td>田中</td><td>０９０</td></tr></table>"
        "</body></html>"
    )
    mail = parse_message(build_message(body="plain", html=html, charset="cp932"), ParseLimits())
    found = part(mail, "body 2")
    assert found.sniffed_type == "text/html"
    assert "ご確認ください。" in found.text
    assert "見えない" not in found.text
    assert "color" not in found.text
    assert found.tables[0].rows == (("氏名", "電話"), ("田中", "090"))


def test_subject_is_decoded_and_nfkc() -> None:
    """An ISO-2022-JP RFC 2047 subject decodes and full-width letters become ASCII."""
    raw = build_message(
        subject="【ＣＯＮＦＩＤＥＮＴＩＡＬ】顧客一覧", header_charset="iso-2022-jp"
    )
    assert parse_message(raw, ParseLimits()).subject == "【CONFIDENTIAL】顧客一覧"


@pytest.mark.parametrize(
    ("style", "charset"),
    [
        ("rfc2231", "utf-8"),
        ("rfc2231", "shift_jis"),
        ("rfc2047", "utf-8"),
        ("rfc2047", "iso-2022-jp"),
    ],
)
def test_attachment_filenames_in_rfc2231_and_rfc2047(style: str, charset: str) -> None:
    """Filenames decode from RFC 2231 parameters and RFC 2047 words (as Outlook writes them)."""
    item = Attachment("顧客リスト.csv", b"a,b\n", "text/csv", style, charset)
    mail = parse_message(build_message(attachments=[item]), ParseLimits())
    assert part(mail, "attachment 1").filename == "顧客リスト.csv"


def test_addresses_from_every_field() -> None:
    """From, To, Cc, Reply-To, Bcc and Sender are read, with their field recorded."""
    raw = (
        b"From: =?ISO-2022-JP?B?GyRCRURDZhsoQg==?= <tanaka@mail.tanaka.co.jp>\r\n"
        b"Sender: secretary@tanaka.co.jp\r\nTo: a@example.com, b@example.net\r\n"
        b"Cc: undisclosed-recipients:;\r\nBcc: hidden@example.org\r\nReply-To: r@example.jp\r\n"
        b"Subject: x\r\n\r\nbody\r\n"
    )
    mail = parse_message(raw, ParseLimits())
    assert [(a.addr_spec, a.field) for a in mail.from_] == [
        ("tanaka@mail.tanaka.co.jp", "from"),
        ("secretary@tanaka.co.jp", "sender"),
    ]
    assert mail.from_[0].display_name == "田中"
    assert mail.from_[0].registrable_domain == "tanaka.co.jp"
    assert [a.addr_spec for a in mail.to] == ["a@example.com", "b@example.net"]
    assert mail.cc == ()
    assert [a.addr_spec for a in mail.bcc] == ["hidden@example.org"]
    assert [a.addr_spec for a in mail.reply_to] == ["r@example.jp"]


def test_forwarded_message_is_walked_recursively() -> None:
    """A forwarded message/rfc822 exposes its headers, body and attachments under its path."""
    inner = build_message(
        subject="元のメール",
        to=(("", "customer@example.com"),),
        body="転送元の本文",
        attachments=[Attachment("名簿.csv", "氏名\n田中\n".encode("cp932"), "text/csv")],
    )
    outer = build_message(
        body="転送します", attachments=[Attachment("fwd.eml", inner, "message/rfc822")]
    )
    mail = parse_message(outer, ParseLimits())
    assert "customer@example.com" in part(mail, "attachment 1").text
    assert part(mail, "attachment 1 › forwarded message › body").text.strip() == "転送元の本文"
    csv_part = part(mail, "attachment 1 › forwarded message › attachment 1")
    assert csv_part.tables[0].rows == (("氏名",), ("田中",))
