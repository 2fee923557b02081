"""Seeded synthetic Japanese personal data for the evaluation set (Faker ja_JP + our own
valid numbers). Nothing here is real: names, addresses and numbers are generated."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker

from tests.unit.detect.numbers import licence_number, luhn_complete, my_number, spaced

CARD_PREFIXES = (
    ("4", 16), ("51", 16), ("53", 16), ("55", 16), ("2221", 16), ("3528", 16), ("3589", 16),
    ("34", 15), ("37", 15), ("36", 14), ("6011", 16), ("65", 16), ("62", 16),
)  # fmt: skip


@dataclass
class Synth:
    """One seeded generator; every case draws from it in a fixed order (deterministic)."""

    seed: int = 20261123

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.fake = Faker("ja_JP")
        self.fake.seed_instance(self.seed)

    def phone(self) -> str:
        """A mobile or landline number in one of the ways people write them."""
        r = self.rng
        if r.random() < 0.6:
            # 080-0… is not a mobile block (0800 is toll-free), so the next digit is 1-9
            digits = r.choice(("090", "080", "070")) + f"{r.randrange(10**7, 10**8)}"
            groups: tuple[int, ...] = (3, 4, 4)
        else:
            digits = r.choice(("03", "06", "052", "045", "011", "092")) + ""
            digits += f"{r.randrange(10 ** (10 - len(digits))):0{10 - len(digits)}d}"
            groups = (len(digits) - 8, 4, 4) if len(digits) - 8 > 1 else (2, 4, 4)
        style = r.random()
        if style < 0.6:
            return spaced(digits, groups, "-")
        if style < 0.8:
            return digits
        if style < 0.9:
            return spaced(digits, groups, " ")
        return "+81-" + spaced(digits[1:], (groups[0] - 1, *groups[1:]), "-")

    def email(self) -> str:
        """A personal e-mail address."""
        return self.fake.email()

    def postal_and_address(self) -> tuple[str, str]:
        """(``123-4567``, ``東京都…市…``)."""
        return self.fake.zipcode(), self.fake.address()

    def birth_date(self) -> str:
        """A birth date in a common written form."""
        d = self.fake.date_of_birth(minimum_age=18, maximum_age=90)
        return self.rng.choice(
            (d.strftime("%Y/%m/%d"), d.isoformat(), f"{d.year}年{d.month}月{d.day}日")
        )

    def my_number(self, *, spaced_out: bool | None = None) -> str:
        """A valid My Number, sometimes grouped 4-4-4."""
        number = my_number(self.rng)
        if spaced_out or (spaced_out is None and self.rng.random() < 0.5):
            return spaced(number, (4, 4, 4), self.rng.choice((" ", "-")))
        return number

    def card(self) -> str:
        """A Luhn-valid card number of a real brand range, grouped or not."""
        prefix, length = self.rng.choice(CARD_PREFIXES)
        number = luhn_complete(prefix, length, self.rng)
        if self.rng.random() < 0.6:
            groups = {16: (4, 4, 4, 4), 15: (4, 6, 5), 14: (4, 6, 4)}[length]
            return spaced(number, groups, self.rng.choice((" ", "-")))
        return number

    def licence(self) -> str:
        """A valid driver's licence number."""
        return licence_number(self.rng)

    def name(self) -> tuple[str, str]:
        """(kanji name, katakana reading)."""
        return self.fake.name(), self.fake.kana_name()

    def person_row(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        """One record with the given column headers."""
        name, kana = self.name()
        postal, address = self.postal_and_address()
        values = {
            "氏名": name, "フリガナ": kana, "郵便番号": postal, "住所": address,
            "電話番号": self.phone(), "メール": self.email(), "生年月日": self.birth_date(),
            "個人番号": self.my_number(spaced_out=False), "カード番号": self.card(),
            "会員番号": f"M{self.rng.randrange(10**6):06d}", "性別": self.rng.choice("男女"),
        }  # fmt: skip
        return tuple(values[c] for c in columns)
