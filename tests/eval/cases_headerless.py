"""Personal data as offices really send it (issue 13), built differently from `cases_pii`:
no header rows, no postal codes, lists pasted into bodies, quoted in replies (``> `` and
Outlook's ``-----Original Message-----``), forwarded as ``message/rfc822``, PDF text with
single spaces, full-width digits; each mail is real MIME bytes in UTF-8, CP932 or
ISO-2022-JP read back by `parse_message`. Hard negatives: company directories, a single
contact's signature without a postal code, invoices with registration numbers, 12-digit
order numbers that pass the My Number check digit, product masters with JAN codes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP

from sendguard.model import Mail, Part
from sendguard.parse import parse_message
from sendguard.parse.limits import ParseLimits
from tests.unit.detect.numbers import corporate_number, jan_code, my_number

from .case import Case, labels
from .synth import Synth

PD = "personal-data"
SCOPE = frozenset({PD})
LIST = labels(PD, "phone", "postal-address", "customer-list")
CHARSETS = ("utf-8", "cp932", "iso-2022-jp")
PER_FAMILY = 40
_WIDE = str.maketrans("0123456789-", "０１２３４５６７８９−")
"""Full-width digits and the minus sign ISO-2022-JP and CP932 mail decodes to (U+2212)."""


def _mime(body: str, charset: str, *, forward: str | None = None) -> Mail:
    """Real bytes through the real parser: a text body, optionally a forwarded message."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "yamada@example-corp.co.jp"
    msg["To"] = "customer@abc-trading.co.jp"
    msg["Subject"] = "ご参考"
    msg.set_content(body, charset=charset)
    if forward is not None:
        inner = EmailMessage(policy=SMTP)
        inner["From"] = "sato@example-corp.co.jp"
        inner["Subject"] = "名簿"
        inner.set_content(forward, charset=charset)
        msg.add_attachment(inner)
    return parse_message(msg.as_bytes(), ParseLimits())


def _row(s: Synth, sep: str, *, wide: bool = False) -> str:
    name, _ = s.name()
    _, address = s.postal_and_address()
    phone = s.phone()
    if wide:
        phone = phone.translate(_WIDE)
        address = address.translate(_WIDE)
    order = s.rng.random()
    cells = (name, phone, address) if order < 0.7 else (name, address, phone)
    return sep.join(cells)


def _rows(s: Synth, sep: str, *, wide: bool = False) -> str:
    return "\n".join(_row(s, sep, wide=wide) for _ in range(s.rng.randint(10, 30)))


def _case(name: str, group: str, mail: Mail, expected: frozenset[tuple[str, str]]) -> Case:
    return Case(name, group, SCOPE, expected, mail)


def _pasted(s: Synth, i: int) -> Case:
    rows = _rows(s, "\t")
    body = f"お世話になっております。\n下記の通りです。\n\n{rows}\n\nよろしくお願いします。\n"
    mail = _mime(body, CHARSETS[i % 3])
    return _case(f"headerless-pasted-{i}", "headerless:pasted", mail, LIST)


def _quoted(s: Synth, i: int) -> Case:
    rows = "\n".join(f"> {line}" for line in _rows(s, s.rng.choice(("\t", "  "))).split("\n"))
    if i % 2:
        head = "-----Original Message-----\nFrom: 佐藤\nSent: Monday\nSubject: 名簿\n\n"
        rows = head + rows.replace("> ", "")
    else:
        rows = "2026年11月20日 10:00 佐藤 さんは書きました:\n" + rows
    body = f"承知しました。確認します。\n\n{rows}\n"
    mail = _mime(body, CHARSETS[i % 3])
    return _case(f"headerless-quoted-{i}", "headerless:quoted", mail, LIST)


def _forwarded(s: Synth, i: int) -> Case:
    mail = _mime("参考までに転送します。\n", CHARSETS[i % 3], forward=_rows(s, "\t") + "\n")
    # The forwarded header (From: sato@…) is an e-mail address in the content too.
    return _case(
        f"headerless-forward-{i}", "headerless:forward", mail, LIST | labels(PD, "email-address")
    )


def _pdf_spaced(s: Synth, i: int) -> Case:
    text = _rows(s, " ")
    part = Part(("attachment 1", "名簿.pdf"), "application/pdf", "application/pdf",
                filename="名簿.pdf", text=text, is_attachment=True)  # fmt: skip
    body = Part(("body",), "text/plain", "text/plain", text="資料を添付します。\n")
    return _case(f"headerless-pdf-{i}", "headerless:pdf-spaced", Mail(parts=(body, part)), LIST)


