"""Issue 13: street addresses without postal codes, and lists without header rows (pasted,
quoted, forwarded, PDF text), as Japanese offices really send them."""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from sendguard.detect.personal_data import PersonalData, PersonalDataSettings
from sendguard.detect.pii.addresses import MUNICIPALITIES, address
from sendguard.detect.pii.scan import scan_text
from sendguard.model import Finding, Mail, Part
from sendguard.parse import parse_message
from sendguard.parse.limits import ParseLimits

from .helpers import context, text_mail

CTX = context(["a@abc.co.jp"])
ROWS = (
    ("山田 健一", "090-1234-5678", "福井県山武郡横芝光町東大和町10丁目8番16号 クレスト藤金572"),
    ("佐藤 花子", "080-2345-6789", "東京都千代田区丸の内3-2-1"),
    ("鈴木 一郎", "03-3123-4567", "大阪府大阪市北区梅田三丁目2番1号"),
    ("田中 美咲", "070-3456-7890", "北海道札幌市中央区北1条西2丁目"),
    ("高橋 誠", "0452345678", "神奈川県 横浜市港北区 新横浜2-5-5 ハイツ101"),
    ("伊藤 陽子", "090-9876-5432", "福岡県福岡市博多区博多駅前1-1-1"),
)


def _found(mail: Mail) -> dict[str, Finding]:
    return {f.code: f for f in PersonalData(PersonalDataSettings()).detect(mail, CTX)}


def _scan(body: str) -> dict[str, Finding]:
    return _found(text_mail(body))


def _lines(sep: str = "\t") -> str:
    return "\n".join(sep.join(row) for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r[0])
def test_street_address_without_postal_code(row: tuple[str, str, str]) -> None:
    """Prefecture + real municipality (郡…町, 政令市の区) + block number: an address, masked to
    prefecture and municipality (never the street)."""
    found = _scan(f"送付先: {row[2]}")["postal-address"]
    assert found.count == 1
    (evidence,) = found.evidence
    assert evidence.endswith("…")
    assert not any(ch.isdigit() for ch in evidence)
    assert evidence.startswith(row[2][:2])


def test_evidence_keeps_only_prefecture_and_municipality() -> None:
    assert _scan(ROWS[0][2])["postal-address"].evidence == ("福井県山武郡横芝光町…",)


def test_made_up_municipality_or_no_block_is_not_an_address() -> None:
    """An address naming no real municipality is no evidence; nor is prose about a place."""
    assert "架空市" not in MUNICIPALITIES
    assert _scan("東京都架空市本町1-2-3") == {}
    assert _scan("東京都千代田区で会議があります。大阪府の天気は晴れ。") == {}


def test_address_after_a_postal_code_counts_once() -> None:
    assert _scan("〒100-0005 東京都千代田区丸の内1-1-1")["postal-address"].count == 1


def test_full_width_digits_and_minus_signs() -> None:
    """Full-width digits (NFKC) and the U+2212 minus of ISO-2022-JP mail."""
    wide = "０９０−１２３４−５６７８\t東京都千代田区丸の内３−２−１"
    found = _scan("\n".join([wide] * 6))
    assert found["phone"].count == 1
    assert found["postal-address"].count == 1


def test_headerless_pasted_list_is_a_customer_list() -> None:
    """The issue's first failure: 氏名 TAB 携帯 TAB 住所, no header, no postal code."""
    found = _scan(f"お世話になっております。\n\n{_lines()}\n\nよろしくお願いします。")
    assert found["customer-list"].count == len(ROWS)
    assert found["postal-address"].count == len(ROWS)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda rows: "\n".join(f"> {line}" for line in rows.split("\n")),
        lambda rows: "-----Original Message-----\nFrom: 佐藤\nSubject: 名簿\n\n" + rows,
        lambda rows: "差出人: 佐藤\n送信日時: 2026年11月20日\n件名: 名簿\n\n" + rows,
    ],
    ids=["quoted", "outlook", "outlook-ja"],
)
def test_quoted_list_is_a_customer_list(wrap: object) -> None:
    assert callable(wrap)
    body = "承知しました。\n\n" + wrap(_lines())
    assert "customer-list" in _scan(body)


