"""Long tables read first to their first rows (`parse.Context.row_cap`, the relay only): a
CSV or workbook reader stops after `row_cap` rows, and when that prefix already reaches the
ceiling action the part is kept so and the walk ends; else the file is read again in full.

Two things must hold, and are checked here on every evaluation case (as a real CSV or XLSX)
and on generated files: the prefix a reader gives is the start of what reading every row
gives (the first rows of the same tables, the first lines of the same text — the shape
`policy.ceiling.row_prefix` is proven sound for), and the relay's action is `policy
explain`'s."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.detect.registry import build, run_content
from sendguard.inspect import detect_context, parse_and_detect
from sendguard.model import Action, Envelope
from sendguard.parse import parse_message, sniff
from sendguard.parse.context import Blob, Context, Extracted
from sendguard.parse.extract import reader_for
from sendguard.parse.extract.text import read_csv
from sendguard.parse.limits import ParseLimits
from sendguard.policy.ceiling import PREFIX_ROWS, early_stop
from sendguard.policy.evaluate import evaluate
from sendguard.policy.load import load_policy
from tests.eval.case import Case
from tests.eval.evaluate import all_cases
from tests.support.attachments import Attachment, build_message, xlsx, zip_archive

SHIPPED = Path(__file__).resolve().parents[2] / "policies"
LIMITS = ParseLimits.model_validate({})
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SENDER = "tanaka@example.co.jp"
OUTSIDE = Envelope(SENDER, ("sato@customer.example",))


def _csv(rows: Sequence[Sequence[str]], encoding: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding, errors="replace")


def _files(case_number: int, rows: list[list[str]]) -> tuple[str, bytes, str]:
    """The rows as a file: CSV (CP932 or UTF-8) or XLSX, in turn."""
    if case_number % 3 == 0:
        return "顧客.xlsx", xlsx({"Sheet1": rows}), XLSX
    encoding = "cp932" if case_number % 3 == 1 else "utf-8"
    return "顧客.csv", _csv(rows, encoding), "text/csv"


_CASES: list[Case] = []


def _cases() -> list[Case]:
    if not _CASES:
        _CASES.extend(all_cases())
    return _CASES


def _case_rows(case_number: int) -> list[tuple[str, bytes, str]]:
    files = []
    for part in _cases()[case_number].mail.parts:
        if part.tables:
            rows = [list(row) for table in part.tables for row in table.rows]
        else:
            rows = [[line] for line in part.text.splitlines()]
        if rows:
            files.append(_files(case_number, rows))
    return files


def _read(name: str, data: bytes, content_type: str, cap: int | None) -> Extracted:
    blob = Blob(data, ("attachment 1",), content_type, name)
    # The CSV reader itself for CSV (NULs sniff as binary; the reader must still be sound).
    reader = (
        read_csv if name.endswith(".csv") else reader_for(sniff.sniff(data, name, content_type))
    )
    assert reader is not None
    ctx = Context.start(LIMITS)
    ctx.prefix_rows = cap
    return reader(blob, ctx)


def _assert_prefix(cut: Extracted, whole: Extracted, cap: int) -> None:
    """`cut` is what reading `whole` to its first `cap` rows must give."""
    if not cut.cut:
        assert cut == whole
        return
    assert sum(len(t.rows) for t in cut.tables) <= cap
    assert len(cut.tables) <= len(whole.tables)
    for index, table in enumerate(cut.tables):
        full = whole.tables[index]
        assert table.name == full.name
        assert table.rows == full.rows[: len(table.rows)]
        if index < len(cut.tables) - 1:
            assert table.rows == full.rows  # only the last table read is cut
    lines = cut.text.split("\n") if cut.text else []
    assert lines == whole.text.split("\n")[: len(lines)]
    assert set(cut.problems) <= set(whole.problems)


def test_every_evaluation_case_read_first_rows_is_a_prefix_of_the_whole() -> None:
    cut = 0
    for number in range(len(_cases())):
        for name, data, content_type in _case_rows(number):
            whole = _read(name, data, content_type, None)
            assert not whole.cut
            for cap in (1, 2, 7):
                first = _read(name, data, content_type, cap)
                _assert_prefix(first, whole, cap)
                cut += first.cut
    assert cut > 1000, cut


_CELL = st.text(alphabet='a,"\n\r\t\x00あ１ ｶ\x1f', max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(_CELL, max_size=4), max_size=12),
    st.sampled_from(["\r\n", "\n", "\r"]),
    st.booleans(),
    st.integers(1, 6),
)
def test_any_csv_read_first_rows_is_a_prefix_of_the_whole(
    rows: list[list[str]], ending: str, quote_all: bool, cap: int
) -> None:
    """Quotes, line breaks in cells, lone CRs, NULs, full-width text, separators in cells."""
    out = io.StringIO()
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    csv.writer(out, lineterminator=ending, quoting=quoting).writerows(rows)
    data = out.getvalue().encode()
    whole = _read("a.csv", data, "text/csv", None)
    _assert_prefix(_read("a.csv", data, "text/csv", cap), whole, cap)


@pytest.mark.parametrize("cap", [1, 3, 4, 5, 9, 30])
def test_a_workbook_read_first_rows_stops_across_sheets(cap: int) -> None:
    """Rows count across sheets in order; empty rows and trailing empty rows included."""
    book = xlsx(
        {
            "一": [["氏名", "電話"], ["山田", "090-1234-5678"], [], ["佐藤", 1.0]],
            "二": [[], ["x"], ["y", None, "z"], [None], [None]],
            "三": [["a"], ["b"], ["c"]],
        }
    )
    whole = _read("b.xlsx", book, XLSX, None)
    first = _read("b.xlsx", book, XLSX, cap)
    _assert_prefix(first, whole, cap)
    assert first.cut == (cap < sum(len(t.rows) for t in whole.tables))


def test_relay_reading_rows_first_and_explain_agree_on_every_evaluation_case() -> None:
    """The shipped policy, every case's tables as a real file (CSV or XLSX): the relay
    reading first 2, 5 or 20 rows (`rows`) gives the action of explain, which reads every
    row on the exhaustive paths."""
    policy = load_policy(SHIPPED)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    cut = 0
    for number, case in enumerate(_cases()):
        envelope = Envelope(SENDER, case.recipients)
        ctx = dataclasses.replace(case.ctx(), envelope=envelope)
        exhaustive = dataclasses.replace(ctx, exhaustive=True)
        stop = early_stop(policy, envelope)
        for name, data, content_type in _case_rows(number):
            raw = build_message(
                to=[("", r) for r in case.recipients],
                attachments=[Attachment(name, data, content_type)],
            )
            mail, found = parse_and_detect(
                raw, LIMITS, detectors, ctx, stop, rows=(2, 5, 20)[number % 3]
            )
            full, everything = parse_and_detect(raw, LIMITS, detectors, exhaustive)
            relay = evaluate(policy, found, envelope, mail).action
            assert relay is evaluate(policy, everything, envelope, full).action, case.name
            cut += mail.rows_cut > 0
    assert cut > 100, cut  # the cut is taken often


def _customers_csv(rows: int) -> bytes:
    lines = ["氏名,電話番号,メール"] + [
        f"山田 太郎{n},090-{n // 10000:04d}-{n % 10000:04d},u{n}@mail.example" for n in range(rows)
    ]
    return ("\r\n".join(lines) + "\r\n").encode("cp932")


def test_a_long_customer_csv_is_held_on_its_first_rows_read() -> None:
    """Read to its first 1,000 rows and no further; explain reads and counts every row."""
    from sendguard.inspect import inspect_sync

    policy = load_policy(SHIPPED)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    raw = build_message(
        to=[("", OUTSIDE.rcpt_tos[0])], attachments=[Attachment("顧客.csv", _customers_csv(3000))]
    )
    stop = early_stop(policy, OUTSIDE)
    ctx = detect_context(OUTSIDE, policy.organisation)
    mail, found = parse_and_detect(raw, LIMITS, detectors, ctx, stop)
    assert mail.stopped_early and mail.rows_cut == PREFIX_ROWS
    [table] = mail.parts[-1].tables
    assert len(table.rows) == PREFIX_ROWS
    phones = {f.code: f for f in found}["phone"]
    assert phones.count < PREFIX_ROWS
    assert f"at least: only the first {PREFIX_ROWS} rows" in phones.render()
    explain = inspect_sync(OUTSIDE, raw, policy, LIMITS, offline=True, exhaustive=True)
    assert {f.code: f.count for f in explain.findings}["phone"] == 3000
    assert evaluate(policy, found, OUTSIDE, mail).action is Action.HOLD
    assert explain.verdict.action is Action.HOLD


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_long_table_below_the_ceiling_is_read_on_in_full(kind: str) -> None:
    """Nothing on its first rows reaches the ceiling: the part is the whole file (read on
    from the prefix: `Extracted.rest`), and the message (parts, problems, findings) is
    exactly the one a plain reading gives."""
    policy = load_policy(SHIPPED)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    rows = [["氏名", "品目", "数量"]] + [
        [f"山田 太郎{n}", "ボルト M8", str(n)] for n in range(2500)
    ]
    rows.append(["備考", "090-1234-5678", ""])  # a phone at the end: found only reading it all
    if kind == "csv":
        data = "\r\n".join(map(",".join, rows)).encode("cp932")
    else:
        data = xlsx({"台帳": rows})
    name = f"l.{kind}"
    raw = build_message(to=[("", OUTSIDE.rcpt_tos[0])], attachments=[Attachment(name, data)])
    stop = early_stop(policy, OUTSIDE)
    ctx = detect_context(OUTSIDE, policy.organisation)
    mail, found = parse_and_detect(raw, LIMITS, detectors, ctx, stop)
    assert not mail.stopped_early and not mail.rows_cut
    assert mail == parse_message(raw, LIMITS)
    assert found == tuple(run_content(detectors, mail, ctx))
    assert "phone" in {f.code for f in found}


def test_a_long_customer_csv_inside_a_zip_is_held_on_its_first_rows_too() -> None:
    """The cut ends the walk from inside an archive (the ZIP's own part is then not kept:
    fewer parts, never more findings); explain reads every member and every row."""
    from sendguard.inspect import inspect_sync

    policy = load_policy(SHIPPED)
    detectors = build(policy.detector_settings, enabled=policy.enabled_detectors())
    archive = zip_archive({"顧客.csv": _customers_csv(3000), "readme.txt": b"list"})
    raw = build_message(
        to=[("", OUTSIDE.rcpt_tos[0])], attachments=[Attachment("data.zip", archive)]
    )
    stop = early_stop(policy, OUTSIDE)
    ctx = detect_context(OUTSIDE, policy.organisation)
    mail, found = parse_and_detect(raw, LIMITS, detectors, ctx, stop)
    assert mail.stopped_early and mail.rows_cut == PREFIX_ROWS
    explain = inspect_sync(OUTSIDE, raw, policy, LIMITS, offline=True, exhaustive=True)
    assert evaluate(policy, found, OUTSIDE, mail).action is explain.verdict.action is Action.HOLD
