"""Tests of the `personal-data` detector: each code, context rules, masking, customer lists."""

from __future__ import annotations

import pickle
import random

import pytest

from sendguard.detect.personal_data import PersonalData, PersonalDataSettings
from sendguard.model import Finding, Mail, Part, Table

from .helpers import context, text_mail
from .numbers import (
    bad_my_number,
    corporate_number,
    jan_code,
    licence_number,
    luhn_complete,
    my_number,
    spaced,
)

CTX = context(["a@abc.co.jp"])
RNG = random.Random(4)


def _scan(body: str, **settings: object) -> dict[str, Finding]:
    detector = PersonalData(PersonalDataSettings(**settings))
    return {f.code: f for f in detector.detect(text_mail(body), CTX)}


def test_my_number_needs_check_digit_and_label() -> None:
    """A valid My Number after 個人番号 is found and masked; without a label it is not."""
    number = my_number(RNG)
    found = _scan(f"個人番号: {spaced(number, (4, 4, 4))}")
    assert found["my-number"].count == 1
    assert found["my-number"].evidence == (number[:4] + "********",)
    assert found["my-number"].severity == "critical"
    assert "my-number" not in _scan(f"注文番号: {number}")


def test_order_number_failing_check_digit_is_not_my_number() -> None:
    """12-digit order numbers with a label nearby still fail the check digit."""
    assert _scan(f"マイナンバー {bad_my_number(RNG)}") == {}


def test_full_width_digits_and_hyphens_are_normalised() -> None:
    """Full-width digits (NFKC) and hyphens inside the number are tolerated."""
    number = my_number(RNG)
    wide = spaced(number, (4, 4, 4), "-").translate(
        str.maketrans("0123456789-", "０１２３４５６７８９－")
    )
    assert _scan(f"マイナンバー：{wide}")["my-number"].count == 1


def test_credit_card_luhn_issuer_and_severity() -> None:
    """A Luhn-valid Visa is high; with an expiry date nearby it is critical; bad Luhn is nothing."""
    card = luhn_complete("4", 16, RNG)
    found = _scan(f"カード {spaced(card, (4, 4, 4, 4), '-')}")["credit-card"]
    assert (found.severity, found.evidence) == ("high", (card[:4] + "********" + card[-4:],))
    assert _scan(f"番号 {card} 有効期限 12/28")["credit-card"].severity == "critical"
    broken = card[:-1] + str((int(card[-1]) + 1) % 10)
    assert _scan(f"カード {broken}") == {}


def test_jan_codes_and_unknown_issuers_are_not_cards() -> None:
    """13-digit JAN codes and Luhn-valid numbers outside issuer ranges are not cards."""
    codes = " ".join(jan_code(RNG) for _ in range(20))
    assert "credit-card" not in _scan(f"商品コード: {codes}")
    assert _scan(f"伝票 {luhn_complete('99', 16, RNG)}") == {}


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("携帯 090-1234-5678", "0901234****"),
        ("TEL:03(1234)5678", "031234****"),
        ("+81 80 1111 2222", "0801111****"),
        ("自宅 0612345678", "061234****"),
    ],
)
def test_phone_forms(text: str, masked: str) -> None:
    """Mobile, landline, parenthesised and +81 forms are phones, masked after the prefix."""
    assert _scan(text)["phone"].evidence == (masked,)


def test_toll_free_and_short_numbers_are_not_phones() -> None:
    """0120 numbers belong to businesses; amounts and dates are not phones."""
    assert _scan("フリーダイヤル 0120-123-456、金額 1,234,567円、日付 2024-01-15") == {}


def test_postal_address_needs_prefecture_and_municipality() -> None:
    """〒 + code + prefecture + municipality is an address; a bare code is not."""
    assert _scan("〒150-0002 東京都渋谷区渋谷2-21-1")["postal-address"].evidence == ("150-****",)
    assert _scan("部品番号 150-0002 を手配") == {}