@pytest.mark.parametrize("charset", ["utf-8", "cp932", "iso-2022-jp"])
def test_forwarded_list_is_a_customer_list(charset: str) -> None:
    """The issue's second failure: the list inside a message/rfc822 part, real MIME bytes."""
    inner = EmailMessage(policy=SMTP)
    inner["Subject"] = "名簿"
    inner.set_content(_lines().replace("−", "-"), charset=charset)
    outer = EmailMessage(policy=SMTP)
    outer["Subject"] = "転送"
    outer.set_content("参考までに転送します。\n", charset=charset)
    outer.add_attachment(inner)
    mail = parse_message(outer.as_bytes(), ParseLimits())
    assert "customer-list" in _found(mail)


def test_pdf_text_with_single_spaces_is_a_customer_list() -> None:
    """The issue's third failure: a PDF list, single spaces between fields."""
    part = Part(("attachment 1", "名簿.pdf"), "application/pdf", "application/pdf",
                filename="名簿.pdf", text=_lines(" "), is_attachment=True)  # fmt: skip
    found = _found(Mail(parts=(part,)))
    assert found["customer-list"].count == len(ROWS)


def test_signature_and_company_directory_are_not_lists() -> None:
    """A single contact's signature (no postal code) is skipped; company lines are business."""
    signature = (
        "資料を送ります。\n\n--\n株式会社サンプル\n山田 健一\n" + ROWS[1][2] + "\nTEL 03-1234-5678"
    )
    assert _scan(signature) == {}
    companies = "\n".join(
        f"株式会社{name.split()[0]}商事\t{phone}\t{place}" for name, phone, place in ROWS
    )
    assert "customer-list" not in _scan(companies)


def test_hostile_texts_stay_linear() -> None:
    """1 MB of addresses, of prefecture names and of prefectures followed by 郡-like text
    scan in well under a second each (no backtracking blow-up)."""
    for piece in (
        ROWS[0][2] + "\n",
        "東京都",
        "北海道山武郡山武郡山武郡" + "ア" * 30,
        "東京都千代田区" + "あ" * 14,
    ):
        text = piece * (1_000_000 // len(piece))
        start = time.perf_counter()
        scan_text(text, body=True)
        assert time.perf_counter() - start < 5.0, piece[:6]


def test_address_function_bounds() -> None:
    """At the very end of a text, and with only a prefecture, there is no address."""
    assert address("東京都", 0, 3) is None
    assert address("東京都千代田区", 0, 3) is None


@pytest.mark.parametrize("as_attachment", [False, True], ids=["html-body", "html-file"])
def test_headerless_html_table_is_a_customer_list(as_attachment: bool) -> None:
    """An HTML table without a header row, as a body alternative or an attached file."""
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in ROWS)
    html = f"<html><body><p>名簿です</p><table>{cells}</table></body></html>"
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = "名簿"
    msg.set_content("名簿です")
    if as_attachment:
        msg.add_attachment(html.encode(), maintype="text", subtype="html", filename="名簿.html")
    else:
        msg.add_alternative(html, subtype="html")
    found = _found(parse_message(msg.as_bytes(), ParseLimits()))
    assert found["customer-list"].count == len(ROWS)


MY_NUMBER = "123456789018"  # valid check digit (checksums.my_number_ok)


@pytest.mark.parametrize(
    "text",
    [
        "個人番号\n1234 5678 9018",
        "マイナンバー：１２３４－５６７８－９０１８",
        "個人番号 1234−5678−9018",  # U+2212, as ISO-2022-JP mail decodes
        "【個人番号】\n1 2 3 4 5 6 7 8 9 0 1 8",
        "個人番号\n\n\u3000１２３４\u3000５６７８\u3000９０１８",
    ],
    ids=["label-above", "full-width", "minus-sign", "digit-by-digit", "form-layout"],
)
def test_my_number_written_the_way_people_write_it(text: str) -> None:
    found = _scan(text)["my-number"]
    assert found.evidence == ("1234********",)


def test_name_and_phone_lines_are_a_list_but_a_name_alone_is_not() -> None:
    """A surname from the list + a given name at the start of a line adds one kind: name +
    mobile is a record; departments and products are not names."""
    people = "\n".join(f"{row[0]}\t{row[1]}" for row in ROWS)
    assert _scan(people)["customer-list"].count == len(ROWS)
    numbered = "\n".join(f"{n}. {row[0].replace(' ', '')}様 {row[1]}" for n, row in enumerate(ROWS))
    assert "customer-list" in _scan(numbered)
    departments = "\n".join(f"営業{n}課\t{row[1]}" for n, row in enumerate(ROWS))
    assert "customer-list" not in _scan(departments)
