"""Hostile input ends within its budget with the right problem, bounded memory, no exception."""

from __future__ import annotations

import io
import resource
import time

import pytest

from sendguard.model import Mail
from sendguard.parse import ParseLimits, parse_message
from tests.support import attachments as build

from .helpers import parse_files

SMALL = ParseLimits(max_member_bytes=8 << 20, max_expanded_bytes=32 << 20, time_budget_seconds=10)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _codes(mail: Mail) -> list[str]:
    return [p.code for p in mail.problems]


def test_nested_zip_bomb_stops_at_the_first_layer_that_explodes() -> None:
    """42.zip in miniature: a compression-ratio problem, no gigabytes expanded."""
    before = _rss_mib()
    mail = parse_files({"42.zip": build.nested_zip_bomb()})
    assert _codes(mail) == ["compression-ratio"]
    assert len(mail.parts) < 10  # stopped at the first bomb, no fan-out
    assert _rss_mib() - before < 64


def test_deeply_nested_archives_hit_the_archive_depth() -> None:
    """ZIPs nested deeper than max_archive_depth are reported at the depth limit."""
    mail = parse_files({"deep.zip": build.deep_zip(8)}, ParseLimits(max_archive_depth=3))
    assert _codes(mail) == ["archive-depth"]
    assert "深い" not in "".join(p.text for p in mail.parts)


def test_overlapping_entry_zip_bomb_is_refused_before_reading() -> None:
    """Overlapping local records (CVE-2024-0450) are detected; nothing is decompressed."""
    before = _rss_mib()
    mail = parse_files({"o.zip": build.overlapping_zip_bomb(entries=500)}, SMALL)
    assert _codes(mail) == ["zip-overlap"]
    assert _rss_mib() - before < 32


def test_too_many_members_in_one_archive() -> None:
    """An archive with more files than max_archive_members is refused with a limit problem."""
    data = build.zip_archive({f"{n}.txt": b"x" for n in range(50)})
    mail = parse_files({"many.zip": data}, ParseLimits(max_archive_members=20))
    assert _codes(mail) == ["archive-members"]


def test_file_count_limit_across_archives() -> None:
    """Files over max_files (parts and members together) stop with one file-count problem."""
    data = build.zip_archive({f"{n}.txt": b"x" for n in range(30)})
    mail = parse_files({"a.zip": data, "b.zip": data}, ParseLimits(max_files=40))
    assert _codes(mail) == ["file-count"]
    assert len(mail.parts) == 40  # body, a.zip, its 30 files, b.zip and 7 of its files


def test_xlsx_with_xml_entity_bomb() -> None:
    """An XLSX declaring a billion-laughs DTD is refused before any XML parser expands it."""
    started = time.perf_counter()
    mail = parse_files({"bomb.xlsx": build.xlsx_with_entity_bomb()})
    assert _codes(mail) == ["xml-entities"]
    assert time.perf_counter() - started < 5


