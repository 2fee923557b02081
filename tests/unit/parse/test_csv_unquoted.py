"""CSV without quotes is split in C (`text._unquoted`): exactly the rows `csv.reader` gives,
and any text it cannot vouch for (quotes, NULs, lone CRs, over-long fields) goes to csv."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.parse.extract.text import _unquoted

_PIECES = ("a", "顧客", ",", "\t", "\n", "\r\n", "\r", " ", '"', "\x00", "", "090-1234-5678")


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=16), st.sampled_from([",", "\t"]))
def test_unquoted_rows_are_the_csv_modules_rows(pieces: list[str], delimiter: str) -> None:
    text = "".join(pieces)
    rows = _unquoted(text, delimiter)
    if rows is not None:
        assert rows == list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    else:
        assert any(c in text for c in ('"', "\x00", "\r"))


def test_an_over_long_field_is_left_to_the_csv_module() -> None:
    assert _unquoted("a" * (csv.field_size_limit() + 1), ",") is None
