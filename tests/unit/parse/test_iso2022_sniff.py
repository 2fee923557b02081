"""`charsets._looks_iso2022` looks for ESC once before its four escape sequences (a 10 MB
Shift_JIS CSV has none): the answer must be the four searches' on any bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.parse.charsets import _looks_iso2022


def _reference(data: bytes) -> bool:
    return b"\x1b$B" in data or b"\x1b$@" in data or b"\x1b(J" in data or b"\x1b(I" in data


@settings(max_examples=500)
@given(st.lists(st.sampled_from([b"\x1b", b"$", b"(", b"B", b"@", b"J", b"I", b"a", b"\x82"])))
def test_the_esc_precheck_answers_as_the_four_searches(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    assert _looks_iso2022(data) is _reference(data)


def test_each_escape_is_still_seen() -> None:
    for escape in (b"\x1b$B", b"\x1b$@", b"\x1b(J", b"\x1b(I"):
        assert _looks_iso2022(b"abc" + escape + b"def")
    assert not _looks_iso2022(b"\x1b[0m plain")
