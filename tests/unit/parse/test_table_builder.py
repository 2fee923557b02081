"""CSV tables built in one pass (`TableBuilder.add_strings`) equal the row-by-row build."""

from __future__ import annotations

import csv
import io
import unicodedata

import pytest

from sendguard.parse import ParseLimits
from sendguard.parse.context import Blob, Context
from sendguard.parse.extract.tables import TableBuilder

SOURCES = [
    "氏名,電話\n田中,090-1234-5678\n\n,,\n",
    "ｱｲｳ,１２３,ＡＢＣ\r\n,\r\nx,,\r\n",  # not NFKC: normalised in one pass
    'a,"b\nc",d\n"x\x1fy",z\n',  # a cell holding U+001F: cell by cell
    "a\x1e,b\nc,d\n",
    "",
    "\n\n",
    '""\n',
]
LIMITS = [ParseLimits(), ParseLimits(max_table_rows=2), ParseLimits(max_table_cells=3)]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("limits", LIMITS)
def test_one_pass_build_equals_row_by_row(source: str, limits: ParseLimits) -> None:
    """Same rows, same truncation, same problems, same rendering."""
    built = []
    for fast in (False, True):
        builder = TableBuilder(Blob(b"", ("a",), "text/csv", "a.csv"), Context.start(limits))
        rows = csv.reader(io.StringIO(source, newline=""))
        if fast:
            normalized = unicodedata.is_normalized("NFKC", source)
            builder.add_strings("", rows, normalized=normalized)
        else:
            builder.add("", rows)
        built.append((builder.tables, builder.problems, builder.render()))
    assert built[0] == built[1]
