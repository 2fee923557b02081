"""Harder, messier cases: lists laid out the way people really send them, labels further
away, English headers, quoted replies, licence keys and serial numbers, typo'd suffixes."""

from __future__ import annotations

from collections.abc import Iterator

from sendguard.model import Mail
from tests.unit.detect.numbers import luhn_complete

from .case import Case, labels
from .cases_domains import LD
from .cases_pii import PD, SCOPE, SIGNATURE, _body
from .formats import Content, direct_part
from .synth import Synth


def _english_list(s: Synth, i: int) -> Case:
    rows = [("Name", "Phone", "Email", "Address")]
    for _ in range(s.rng.randint(5, 40)):
        rows.append((s.name()[0], s.phone(), s.email(), s.postal_and_address()[1]))
    content = Content(rows=tuple(rows))
    part = direct_part(content, "csv-utf8")
    # The addresses carry no postal code: street addresses since issue 13.
    expected = labels(PD, "customer-list", "phone", "email-address", "postal-address")
    return Case(f"hard-english-list-{i}", "hard:english-header", SCOPE, expected,
                Mail(subject="list", parts=(part,)), content=content, fmt="csv-utf8")  # fmt: skip


def _numbered_lines(s: Synth, i: int) -> Case:
    count = s.rng.randint(5, 30)
    lines = [f"{n + 1}. {s.name()[0]}様 {s.phone()} {s.email()}" for n in range(count)]
    text = "本日の参加者一覧です。\n\n" + "\n".join(lines) + SIGNATURE
    return Case(f"hard-numbered-{i}", "hard:numbered-lines", SCOPE,
                labels(PD, "customer-list", "phone", "email-address"), _body(text))  # fmt: skip


def _record_blocks(s: Synth, i: int) -> Case:
    blocks = []
    for _ in range(s.rng.randint(5, 15)):
        postal, address = s.postal_and_address()
        blocks.append(f"氏名: {s.name()[0]}\n住所: 〒{postal} {address}\n電話: {s.phone()}\n")
    text = "会員情報を送ります。\n\n" + "\n".join(blocks)
    return Case(f"hard-blocks-{i}", "hard:record-blocks", SCOPE,
                labels(PD, "customer-list", "phone", "postal-address"), _body(text))  # fmt: skip


def _far_label(s: Synth, i: int) -> Case:
    text = (
        "個人番号(マイナンバー)の確認書類として、通知カードに記載の番号を以下にお知らせします。\n"
        f"\n{s.my_number()}\n\nよろしくお願いします。"
    )
    return Case(f"hard-far-label-{i}", "hard:my-number-far-label", SCOPE,
                labels(PD, "my-number"), _body(text))  # fmt: skip


def _quoted_reply(s: Synth, i: int) -> Case:
    quoted = "\n".join("> " + line for line in SIGNATURE.strip("\n").splitlines())
    said = f"{s.rng.randint(1, 28)}日 {s.name()[0]} さんは書きました:"
    text = f"承知しました。\n\n{said}\n> 資料を送ります。\n{quoted}"
    return Case(f"hard-quoted-{i}", "negative:quoted-signature", SCOPE, frozenset(), _body(text))


def _serials(s: Synth, i: int) -> Case:
    count = s.rng.randint(3, 8)
    keys = ["-".join(f"{s.rng.randrange(10**4):04d}" for _ in range(4)) for _ in range(count)]
    text = "ライセンスキーを発行しました。\n" + "\n".join(f"シリアル番号: {k}" for k in keys)
    return Case(f"hard-serials-{i}", "hard:serial-numbers", SCOPE, frozenset(), _body(text))


def _store_directory(s: Synth, i: int) -> Case:
    """Shops and branches with addresses and phones: business data, not a customer list."""
    kinds = ("店", "支店", "営業所", "サービスセンター", "工場")
    lines = []
    for n in range(s.rng.randint(5, 20)):
        postal, address = s.postal_and_address()
        lines.append(f"{s.fake.city()}{kinds[n % len(kinds)]} 〒{postal} {address} TEL {s.phone()}")
    text = "各拠点の連絡先は以下の通りです。\n" + "\n".join(lines)
    expected = labels(PD, "phone", "postal-address")
    return Case(f"hard-stores-{i}", "negative:store-directory", SCOPE, expected, _body(text))


def _store_table(s: Synth, i: int) -> Case:
    rows = [("店舗名", "住所", "電話番号")]
    rows += [(f"{s.fake.city()}店", s.postal_and_address()[1], s.phone()) for _ in range(12)]
    content = Content(rows=tuple(rows))
    mail = Mail(subject="店舗一覧", parts=(direct_part(content, "xlsx"),))
    expected = labels(PD, "phone", "postal-address")  # street addresses since issue 13
    return Case(f"hard-store-table-{i}", "negative:store-table", SCOPE, expected, mail,
                content=content, fmt="xlsx")  # fmt: skip


def pii_hard_cases(s: Synth) -> Iterator[Case]:
    """Messier personal-data cases, positives and negatives."""
    for i in range(10):
        yield _english_list(s, i)
        yield _numbered_lines(s, i)
        yield _record_blocks(s, i)
        yield _far_label(s, i)
        yield _quoted_reply(s, i)
        yield _serials(s, i)
        yield _store_directory(s, i)
        yield _store_table(s, i)
    for i in range(10):
        card = luhn_complete("4", 16, s.rng)
        yield Case(f"hard-visa-{i}", "hard:card-brand-label", SCOPE, labels(PD, "credit-card"),
                   _body(f"VISA {card[:4]} {card[4:8]} {card[8:12]} {card[12:]}"))  # fmt: skip


def lookalike_hard_cases(s: Synth) -> Iterator[Case]:
    """Suffix typos and slips people really make on carrier and free-mail domains."""
    scope = frozenset({LD})
    slips = (
        "gmai.com",
        "gmail.co",
        "gmail.con",
        "gmil.com",
        "gamil.com",
        "yahoo.co.jo",
        "yaho.co.jp",
        "docomo.ne.jo",
        "docomo.me.jp",
        "ezweb.ne.jo",
        "ezweb.co.jp",
        "softbamk.ne.jp",
        "i.softbank.co.jp",
        "icloud.co",
        "icoud.com",
        "outlook.co.jp",
        "hotmai.co.jp",
        "hotmail.jp",
        "nifty.ne.jp.com",
        "ocn.co.jp",
        "biglobe.ne.co.jp",
        "tanaka-syoji.co.jp",
        "tanaka-shoji.com",
        "example-corp.jp",
        "exarnple-corp.co.jp",
    )
    for domain in slips:
        yield Case(f"hard-lookalike-{domain}", "hard:lookalike", scope, labels(LD, "lookalike"),
                   Mail(), recipients=(f"hanako@{domain}",))  # fmt: skip
