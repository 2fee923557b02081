"""Masking of personal data for `Finding.evidence`: enough to recognise, never the value.

Findings go to logs, notifications and the queue, so every value leaves here masked.
"""

from __future__ import annotations


def keep_head(value: str, keep: int) -> str:
    """``0901234****``: the first `keep` characters, the rest as ``*``."""
    return value[:keep] + "*" * max(len(value) - keep, 0)


def card(digits: str) -> str:
    """``4111********1111``: issuer prefix and last four, as on a receipt."""
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def email(address: str) -> str:
    """``t***@example.co.jp``."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def mask(code: str, value: str) -> str:
    """The evidence form of `value` for finding code `code`."""
    if code == "credit-card":
        return card(value)
    if code == "email-address":
        return email(value)
    if code == "phone":
        return keep_head(value, 7 if len(value) == 11 else 6)
    if code == "postal-address":
        if "|" in value:  # a street address (`addresses.address`): never the street part
            return value.partition("|")[0] + "…"
        return value[:3] + "-****"
    if code == "birth-date":
        return "****-**-**"
    if code == "passport":
        return keep_head(value, 2)
    return keep_head(value, 4)