def test_labelled_items() -> None:
    """Birth date, bank account, passport, licence and pension need their labels."""
    body = (
        f"生年月日: 昭和60年4月3日\n口座番号 1234567\n旅券番号 TK1234567\n"
        f"運転免許証 {licence_number(RNG)}\n基礎年金番号 1234-567890\n"
    )
    assert set(_scan(body)) == {
        "birth-date",
        "bank-account",
        "passport",
        "drivers-licence",
        "pension-number",
    }
    assert _scan("会議は2024年4月3日 TK1234567 1234567 1234-567890") == {}


def test_corporate_number_is_info() -> None:
    """Corporate numbers (and invoice registration numbers T+13) are public business data."""
    found = _scan(f"法人番号 {corporate_number(RNG)} 登録番号 T7000012050002")["corporate-number"]
    assert (found.count, found.severity) == (2, "info")


def test_email_address_in_content() -> None:
    """E-mail addresses in the content are counted and masked."""
    assert _scan("連絡先: Hanako.Sato@example.jp まで")["email-address"].evidence == (
        "h***@example.jp",
    )


def test_signature_is_not_personal_data() -> None:
    """The sender's own phone, address and e-mail after a signature line are skipped."""
    body = (
        "よろしくお願いします。\n--\n山田太郎\n〒100-0001 東京都千代田区千代田1-1\n"
        "TEL 03-1234-5678\nyamada@example-corp.co.jp\n"
    )
    assert _scan(body) == {}
    assert "phone" in _scan(body, skip_signatures=False)


def _table(rows: int) -> Table:
    header = ("氏名", "フリガナ", "電話番号", "住所", "個人番号")
    data = tuple(
        (f"山田{i}", "ヤマダ", f"090-0000-{i:04d}", "東京都", my_number(RNG)) for i in range(rows)
    )
    return Table(name="Sheet1", rows=(header, *data))


def test_customer_list_table_counts_records_and_header_context() -> None:
    """A sheet with personal headers is a list; My Numbers are found by column header."""
    part = Part(path=("attachment 1", "顧客.xlsx"), declared_type="", sniffed_type="",
                filename="顧客.xlsx", tables=(_table(30),), is_attachment=True)  # fmt: skip
    found = {f.code: f for f in PersonalData().detect(Mail(parts=(part,)), CTX)}
    assert found["customer-list"].count == 30
    assert found["customer-list"].params["columns"] == "氏名, フリガナ, 電話番号, 住所, 個人番号"
    assert found["customer-list"].where == ("attachment 1 › 顧客.xlsx",)
    assert found["my-number"].count == 30


def test_customer_list_in_text_lines() -> None:
    """A text block with one person per line (phone + e-mail) is a list."""
    lines = "\n".join(f"{i}. 090-1111-{i:04d} user{i}@example.jp" for i in range(12))
    assert _scan(lines)["customer-list"].count == 12


def test_one_contact_is_not_a_list() -> None:
    """A quote addressed to one contact, or a small staff table, is no customer list."""
    quote = (
        "株式会社ABC 佐藤様\n〒150-0002 東京都渋谷区渋谷2-21-1\nTEL 03-1234-5678\nsato@abc.co.jp\n"
    )
    assert "customer-list" not in _scan(quote)
    part = Part(path=("a",), declared_type="", sniffed_type="", tables=(_table(3),))
    assert "customer-list" not in {f.code for f in PersonalData().detect(Mail(parts=(part,)), CTX)}


def test_subject_and_filename_are_scanned() -> None:
    """Items in the subject and in attachment filenames are found with their place."""
    part = Part(
        path=("attachment 1",), declared_type="", sniffed_type="", filename="090-1234-5678.pdf"
    )
    found = PersonalData().detect(Mail(subject="折返し 080-1234-5678", parts=(part,)), CTX)
    assert found[0].where == ("subject", "attachment 1")
    assert found[0].count == 2


