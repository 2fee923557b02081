"""Contract with the stdlib email package's internals (`sendguard.compat`): the RFC 5322
address tokenizer and a parsed part's raw payload."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.parser import BytesParser
from email.policy import compat32

import pytest

from sendguard import compat


def test_addr_spec_and_angle_addr_split_the_address_from_the_rest() -> None:
    """The parameters after the address come back without the blank between (MAIL's and
    RCPT's parameters are parsed from that rest)."""
    token, rest = compat.get_addr_spec("tanaka@example.co.jp SIZE=100")
    assert token.addr_spec == "tanaka@example.co.jp" and rest == "SIZE=100"
    token, rest = compat.get_angle_addr("<sato@example.jp> BODY=8BITMIME")
    assert token.addr_spec == "sato@example.jp" and rest == "BODY=8BITMIME"
    token, _ = compat.get_angle_addr('<"a b"@example.jp>')
    assert token.addr_spec == '"a b"@example.jp'
    # Lenient where RFC 5322's obsolete syntax is (aiosmtpd accepts the same).
    token, rest = compat.get_angle_addr("<unterminated@example.jp")
    assert token.addr_spec == "unterminated@example.jp" and rest == ""


@pytest.mark.parametrize("bad", ["<@>", "@@", "tanaka@example.jp"])
def test_a_malformed_angle_address_raises_header_parse_error(bad: str) -> None:
    with pytest.raises(HeaderParseError):
        compat.get_angle_addr(bad)


@pytest.mark.parametrize("bad", ["<sato@example.jp>", "@@", "<@>"])
def test_a_malformed_addr_spec_raises_header_parse_error(bad: str) -> None:
    with pytest.raises(HeaderParseError):
        compat.get_addr_spec(bad)


def test_the_raw_payload_keeps_the_original_8bit_bytes() -> None:
    body = "請求書を送ります。\r\n".encode("shift_jis") + b"\xff\xfe broken\r\n"
    data = (
        b"Content-Type: text/plain; charset=utf-8\r\n"  # declared wrongly: get_payload() lies
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body
    )
    part = BytesParser(policy=compat32).parsebytes(data)
    assert compat.raw_payload(part) == body


def test_a_multipart_has_no_raw_payload_of_its_own() -> None:
    data = (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
    )
    message = BytesParser(policy=compat32).parsebytes(data)
    assert compat.raw_payload(message) == b""
    (part,) = message.get_payload()
    assert compat.raw_payload(part) == b"hello"
