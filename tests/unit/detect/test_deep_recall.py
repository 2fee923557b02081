"""Recall is never traded for speed: one personal value deep inside an otherwise harmless
sheet, a customer list without a header, and the relay's action equal to `policy explain`'s
(exhaustive) on files shaped like the benchmark's, read as real files end to end."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sendguard.inspect import inspect_sync
from sendguard.model import Action, Envelope, Finding
from sendguard.parse.limits import ParseLimits
from sendguard.policy.load import load_policy
from tests.support.attachments import Attachment, build_message, xlsx

from .numbers import luhn_complete, my_number

SHIPPED = Path(__file__).resolve().parents[3] / "policies"
ENVELOPE = Envelope("yamada@example.co.jp", ("sato@customer.example",))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LIMITS = ParseLimits()


def _ledger(rows: int, rng: random.Random) -> list[list[object]]:
    sheet: list[list[object]] = [["伝票番号", "日付", "地域", "品目", "数量", "金額", "備考"]]
    for n in range(rows):
        sheet.append(
            [
                f"S{n:07d}",
                f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                rng.choice(("関東", "関西", "九州")),
                "ボルト M8",
                rng.randint(1, 500),
                rng.randint(100, 45_000_000),
                "",
            ]
        )
    return sheet


def _both(raw: bytes) -> tuple[list[Finding], list[Finding], Action, Action]:
    policy = load_policy(SHIPPED)
    relay = inspect_sync(ENVELOPE, raw, policy, LIMITS, offline=True)
    explain = inspect_sync(ENVELOPE, raw, policy, LIMITS, offline=True, exhaustive=True)
    return (
        list(relay.findings),
        list(explain.findings),
        relay.verdict.action,
        explain.verdict.action,
    )


def _codes(findings: list[Finding]) -> dict[str, int]:
    return {f.code: f.count for f in findings if f.detector == "personal-data"}


@pytest.mark.parametrize(("where", "kind"), [("備考", "card"), ("金額", "labelled-my-number")])
def test_one_value_at_row_20000_of_a_ledger_is_found(where: str, kind: str) -> None:
    """A card number (no label needed) or a labelled My Number in one cell at row 20,000
    of a 20,000-row sales ledger, in the notes or in the amounts column."""
    rng = random.Random(20_000)
    sheet = _ledger(20_000, rng)
    value = luhn_complete("4", 16, rng) if kind == "card" else f"個人番号 {my_number(rng)}"
    sheet[20_000][sheet[0].index(where)] = value
    raw = build_message(attachments=[Attachment("売上明細.xlsx", xlsx({"明細": sheet}), XLSX)])
    relay, explain, relay_action, explain_action = _both(raw)
    code = "credit-card" if kind == "card" else "my-number"
    assert _codes(relay) == _codes(explain) == {code: 1}
    assert relay_action is explain_action is Action.HOLD


def test_a_customer_list_without_a_header_is_a_list() -> None:
    """Rows of name, mobile phone and e-mail address, no header row at all."""
    rng = random.Random(4)
    sheet: list[list[object]] = [
        [
            rng.choice(("山田 太郎", "佐藤 花子", "田中 一郎")),
            f"090-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
            f"user{n}@example{n % 7}.co.jp",
        ]
        for n in range(3_000)
    ]
    raw = build_message(attachments=[Attachment("リスト.xlsx", xlsx({"Sheet1": sheet}), XLSX)])
    relay, explain, relay_action, explain_action = _both(raw)
    assert _codes(relay) == _codes(explain)
    assert _codes(relay)["customer-list"] == 3_000
    assert relay_action is explain_action is Action.HOLD


def test_a_ledger_with_nothing_personal_passes_both_ways() -> None:
    raw = build_message(
        attachments=[
            Attachment("売上.xlsx", xlsx({"明細": _ledger(3_000, random.Random(2))}), XLSX)
        ]
    )
    relay, explain, relay_action, explain_action = _both(raw)
    assert _codes(relay) == _codes(explain) == {}
    assert relay_action is explain_action is Action.PASS


def test_a_sheet_of_prefecture_names_is_read_exactly() -> None:
    """A hostile sheet where every cell starts an address and none finishes one (each
    prefecture name makes the address reader look ahead): nothing is found either way."""
    sheet: list[list[object]] = [["東京都千代田区" + "大阪府" * 20] * 5 for _ in range(2_000)]
    raw = build_message(attachments=[Attachment("x.xlsx", xlsx({"s": sheet}), XLSX)])
    relay, explain, relay_action, explain_action = _both(raw)
    assert _codes(relay) == _codes(explain) == {}
    assert relay_action is explain_action
