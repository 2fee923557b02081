"""Personal-data cases: customer lists in every format, single items with and without their
context, and hard negatives (order numbers, JAN codes, dates, amounts, signatures, a quote
to one contact, meeting notices)."""

from __future__ import annotations

from collections.abc import Iterator

from sendguard.model import Mail, Part
from tests.unit.detect.numbers import bad_my_number, corporate_number, jan_code, luhn_complete

from .case import Case, labels
from .formats import FILE_FORMATS, TEXT_FORMATS, Content, direct_part
from .synth import Synth

PD = "personal-data"
SCOPE = frozenset({PD})
OPTIONAL = (
    "フリガナ",
    "郵便番号+住所",
    "電話番号",
    "メール",
    "生年月日",
    "個人番号",
    "カード番号",
    "会員番号",
    "性別",
)
CODE_OF = {
    "電話番号": "phone", "メール": "email-address", "郵便番号+住所": "postal-address",
    "生年月日": "birth-date", "個人番号": "my-number", "カード番号": "credit-card",
}  # fmt: skip
SIGNATURE = (
    "\n\n-----------------------------------\n株式会社サンプル商事 営業部\n山田 太郎\n"
    "〒100-0005 東京都千代田区丸の内1-1-1\nTEL: 03-1234-5678 / FAX: 03-1234-5679\n"
    "Mail: yamada@example-corp.co.jp\n-----------------------------------\n"
)


def _body(text: str, subject: str = "") -> Mail:
    return Mail(subject=subject, parts=(direct_part(Content(text=text), "body-text"),))


def _list_case(s: Synth, fmt: str, index: int) -> Case:
    picked = s.rng.sample(OPTIONAL, s.rng.randint(1, 4))
    columns: list[str] = ["氏名"]
    for item in OPTIONAL:  # keep a natural column order
        if item in picked:
            columns.extend(item.split("+"))
    if len(columns) < 2:
        columns.append("電話番号")
    records = s.rng.randint(5, 60)
    rows = (tuple(columns), *(s.person_row(tuple(columns)) for _ in range(records)))
    content = Content(rows=rows)
    expected = {"customer-list"} | {CODE_OF[c] for c in picked if c in CODE_OF}
    if "電話番号" in columns:
        expected.add("phone")
    part = direct_part(content, fmt)
    mail = (
        Mail(
            subject="資料送付の件",
            parts=(direct_part(Content(text="資料をお送りします。"), "body-text"), part),
        )
        if fmt not in TEXT_FORMATS
        else Mail(subject="名簿", parts=(part,))
    )
    return Case(
        f"list-{fmt}-{index}",
        f"list:{fmt}",
        SCOPE,
        labels(PD, *expected),
        mail,
        content=content,
        fmt=fmt,
        extra={"records": str(records)},
    )


def _item_cases(s: Synth) -> Iterator[Case]:
    """Single My Numbers, cards, phones and postal addresses in a body."""
    for i in range(40):
        label = s.rng.choice(("個人番号", "マイナンバー", "個人番号(マイナンバー)", "My Number"))
        text = f"お世話になっております。\n{label}: {s.my_number()}\nご確認ください。"
        yield Case(f"my-number-{i}", "item:my-number", SCOPE, labels(PD, "my-number"), _body(text))
    for i in range(40):
        extra = s.rng.choice(
            (
                "",
                f" 有効期限 {s.rng.randint(1, 12):02d}/{s.rng.randint(26, 31)}",
                " セキュリティコード 123",
            )
        )
        text = f"ご登録のカード番号は {s.card()}{extra} です。"
        yield Case(f"card-{i}", "item:credit-card", SCOPE, labels(PD, "credit-card"), _body(text))
    for i in range(20):
        yield Case(
            f"phone-{i}",
            "item:phone",
            SCOPE,
            labels(PD, "phone"),
            _body(f"折り返しは {s.phone()} までお願いします。"),
        )
    for i in range(15):
        postal, address = s.postal_and_address()
        yield Case(
            f"postal-{i}",
            "item:postal-address",
            SCOPE,
            labels(PD, "postal-address"),
            _body(f"送付先: 〒{postal} {address}"),
        )


def _labelled_items(s: Synth) -> Iterator[Case]:
    """Items that need their label: birth dates, accounts, licences, pension, passports."""
    for i in range(15):
        yield Case(
            f"birth-{i}",
            "item:birth-date",
            SCOPE,
            labels(PD, "birth-date"),
            _body(f"生年月日: {s.birth_date()}"),
        )
    for i in range(10):
        yield Case(
            f"bank-{i}",
            "item:bank-account",
            SCOPE,
            labels(PD, "bank-account"),
            _body(f"振込先: みずほ銀行 渋谷支店 普通 {s.rng.randrange(10**7):07d}"),
        )
    for i in range(10):
        yield Case(
            f"licence-{i}",
            "item:drivers-licence",
            SCOPE,
            labels(PD, "drivers-licence"),
            _body(f"運転免許証番号 {s.licence()}"),
        )
    for i in range(10):
        number = f"{s.rng.randrange(10**4):04d}-{s.rng.randrange(10**6):06d}"
        yield Case(
            f"pension-{i}",
            "item:pension-number",
            SCOPE,
            labels(PD, "pension-number"),
            _body(f"基礎年金番号: {number}"),
        )
    for i in range(10):
        letters = "".join(s.rng.choice("ABCDEFGHJKLMNPRSTZ") for _ in range(2))
        yield Case(
            f"passport-{i}",
            "item:passport",
            SCOPE,
            labels(PD, "passport"),
            _body(f"旅券番号 {letters}{s.rng.randrange(10**7):07d}"),
        )
    for i in range(10):
        yield Case(
            f"corporate-{i}",
            "item:corporate-number",
            SCOPE,
            labels(PD, "corporate-number"),
            _body(f"適格請求書発行事業者登録番号: T{corporate_number(s.rng)}"),
        )