def _wide(s: Synth, i: int) -> Case:
    rows = _rows(s, "\u3000", wide=True)
    body = f"名簿です。\n{rows}\n"
    mail = _mime(body, CHARSETS[i % 3])
    return _case(f"headerless-wide-{i}", "headerless:full-width", mail, LIST)


def _name_phone(s: Synth, i: int) -> Case:
    """An emergency contact list: name and mobile only, numbered, no header."""
    lines = []
    for n in range(s.rng.randint(6, 25)):
        name, _ = s.name()
        mobile = s.rng.choice(("090", "080", "070")) + f"-{s.rng.randrange(10**4):04d}-"
        lines.append(f"{n + 1}. {name}\t{mobile}{s.rng.randrange(10**4):04d}")
    mail = _mime("緊急連絡網です。\n" + "\n".join(lines) + "\n", CHARSETS[i % 3])
    return _case(f"headerless-names-{i}", "headerless:name-phone", mail,
                 labels(PD, "phone", "customer-list"))  # fmt: skip


_COMPANIES = ("株式会社", "有限会社", "合同会社")


def _directory(s: Synth, i: int) -> Case:
    lines = []
    for n in range(s.rng.randint(8, 20)):
        _, address = s.postal_and_address()
        kind = s.rng.choice(_COMPANIES)
        lines.append(f"{kind}{s.fake.last_name()}商事{n}\t{address}\t{s.phone()}")
    body = "取引先一覧です。\n" + "\n".join(lines) + "\n"
    mail = _mime(body, CHARSETS[i % 3])
    return _case(f"directory-{i}", "negative:company-directory", mail,
                 labels(PD, "phone", "postal-address"))  # fmt: skip


def _signature(s: Synth, i: int) -> Case:
    name, _ = s.name()
    _, address = s.postal_and_address()
    body = (
        "先日はありがとうございました。資料をお送りします。\n\n--\n"
        f"株式会社サンプル 営業部\n{name}\n{address}\nTEL {s.phone()}\n"
    )
    mail = _mime(body, CHARSETS[i % 3])
    return _case(f"signature-noaddr-{i}", "negative:signature-address", mail, frozenset())


def _invoice(s: Synth, i: int) -> Case:
    rng = random.Random(i)
    lines = [f"登録番号 T{corporate_number(rng)}", "請求書"]
    for n in range(s.rng.randint(5, 15)):
        lines.append(f"品目{n}\t{rng.randrange(1, 99)}個\t{rng.randrange(100, 99999)}円")
    mail = _mime("\n".join(lines) + "\n", CHARSETS[i % 3])
    return _case(f"invoice-{i}", "negative:invoice", mail, labels(PD, "corporate-number"))


def _orders(s: Synth, i: int) -> Case:
    """12-digit order numbers that pass the My Number check digit, labelled 注文番号/伝票番号,
    one per line with a date and an amount, no header row."""
    rng = random.Random(1000 + i)
    label = ("注文番号", "伝票番号")[i % 2]
    lines = [
        f"{label}: {my_number(rng)}  2026/11/{rng.randint(1, 28):02d}  {rng.randrange(99999)}円"
        for _ in range(s.rng.randint(6, 20))
    ]
    mail = _mime("受注一覧です。\n" + "\n".join(lines) + "\n", CHARSETS[i % 3])
    return _case(f"orders-{i}", "negative:order-numbers", mail, frozenset())


def _products(s: Synth, i: int) -> Case:
    """A product master pasted without a header: JAN code, name, price."""
    rng = random.Random(2000 + i)
    lines = [
        f"{jan_code(rng)}\t商品{n}\t{rng.randrange(100, 9999)}円"
        for n in range(s.rng.randint(6, 25))
    ]
    mail = _mime("商品マスタです。\n" + "\n".join(lines) + "\n", CHARSETS[i % 3])
    return _case(f"products-{i}", "negative:product-master", mail, frozenset())


def headerless_cases(seed: int = 20261129) -> Iterator[Case]:
    """The issue-13 families, `PER_FAMILY` cases each, from their own seeded generator."""
    s = Synth(seed)
    for i in range(PER_FAMILY):
        yield _pasted(s, i)
        yield _quoted(s, i)
        yield _forwarded(s, i)
        yield _pdf_spaced(s, i)
        yield _wide(s, i)
        yield _name_phone(s, i)
        yield _directory(s, i)
        yield _signature(s, i)
        yield _invoice(s, i)
        yield _orders(s, i)
        yield _products(s, i)
