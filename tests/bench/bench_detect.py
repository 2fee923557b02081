"""Throughput of the detectors on one core (not collected by pytest; run it directly).

    python tests/bench/bench_detect.py [--mb 8] [--profile]

personal-data is measured on extracted text as the parser hands it over (NFKC, tables as
tab-separated lines): business prose with the odd number, a dense customer list, and a
mix. MB/s counts UTF-8 bytes of the text. Target: ≥ 50 MB/s on prose-like text.
Also timed: lookalike-domain on 1,000 distinct recipient domains.
"""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from faker import Faker
from tests.eval.synth import Synth
from tests.unit.detect.helpers import context

from sendguard.detect.lookalike_domain import LookalikeDomain
from sendguard.detect.personal_data import PersonalData
from sendguard.detect.pii.patterns import SCAN
from sendguard.model import Mail, Part


def prose(megabytes: float) -> str:
    """Japanese business mail text with dates, amounts, the odd phone number and e-mail."""
    fake = Faker("ja_JP")
    fake.seed_instance(1)
    paragraphs = []
    for i in range(400):
        paragraphs.append(fake.text(300))
        if i % 10 == 0:
            paragraphs.append(
                f"2026年4月{i % 28 + 1}日 14:00 請求金額 {i * 1234:,}円 注文番号 {i:08d}"
            )
        if i % 50 == 0:
            paragraphs.append(f"担当: {fake.name()} TEL 03-1234-{i:04d} {fake.email()}")
    block = "\n".join(paragraphs)
    return _scale(block, megabytes)


def customer_list(megabytes: float) -> str:
    """A dense list: name, kana, postal code, address, phone, e-mail, birth date per line."""
    s = Synth(2)
    cols = ("氏名", "フリガナ", "郵便番号", "住所", "電話番号", "メール", "生年月日")
    rows = ["\t".join(cols)] + ["\t".join(s.person_row(cols)) for _ in range(3000)]
    return _scale("\n".join(rows), megabytes)


def _scale(block: str, megabytes: float) -> str:
    block = unicodedata.normalize("NFKC", block)
    size = len(block.encode())
    return "\n".join([block] * max(1, round(megabytes * 1e6 / size)))


def throughput(text: str, repeat: int = 3) -> float:
    """Best MB/s of `repeat` runs of personal-data over one body part holding `text`."""
    detector = PersonalData()
    mail = Mail(
        parts=(Part(("attachment 1",), "text/plain", "text/plain", text=text, is_attachment=True),)
    )
    ctx = context(["a@abc.co.jp"])
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        detector.detect(mail, ctx)
        best = min(best, time.perf_counter() - start)
    return len(text.encode()) / 1e6 / best


def regex_only(text: str, repeat: int = 3) -> float:
    """Best MB/s of the bare combined regex pass: the ceiling, and a yardstick for load."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _match in SCAN.finditer(text):
            pass
        best = min(best, time.perf_counter() - start)
    return len(text.encode()) / 1e6 / best


def hostile() -> dict[str, str]:
    """Texts built to hit worst cases (must stay linear; a scan over budget fails closed)."""
    return {
        "hostile: 200k digit groups": " ".join("123" for _ in range(200_000)),
        "hostile: 50k signature lines": "-----\n090-1234-5678\n" * 50_000,
        "hostile: 50k header lines": "氏名,電話\nx\n" * 50_000,
        "hostile: 30k cards + expiry": "4111111111111111 有効期限 " * 30_000,
    }


def lookalike_seconds() -> float:
    """Seconds for lookalike-domain on 1,000 distinct recipient domains (index cached)."""
    detector = LookalikeDomain()
    fake = Faker("ja_JP")
    fake.seed_instance(5)
    # Short realistic names (kato12.co.jp): near the targets' lengths, so not pre-filtered.
    ctx = context([f"u{i}@{fake.domain_word()}{i}.co.jp" for i in range(1000)])
    detector.detect(Mail(), ctx)  # build the index once, as a long-running relay does
    start = time.perf_counter()
    detector.detect(Mail(), ctx)
    return time.perf_counter() - start


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=8.0, help="size of each text in MB")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the dense list")
    args = parser.parse_args()
    texts = {"prose": prose(args.mb), "customer list": customer_list(args.mb)}
    texts["mixed (90% prose)"] = (
        texts["prose"][: int(len(texts["prose"]) * 0.9)]
        + texts["customer list"][: len(texts["customer list"]) // 10]
    )
    if args.profile:
        from pyinstrument import Profiler

        with Profiler() as profiler:
            throughput(texts["customer list"], 1)
        profiler.print()
    for name, text in texts.items():
        size = len(text.encode()) / 1e6
        print(
            f"personal-data {name:20} {size:6.1f} MB  {throughput(text):7.1f} MB/s"
            f"  (regex pass alone {regex_only(text):6.1f} MB/s)"
        )
    for name, text in hostile().items():
        size = len(text.encode()) / 1e6
        print(f"personal-data {name:30} {size:5.1f} MB  {throughput(text, 1):7.2f} MB/s")
    print(f"lookalike-domain 1,000 recipient domains: {lookalike_seconds() * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
