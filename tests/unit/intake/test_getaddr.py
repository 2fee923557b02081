"""`RelaySMTP._getaddr`'s direct answer for ``<dot-atom@dot-atom>`` paths is the email
tokenizer's (`_tokenized`, aiosmtpd's own parse): on random MAIL/RCPT arguments built from
the characters that matter (atext, dots, brackets, quotes, comments, blanks, non-ASCII)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.intake.server import RelaySMTP

PIECES = st.sampled_from(
    ["a", "Z", "0", "-", "_", "+", "=", "'", "`", "{", "~", "!", "#", ".", "..", "@", "@@",
     "<", ">", " ", "\t", "(", ")", "(c)", '"', '"q r"', "[", "]", "[1.2.3.4]", ":", ",",
     ";", "\\", "é", "日本", "SIZE=10", " BODY=8BITMIME", "xn--", "\x7f", " (c) X"]
)  # fmt: skip


def _protocol(limit: int) -> SimpleNamespace:
    fake = SimpleNamespace(local_part_limit=limit)
    fake._tokenized = lambda arg: RelaySMTP._tokenized(fake, arg)  # type: ignore[arg-type]
    return fake


def _outcome(parse: object, proto: SimpleNamespace, arg: str) -> object:
    """The answer, or the exception the tokenizer raises on some inputs (both the same)."""
    try:
        return parse(proto, arg)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001
        return type(exc)


@settings(max_examples=3000, deadline=None)
@given(
    head=st.lists(PIECES, max_size=4).map("".join),
    local=st.lists(PIECES, min_size=1, max_size=5).map("".join),
    domain=st.lists(PIECES, min_size=1, max_size=5).map("".join),
    tail=st.lists(PIECES, max_size=4).map("".join),
    limit=st.sampled_from([0, 3, 64]),
)
def test_the_direct_answer_is_the_tokenizers(
    head: str, local: str, domain: str, tail: str, limit: int
) -> None:
    proto = _protocol(limit)
    for arg in (f"<{local}@{domain}>{tail}", f"{head}<{local}@{domain}>{tail}", head + local):
        if arg:
            fast = _outcome(RelaySMTP._getaddr, proto, arg)
            assert fast == _outcome(RelaySMTP._tokenized, proto, arg)


@pytest.mark.parametrize(
    "arg",
    ["<a.b@c.example>", "<a@b> SIZE=1", "<a@b>\t BODY=8BITMIME", "<a@b>SIZE=1", "<a@b> (c) X",
     "<a..b@c>", "<@route:a@b>", "<a@b.>", '<"a b"@c>', "< a@b >", "<a@[1.2.3.4]>"],
)  # fmt: skip
def test_known_paths(arg: str) -> None:
    proto = _protocol(64)
    assert RelaySMTP._getaddr(proto, arg) == RelaySMTP._tokenized(proto, arg)  # type: ignore[arg-type]