def test_disabled_codes_and_unknown_codes() -> None:
    """Codes can be switched off; an unknown code name is a settings error."""
    assert _scan("携帯 090-1234-5678", disabled_codes=("phone",)) == {}
    with pytest.raises(ValueError, match="unknown codes"):
        PersonalDataSettings(disabled_codes=("phones",))


def test_evidence_never_contains_raw_values() -> None:
    """No finding carries a full number anywhere in its evidence or params."""
    card, number = luhn_complete("5", 16, RNG), my_number(RNG)
    found = _scan(f"マイナンバー {number} カード {card} 携帯 09012345678")
    text = repr(found)
    assert card not in text
    assert number not in text
    assert "09012345678" not in text


def test_detector_pickles() -> None:
    """The detector runs in a worker process, so it must survive pickling."""
    detector = pickle.loads(pickle.dumps(PersonalData()))  # noqa: S301 -- our own bytes
    assert detector.detect(text_mail("携帯 090-1234-5678"), CTX)[0].code == "phone"


def test_english_labels_give_context() -> None:
    """English forms (My Number, Passport No., DOB, CVV) work like the Japanese labels."""
    number, card = my_number(RNG), luhn_complete("4", 16, RNG)
    found = _scan(f"My Number: {number}\nPassport No. TK1234567\nDOB: 1985-04-03\n{card} CVV 123")
    assert set(found) == {"my-number", "passport", "birth-date", "credit-card"}
    assert found["credit-card"].severity == "critical"


def test_list_written_as_aligned_text_uses_its_header() -> None:
    """A PDF-like list (columns aligned by spaces) is read as a table: header gives context."""
    rows = [f"山田 {i}号  {my_number(RNG)}  1980/01/{i + 1:02d}" for i in range(8)]
    found = _scan("顧客名簿\n氏名  個人番号  生年月日\n" + "\n".join(rows) + "\n\n以上")
    assert found["my-number"].count == 8
    assert found["birth-date"].count == 8
    assert found["customer-list"].count == 8


def test_adjacent_columns_do_not_make_a_card() -> None:
    """A building number and a phone in the next column are two numbers, not one card."""
    assert "credit-card" not in _scan("コート363  08053879305")
    assert _scan("コート363  08053879305")["phone"].count == 1


def test_truncated_table_is_flagged_on_the_list() -> None:
    """When the parser cut a table, the customer-list finding says its count is a floor."""
    table = _table(10)
    part = Part(path=("a",), declared_type="", sniffed_type="",
                tables=(Table(table.name, table.rows, truncated=True),))  # fmt: skip
    found = {f.code: f for f in PersonalData().detect(Mail(parts=(part,)), CTX)}
    assert found["customer-list"].params["truncated"] == 1


def test_codes_that_pass_luhn_are_not_cards_after_a_code_label() -> None:
    """A licence key or order number after シリアル/注文番号 is not a card, even if Luhn-valid."""
    card = luhn_complete("4", 16, RNG)
    assert _scan(f"シリアル番号: {spaced(card, (4, 4, 4, 4), '-')}") == {}
    assert "credit-card" in _scan(f"注文番号 123 お支払いカード番号 {card}")


def test_shop_directory_is_not_a_customer_list() -> None:
    """Branches with addresses and phones (in lines or a 店舗名 table) are business data."""
    lines = "\n".join(
        f"{city}店 〒150-000{i} 東京都渋谷区渋谷{i}-1 TEL 03-1234-56{i:02d}"
        for i, city in enumerate(("渋谷", "新宿", "池袋", "上野", "品川", "目黒"))
    )
    assert "customer-list" not in _scan(lines)
    shops = tuple((f"{i}号店", "東京都渋谷区", f"03-1234-56{i:02d}") for i in range(8))
    rows = (("店舗名", "住所", "電話番号"), *shops)
    part = Part(path=("a",), declared_type="", sniffed_type="", tables=(Table("", rows),))
    assert "customer-list" not in {f.code for f in PersonalData().detect(Mail(parts=(part,)), CTX)}
