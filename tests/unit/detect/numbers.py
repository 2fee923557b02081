"""Valid (and deliberately invalid) Japanese numbers for tests, computed here independently
of `sendguard.detect.pii.checksums` so a wrong checksum there makes the tests fail."""

from __future__ import annotations

import random


def my_number(rng: random.Random) -> str:
    """A 12-digit 個人番号 with its check digit (weights 6,5,4,3,2,7,6,5,4,3,2 left to right)."""
    base = [rng.randrange(10) for _ in range(11)]
    weights = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    r = sum(d * w for d, w in zip(base, weights, strict=True)) % 11
    return "".join(map(str, base)) + str(0 if r <= 1 else 11 - r)


def bad_my_number(rng: random.Random) -> str:
    """12 digits whose last digit is not the My Number check digit (an order number)."""
    good = my_number(rng)
    return good[:11] + str((int(good[11]) + rng.randrange(1, 10)) % 10)


def corporate_number(rng: random.Random) -> str:
    """A 13-digit 法人番号: check digit first, weights 2,1,2,1… left to right over the base."""
    base = [rng.randrange(10) for _ in range(12)]
    weights = [2 if i % 2 == 0 else 1 for i in range(12)]
    total = sum(d * w for d, w in zip(base, weights, strict=True))
    return str(9 - total % 9) + "".join(map(str, base))


def licence_number(rng: random.Random) -> str:
    """A 12-digit driver's licence number: area, year, serial, check digit, reissue count."""
    head = [3, 0] + [rng.randrange(10) for _ in range(8)]
    weights = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    check = (11 - sum(d * w for d, w in zip(head, weights, strict=True)) % 11) % 10
    return "".join(map(str, head)) + str(check) + "0"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """A card number of `length` digits starting with `prefix` that passes Luhn."""
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    for check in range(10):
        digits = [int(c) for c in body + str(check)]
        total = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
        if total % 10 == 0:
            return body + str(check)
    raise AssertionError("unreachable")


def jan_code(rng: random.Random) -> str:
    """A 13-digit JAN (EAN-13) product code starting 49 with its own check digit."""
    body = "49" + "".join(str(rng.randrange(10)) for _ in range(10))
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def spaced(digits: str, groups: tuple[int, ...], sep: str = " ") -> str:
    """``1234 5678 9012`` from ``123456789012`` and (4, 4, 4)."""
    out, i = [], 0
    for g in groups:
        out.append(digits[i : i + g])
        i += g
    return sep.join(out)