def _negative_cases(s: Synth) -> Iterator[Case]:
    """Order confirmations, JAN code lists and meeting notices: numbers that are not personal."""
    none = frozenset[tuple[str, str]]()
    for i in range(30):
        text = (
            f"ご注文ありがとうございます。\n注文番号: {bad_my_number(s.rng)}\n"
            f"お問い合わせ番号 {s.rng.randrange(10**11, 10**12)}\n"
            f"ご請求金額: {s.rng.randrange(1000, 10**7):,}円 (税込)\n"
            f"お届け予定日: 2026年{s.rng.randint(1, 12)}月{s.rng.randint(1, 28)}日 14:00-16:00\n"
            f"伝票番号 {s.rng.randrange(10**14) + 20 * 10**14}{SIGNATURE}"
        )
        yield Case(f"order-{i}", "negative:order", SCOPE, none, _body(text))
    for i in range(20):
        rows = ["商品名\tJANコード\t単価\t数量"] + [
            f"商品{j}\t{jan_code(s.rng)}\t{s.rng.randrange(100, 9999):,}\t{s.rng.randint(1, 99)}"
            for j in range(s.rng.randint(5, 40))
        ]
        yield Case(f"jan-{i}", "negative:jan", SCOPE, none, _body("\n".join(rows)))
    for i in range(20):
        r = s.rng
        meeting_id = f"8{r.randrange(10**2):02d} {r.randrange(10**4):04d} {r.randrange(10**4):04d}"
        text = (
            f"各位\n定例会議を{r.randint(1, 12)}月{r.randint(1, 28)}日({r.choice('月火水木金')}) "
            f"10:00〜11:30 に会議室B-{r.randint(100, 999)}で行います。\n"
            f"Zoom ミーティングID: {meeting_id}\n"
            f"パスコード: {r.randrange(10**6):06d}\n予算 {r.randrange(10**8):,}円{SIGNATURE}"
        )
        yield Case(f"meeting-{i}", "negative:meeting", SCOPE, none, _body(text))


def _negative_contacts(s: Synth) -> Iterator[Case]:
    """Signatures, a quote to one contact, staff tables, long order ids."""
    none = frozenset[tuple[str, str]]()
    for i in range(20):
        yield Case(
            f"signature-{i}",
            "negative:signature",
            SCOPE,
            none,
            _body("承知いたしました。引き続きよろしくお願いいたします。" + SIGNATURE),
        )
    for i in range(20):
        name, _ = s.name()
        postal, address = s.postal_and_address()
        text = (
            f"株式会社ABC商事\n購買部 {name} 様\n〒{postal} {address}\nTEL {s.phone()}\n"
            f"{s.email()}\n\nお見積書を添付いたします。ご検討のほどよろしくお願いいたします。{SIGNATURE}"
        )
        yield Case(
            f"quote-{i}",
            "negative:quote",
            SCOPE,
            labels(PD, "phone", "postal-address", "email-address"),
            _body(text),
        )
    for i in range(10):
        rows = ["氏名\t部署\t内線"] + [
            f"{s.name()[0]}\t営業部\t{s.rng.randrange(1000, 9999)}" for _ in range(8)
        ]
        yield Case(f"staff-{i}", "negative:staff", SCOPE, none, _body("\n".join(rows)))
    for i in range(10):
        order = f"{s.rng.randrange(10**14) + 20 * 10**14}"  # date-like 16-digit order ids
        yield Case(
            f"order16-{i}",
            "negative:order16",
            SCOPE,
            none,
            _body(
                f"受注番号 {order} / 合計 {s.rng.randrange(10**6):,}円 / 数量 {s.rng.randint(1, 9)}"
            ),
        )
    card_like = luhn_complete("99", 16, s.rng)
    yield Case("no-issuer", "negative:order16", SCOPE, none, _body(f"管理番号 {card_like}"))


def pii_cases(s: Synth) -> Iterator[Case]:
    """Every personal-data case, in a fixed order."""
    for fmt in (*TEXT_FORMATS, *FILE_FORMATS):
        for i in range(6):
            yield _list_case(s, fmt, i)
    yield from _item_cases(s)
    yield from _labelled_items(s)
    yield from _negative_cases(s)
    yield from _negative_contacts(s)


__all__ = ["Part", "pii_cases"]
