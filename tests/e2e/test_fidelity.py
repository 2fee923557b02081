"""Byte fidelity: when nothing is decided against a message, the upstream gets exactly its bytes
(a Bcc:/Resent-Bcc: field the client left in it is the one thing removed, as Postfix does)."""

from __future__ import annotations

import re
from pathlib import Path

import aiosmtplib
import pytest

from tests.conftest import CORPUS
from tests.support.relay import running_relay
from tests.support.upstream import RecordingUpstream


def corpus_messages() -> list[Path]:
    """Every message of the vendored corpus (tests/corpus/mikel-mail)."""
    return sorted(
        p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"LICENSE", "SOURCE"}
    )


def as_crlf(raw: bytes) -> bytes:
    """The message with CRLF line endings, ending in CRLF, as a mail client sends it."""
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


# Written independently of the relay's header splitter: the field and its continuation lines.
_BCC = re.compile(rb"\A((?:[^\r\n]+\r\n)*?)(?:resent-)?bcc[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*", re.I)


def without_bcc(data: bytes) -> bytes:
    """The message as the relay must pass it: its header-block Bcc fields removed."""
    head, sep, body = data.partition(b"\r\n\r\n")
    head += sep
    while (match := _BCC.match(head)) is not None:
        head = match.group(1) + head[match.end() :]
    return head + body


def test_corpus_is_present() -> None:
    """The vendored corpus is there; fidelity below would be vacuous without it."""
    assert len(corpus_messages()) >= 100


async def test_every_corpus_message_arrives_byte_identical(upstream: RecordingUpstream) -> None:
    """Every real-world corpus message passes through the relay unchanged, byte for byte."""
    messages = corpus_messages()
    sent: list[bytes] = []
    async with running_relay(upstream=upstream.url) as app:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.bound[0][1], timeout=30)
        await client.connect()
        for path in messages:
            data = as_crlf(path.read_bytes())
            options = ["BODY=8BITMIME"] if any(b > 127 for b in data) else []
            await client.sendmail(
                "sender@example.jp", ["rcpt@partner.test"], data, mail_options=options
            )
            sent.append(data)
        await client.quit()
    assert len(upstream.messages) == len(messages)
    mismatched = [
        p.name
        for p, s, got in zip(messages, sent, upstream.messages, strict=True)
        if got.data != without_bcc(s)
    ]
    assert mismatched == []
    # Only the corpus message that has a Bcc field differs from what was sent.
    changed = [p.name for p, s in zip(messages, sent, strict=True) if without_bcc(s) != s]
    assert changed == ["content_transfer_encoding_empty.eml"]


@pytest.mark.parametrize("length", [998, 999, 1200])
async def test_long_lines(upstream: RecordingUpstream, length: int) -> None:
    """Lines up to 998 octets pass; longer ones get a 5xx (RFC 5322 §2.1.1) and nothing is sent."""
    data = b"Subject: long\r\n\r\n" + b"x" * length + b"\r\n"
    async with running_relay(upstream=upstream.url) as app:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.bound[0][1], timeout=30)
        await client.connect()
        if length <= 998:
            await client.sendmail("a@example.jp", ["b@partner.test"], data)
            assert upstream.messages[0].data == data
        else:
            with pytest.raises(aiosmtplib.SMTPDataError) as info:
                await client.sendmail("a@example.jp", ["b@partner.test"], data)
            assert info.value.code in (500, 550)
            assert upstream.messages == []
        client.close()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n",
        b"x\r\n",
        b"Subject: no body\r\n",
        b"Subject: dots\r\n\r\nEnds with a dot.\r\n.\r\nA stuffed lone dot above.\r\n",
        b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\nend.\r\n",
        b"Subject: smuggle-like\r\n\r\nlast line.\r\n",
    ],
    ids=["empty", "crlf", "one-line", "header-only", "dot-lines", "dot-runs", "dot-at-end"],
)
async def test_short_and_dotted_messages(upstream: RecordingUpstream, data: bytes) -> None:
    """Messages of any shape end at CRLF.CRLF and arrive exactly as sent (dot-unstuffed)."""
    async with running_relay(upstream=upstream.url) as app:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=app.bound[0][1], timeout=10)
        await client.connect()
        await client.sendmail("a@example.jp", ["b@partner.test"], data)
        client.close()
    [got] = upstream.messages
    # The client library ends every message with CRLF (an empty one becomes CRLF).
    assert got.data == (data if data.endswith(b"\r\n") else data + b"\r\n")
