"""Bench workloads: the messages the load generators send, built once with real libraries.

(a) ``plain``: a 20 KB Japanese business mail (UTF-8, base64 body), one outside recipient.
(b) ``office``: a cycle of 15 messages — 8 plain mails of 3-30 KB, 5 with an attachment
    (XLSX ~1 MB, PDF ~300 KB, DOCX; one third of the mix), 2 mass mails to 100 recipients.
(c) ``big``: one 25 MB attachment (a ZIP of site photos) while small mail flows.

Attachments are generated with openpyxl / reportlab / python-docx with Japanese content and
cached under the cache directory, so only the first run pays for them. Every template is
checked against the shipped default policy (`check_verdicts`): the bench measures mail that
passes, so a template the policy would hold or reject is a bench bug and fails loudly.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.attachments import Attachment, build_message, docx, xlsx

SENDER = ("山田 太郎", "yamada@example.co.jp")
CUSTOMER = ("株式会社顧客 佐藤様", "sato@customer.example")
PARTNER = ("提携先 鈴木様", "suzuki@partner.example.jp")
INTERNAL = ("営業部 田中", "tanaka@example.co.jp")
MASS_DOMAINS = ("customer.example", "partner.example.jp")

_SENTENCES = (
    "いつも大変お世話になっております。",
    "先日はお忙しいところお時間をいただき、誠にありがとうございました。",
    "ご依頼いただきました見積書の件につきまして、下記の通りご連絡いたします。",
    "納期につきましては、来月末を予定しておりますが、詳細は改めてご案内いたします。",
    "ご不明な点がございましたら、お気軽にお問い合わせください。",
    "今後とも何卒よろしくお願い申し上げます。",
    "本件に関しまして、社内で検討を重ねた結果、仕様を一部変更することとなりました。",
    "打ち合わせの日程について、候補日をいくつかお知らせいただけますと幸いです。",
    "添付の資料をご確認のうえ、ご意見をお聞かせいただければと存じます。",
    "製品の出荷状況につきましては、現在のところ予定通り進んでおります。",
    "年末年始の営業日についてご案内申し上げます。",
    "新しい会議室の予約方法が変更になりましたので、ご注意ください。",
    "第三四半期の売上は前年同期比で増加し、特に関西地区が好調でした。",
    "システムの定期メンテナンスに伴い、一部サービスを一時停止いたします。",
    "品質管理部門より、検査工程の改善案が提出されております。",
    "来週の展示会では、新製品のデモンストレーションを行う予定です。",
)
_SIGNATURE = (
    "\n\n--\n株式会社サンプル 営業部\n山田 太郎\n"
    "〒100-0001 東京都千代田区千代田1-1\nTEL 03-1234-5678\n"
)


@dataclass(frozen=True, slots=True)
class Template:
    """One message to send: envelope plus the wire form (CRLF, dot-stuffed, no final dot)."""

    kind: str
    mail_from: str
    rcpts: tuple[str, ...]
    data: bytes

    @property
    def wire(self) -> bytes:
        """The DATA payload as sent: transparent dots doubled (RFC 5321 §4.5.2)."""
        stuffed = self.data.replace(b"\r\n.", b"\r\n..")
        return b"." + stuffed if stuffed.startswith(b".") else stuffed


def japanese_text(chars: int, seed: int) -> str:
    """Business Japanese of about `chars` characters in paragraphs, then a signature."""
    rng = random.Random(seed)
    out: list[str] = ["お客様各位\n\n"]
    size = 0
    while size < chars:
        paragraph = "".join(rng.choice(_SENTENCES) for _ in range(rng.randint(2, 5)))
        out.append(paragraph + "\n\n")
        size += len(paragraph)
    return "".join(out) + _SIGNATURE


def _mail(
    body: str,
    to: Sequence[tuple[str, str]],
    rcpts: Sequence[str],
    subject: str,
    kind: str,
    attachments: Sequence[Attachment] = (),
) -> Template:
    data = build_message(from_=SENDER, to=to, subject=subject, body=body, attachments=attachments)
    return Template(kind, SENDER[1], tuple(rcpts), data)


def plain_20k(seed: int = 1) -> Template:
    """Workload (a): 20 KB on the wire (UTF-8 text, base64), one outside recipient."""
    return _mail(japanese_text(4600, seed), [CUSTOMER], [CUSTOMER[1]], "お見積りの件", "plain")


# --------------------------------------------------------------------------- attachments


def _xlsx_1mb(*, dated: bool = False) -> bytes:
    """The sales ledger; `dated`: its 日付 column as date cells (a date format), as Excel
    keeps it, and 品名 for 品目."""
    rng = random.Random(7)
    products = ["ボルト M8", "ナット M10", "ワッシャー", "配線ケーブル 2m", "制御基板 A型", "筐体"]
    regions = ["関東", "関西", "中部", "九州", "東北", "北海道"]
    rows: list[list[object]] = [
        ["伝票番号", "日付", "地域", "品名" if dated else "品目", "数量", "単価", "金額", "備考"]
    ]
    for n in range(26000):
        qty, price = rng.randint(1, 500), rng.randint(100, 90000)
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        rows.append(
            [
                f"S{n:07d}",
                datetime.date(2026, month, day) if dated else f"2026-{month:02d}-{day:02d}",
                rng.choice(regions),
                rng.choice(products),
                qty,
                price,
                qty * price,
                rng.choice(("", "至急", "分納", "検収済")),
            ]
        )
    return xlsx({"売上明細": rows})


def _pdf(pages: int) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    out = io.BytesIO()
    page = canvas.Canvas(out, pageCompression=0)
    text = japanese_text(pages * 44 * 38, 11).replace("\n", "")
    for number in range(pages):
        page.setFont("HeiseiKakuGo-W5", 11)
        page.drawString(72, 800, f"製品仕様書 第2版 {number + 1}/{pages}")
        for row in range(44):
            start = (number * 44 + row) * 38
            page.drawString(60, 770 - 16 * row, text[start : start + 38])
        page.showPage()
    page.save()
    return out.getvalue()


def _pdf_300kb() -> bytes:
    """Pages of uncompressed Japanese text until the file is about 300 KB."""
    pages = 8
    data = _pdf(pages)
    while len(data) < 290_000:
        pages = int(pages * 300_000 / len(data)) + 1
        data = _pdf(pages)
    return data


def _docx() -> bytes:
    paragraphs = japanese_text(6000, 13).split("\n\n")
    table = [
        ["項目", "担当", "期限"],
        ["仕様確定", "開発部", "12月5日"],
        ["試作", "製造部", "1月20日"],
    ]
    return docx(paragraphs, [table])


def _photos_zip(size: int) -> bytes:
    """A ZIP of 'site photos': JPEG-headed incompressible data, stored (as cameras' files)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        count = 10
        for n in range(count):
            body = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(size // count - 16)
            archive.writestr(f"現場写真_{n + 1:03d}.jpg", body + b"\xff\xd9")
    return out.getvalue()


def cached(cache: Path, name: str, make: object) -> bytes:
    """The file `name` from the cache, made by `make()` the first time."""
    path = cache / name
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(make())  # type: ignore[operator]
        tmp.replace(path)
    return path.read_bytes()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def office_mix(cache: Path) -> list[Template]:
    """Workload (b): one cycle of 15 messages (a third with attachments, two mass mails)."""
    files = {
        "xlsx": Attachment("売上明細_2026.xlsx", cached(cache, "sales.xlsx", _xlsx_1mb), XLSX),
        "pdf": Attachment(
            "製品仕様書.pdf", cached(cache, "spec.pdf", _pdf_300kb), "application/pdf"
        ),
        "docx": Attachment("議事録.docx", cached(cache, "minutes.docx", _docx), DOCX),
    }
    mix: list[Template] = []
    for n, chars in enumerate((800, 1500, 2500, 3500, 5000, 7000, 1200, 2000)):
        to = [CUSTOMER] if n % 2 else [PARTNER, INTERNAL]
        mix.append(_mail(japanese_text(chars, 100 + n), to, [a for _, a in to], "ご連絡", "text"))
    for n, key in enumerate(("xlsx", "pdf", "xlsx", "pdf", "docx")):
        body = japanese_text(600, 200 + n) + "\n資料を添付いたします。"
        mix.append(
            _mail(body, [CUSTOMER], [CUSTOMER[1]], "資料送付", f"attach-{key}", [files[key]])
        )
    for n in range(2):
        rcpts = [f"member{i:03d}@{MASS_DOMAINS[i % 2]}" for i in range(100)]
        body = japanese_text(1500, 300 + n)
        mix.append(_mail(body, [SENDER], rcpts, "展示会のご案内", "mass-100"))
    order = random.Random(5)
    order.shuffle(mix)
    return mix


def big_attachment(cache: Path, size: int = 25 * 1024 * 1024) -> Template:
    """Workload (c): one 25 MB attachment (a ZIP of photos) to a partner."""
    photos = Attachment(
        "現場写真.zip",
        cached(cache, "photos-25m.zip", lambda: _photos_zip(size)),
        "application/zip",
    )
    body = japanese_text(500, 400) + "\n現場写真をお送りします。"
    return _mail(body, [PARTNER], [PARTNER[1]], "現場写真", "big-25mb", [photos])


def check_verdicts(templates: Sequence[Template], policy_dir: Path, cache: Path) -> list[str]:
    """Each distinct template's verdict under the policy: problems (not pass/tag) as text.
    A clean result is remembered in `cache` for these exact templates and policy files."""
    digest = hashlib.sha256()
    for template in templates:
        digest.update(template.data + "\0".join(template.rcpts).encode())
    for path in sorted(policy_dir.glob("*.toml")):
        digest.update(path.read_bytes())
    marker = cache / f"verdicts-ok-{digest.hexdigest()[:16]}"
    if marker.exists():
        return []
    problems = _verdict_problems(templates, policy_dir)
    if not problems:
        cache.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return problems


def _verdict_problems(templates: Sequence[Template], policy_dir: Path) -> list[str]:
    from sendguard.inspect import inspect_sync
    from sendguard.model import Envelope
    from sendguard.parse.limits import ParseLimits
    from sendguard.policy.load import load_policy

    loaded = load_policy(policy_dir)
    limits = ParseLimits.model_validate({})
    problems: list[str] = []
    seen: set[int] = set()
    for template in templates:
        if id(template) in seen:
            continue
        seen.add(id(template))
        envelope = Envelope(mail_from=template.mail_from, rcpt_tos=template.rcpts)
        verdict = inspect_sync(envelope, template.data, loaded, limits, offline=True).verdict
        if verdict.action.label not in ("pass", "tag"):
            problems.append(f"{template.kind}: {verdict.action.label} by {verdict.rule_id}")
    return problems