def test_sparse_xlsx_that_would_make_calamine_allocate_512_gib() -> None:
    """Cells in A1 and XFD1048576 would abort calamine; the bounding box check refuses it."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active["A1"] = "x"
    workbook.active["XFD1048576"] = "y"
    out = io.BytesIO()
    workbook.save(out)
    mail = parse_files({"sparse.xlsx": out.getvalue()})
    assert _codes(mail) == ["sheet-size"]


def test_two_thousand_nested_multiparts() -> None:
    """2,000 nested multiparts are refused by the pre-check; the stdlib parser never runs."""
    started = time.perf_counter()
    mail = parse_message(build.nested_multipart(2000), ParseLimits())
    assert _codes(mail) == ["mime-depth"]
    assert mail.parts == ()
    assert [a.addr_spec for a in mail.to] == ["b@example.com"]
    assert time.perf_counter() - started < 5


def test_nesting_within_the_limit_is_read() -> None:
    """Twenty nested multiparts are within the default depth and the leaf is read."""
    mail = parse_message(build.nested_multipart(20), ParseLimits())
    assert mail.problems == ()
    assert mail.parts[0].text == "bottom"


def test_to_header_with_twenty_thousand_addresses() -> None:
    """20,000 recipients stop at max_addresses with a limit problem; the body is still read."""
    to = ", ".join(f"user{n}@example{n % 7}.co.jp" for n in range(20_000))
    raw = f"From: a@example.jp\r\nTo: {to}\r\nSubject: x\r\n\r\nbody\r\n".encode()
    mail = parse_message(raw, ParseLimits(max_header_bytes=1 << 20))
    assert _codes(mail) == ["address-count"]
    assert len(mail.to) == 999  # one address went to From; the limit counts the message
    assert mail.parts[0].text.strip() == "body"
    oversized = parse_message(raw, ParseLimits())
    assert _codes(oversized) == ["header-size"]


@pytest.mark.parametrize(
    ("cte", "body", "code"),
    [
        ("base64", b"44GC44GE!!!44GG*\r\n", "bad-base64"),
        ("base64", b"44GC4\r\n", "bad-base64"),
        ("quoted-printable", b"=E3=81=82=ZZ=E3\r\n", "bad-quoted-printable"),
    ],
)
def test_malformed_transfer_encodings(cte: str, body: bytes, code: str) -> None:
    """Broken base64 and quoted-printable are reported and decoded leniently."""
    head = "From: a@example.jp\r\nTo: b@example.jp\r\nContent-Type: text/plain; charset=utf-8\r\n"
    raw = head.encode() + f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode() + body
    mail = parse_message(raw, ParseLimits())
    assert _codes(mail) == [code]
    assert mail.parts[0].text.startswith("あ")


def test_pdf_with_a_huge_compressed_stream() -> None:
    """A content stream inflating past the member limit is a pdf-stream limit problem."""
    before = _rss_mib()
    mail = parse_files({"bomb.pdf": build.pdf_with_stream(64 << 20)}, SMALL)
    assert _codes(mail) == ["pdf-stream"]
    assert _rss_mib() - before < 64


def test_oversized_message_is_not_parsed_but_addresses_are() -> None:
    """A message over max_message_bytes keeps its addresses and reports message-size."""
    raw = build.build_message(body="x" * 5000)
    mail = parse_message(raw, ParseLimits(max_message_bytes=1000))
    assert _codes(mail) == ["message-size"]
    assert mail.parts == ()
    assert mail.to[0].addr_spec == "to@example.com"


def test_time_budget_becomes_a_timeout_problem() -> None:
    """When the budget is spent mid-walk, the view carries a `timeout` problem."""
    files = {f"{n}.csv": b"a,b\n" * 2000 for n in range(30)}
    mail = parse_files(files, ParseLimits(time_budget_seconds=0.001))
    assert [(p.kind, p.code) for p in mail.problems][-1] == ("timeout", "time-budget")


def test_table_row_limit_marks_the_table_truncated() -> None:
    """Rows over max_table_rows are cut, the table says so and a limit problem is raised."""
    data = b"\n".join(b"%d,x" % n for n in range(100))
    mail = parse_files({"big.csv": data}, ParseLimits(max_table_rows=10))
    table = mail.parts[1].tables[0]
    assert table.truncated
    assert len(table.rows) == 10
    assert _codes(mail) == ["table-size"]


def test_limits_are_frozen_and_strict() -> None:
    """ParseLimits refuses unknown fields and cannot be changed after construction."""
    with pytest.raises(ValueError, match="extra"):
        ParseLimits(max_bogus=1)  # type: ignore[call-arg]
    limits = ParseLimits()
    with pytest.raises(ValueError, match="frozen"):
        limits.max_parts = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("xml", "extent"),
    [
        (
            b'<row r="1"><c r="A1"/><c r="AAAA1"/></row><row r="2"><c r="B123456789"/></row>',
            (123456789, 18279),
        ),
        (
            b'<x:row r="1"><x:c r="ZZ1"/></x:row><x:row r="3"><x:c r="A99999"/></x:row>',
            (99999, 702),
        ),
        (b'<row r="7"><c r="C7"/></row><row r="2"><c r="B2"/></row>', (2, 26)),
    ],
)
def test_sheet_extent_bounds_hostile_cell_references(xml: bytes, extent: tuple[int, int]) -> None:
    """Far cells, prefixes and 4-letter columns are seen; unsorted narrow rows need no scan."""
    from sendguard.parse.extract.sheets import sheet_extent

    assert sheet_extent(xml, 5_000_000) == extent
