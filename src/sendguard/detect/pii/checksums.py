"""Check digits of the Japanese numbers `personal-data` recognises, and card checks.

Pure functions over strings of ASCII digits (already stripped of spaces and hyphens).
A number that fails its check digit is not reported, which is what keeps order numbers,
JAN codes and invoice numbers out of the findings.
"""

from __future__ import annotations

_LICENCE_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_LICENCE_AREAS = frozenset(
    {10, 11, 12, 13, 14, 20, 21, 22, 23, 24, 25, 30, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49}
    | {50, 51, 52, 53, 54, 55, 60, 61, 62, 63, 64, 65, 70, 71, 72, 73, 74, 80, 81, 82, 83}
    | {90, 91, 92, 93, 94, 95, 96, 97}
)


def my_number_ok(digits: str) -> bool:
    """個人番号: 12 digits, the last one the check digit of the 番号法施行令 formula."""
    if len(digits) != 12:
        return False
    total = 0
    for n in range(1, 12):  # P_n = n-th digit from the right, skipping the check digit
        q = n + 1 if n <= 6 else n - 5
        total += int(digits[11 - n]) * q
    remainder = total % 11
    check = 0 if remainder <= 1 else 11 - remainder
    return check == int(digits[11])


def corporate_number_ok(digits: str) -> bool:
    """法人番号: 13 digits, the first one the check digit (9 − Σ P_n·Q_n mod 9)."""
    if len(digits) != 13:
        return False
    total = 0
    for n in range(1, 13):  # P_n = n-th digit from the right of the 12-digit base
        total += int(digits[13 - n]) * (1 if n % 2 else 2)
    return 9 - total % 9 == int(digits[0])


def licence_ok(digits: str) -> bool:
    """運転免許証番号: 12 digits, area code, digit 11 = (11 − Σ w·d mod 11) mod 10."""
    if len(digits) != 12 or int(digits[:2]) not in _LICENCE_AREAS:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:10], _LICENCE_WEIGHTS, strict=True))
    return (11 - total % 11) % 10 == int(digits[10])


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check of payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_issuer(digits: str) -> str:
    """The card brand whose number ranges and lengths fit, or "" (checked before Luhn)."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p4 // 10 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if (p4 == 6011 or p2 == 65 or 644 <= p4 // 10 <= 649) and 16 <= n <= 19:
        return "discover"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    return ""
