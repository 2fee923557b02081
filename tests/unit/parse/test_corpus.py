"""The real-world corpus (Ruby mail gem fixtures) parses without an exception."""

from __future__ import annotations

from email.message import Message

from sendguard.parse import ParseLimits, parse_message
from tests.conftest import CORPUS

FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in ("LICENSE", "SOURCE"))


def test_corpus_is_present() -> None:
    """The vendored corpus is in tests/: a missing corpus fails here instead of skipping."""
    assert len(FILES) > 100, f"corpus not found at {CORPUS}"


def test_whole_corpus_parses_without_parser_errors() -> None:
    """Every corpus message yields a view; none hits an internal parser error."""
    limits = ParseLimits()
    failures = []
    for path in FILES:
        raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # sent with CRLF
        mail = parse_message(raw, limits)
        if any(p.code in ("parser-error", "unreadable") for p in mail.problems):
            failures.append((path.name, [p.code for p in mail.problems]))
        assert mail.size == len(raw)
    assert failures == []
    assert len(FILES) > 100


def test_corpus_japanese_messages_read_correctly() -> None:
    """The corpus' ISO-2022-JP and Shift_JIS messages come out as Japanese text."""
    by_name = {p.name: p for p in FILES}
    iso = parse_message(by_name["japanese_iso_2022.eml"].read_bytes(), ParseLimits())
    assert iso.subject == "まみむめも"
    assert "すみません。" in iso.parts[0].text
    sjis = parse_message(by_name["japanese_shift_jis.eml"].read_bytes(), ParseLimits())
    assert "このメールはテスト用のメールです。" in sjis.parts[0].text


def test_chunked_parse_equals_the_stdlib_bytes_parser() -> None:
    """`mime.parse_bytes` feeds the parser in pieces (to keep a big message's peak memory
    down): on every corpus message, cut into pieces of 1, 7, 4096 and 65536 octets, it
    builds the same parts (headers, raw payloads, preambles, defects) as
    `BytesParser.parsebytes`."""
    from email.parser import BytesParser
    from email.policy import compat32

    from sendguard.parse.mime import parse_bytes

    def shape(message: Message) -> list[tuple[object, ...]]:
        return [
            (
                part.items(),
                part.get_payload() if not part.is_multipart() else None,
                part.preamble,
                part.epilogue,
                [type(d).__name__ for d in part.defects],
            )
            for part in message.walk()
        ]

    for path in FILES:
        raw = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        expected = shape(BytesParser(policy=compat32).parsebytes(raw))
        for chunk in (1, 7, 4096, 65536):
            assert shape(parse_bytes(raw, chunk)) == expected, (path.name, chunk)
