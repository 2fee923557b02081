"""Helpers for tests of the review console.

A policy with reviewers, a two-approval hold for customer lists and a delay for other
outside mail; messages that trigger each; a users file with the people's passwords.
Nothing here is used by the running relay (so it lives in tests/, beside the builders it uses).
"""

from __future__ import annotations

import re
from pathlib import Path

from sendguard.intake.auth import UsersFile
from tests.support.attachments import Attachment, build_message, xlsx

WEB_POLICY = """\
[organisation]
internal_domains = ["corp.example"]

[detectors.unresolvable-domain]
enabled = false   # tests never query DNS

[people.suzuki]
addresses = ["suzuki@corp.example", "security@corp.example"]
role = "reviewer"

[people.sato]
addresses = ["sato@corp.example", "security@corp.example"]
role = "reviewer"

[people.yamada]
addresses = ["yamada@corp.example"]
role = "reviewer"   # a reviewer, but not of the rules below

[people.kanri]
addresses = ["kanri@corp.example"]
role = "admin"

[people.tanaka]
addresses = ["tanaka@corp.example"]

[[rule]]
id = "hold-customer-list"
description = "顧客リストの社外送信 → 2 名の承認 / customer list to outside → two approvals"
action = "hold"
recipients = "any-external"
reviewers = ["security@corp.example"]
approvals = 2
when.any = [{ detector = "personal-data", code = "customer-list" }]

[[rule]]
id = "delay-external"
description = "社外宛は 30 分待機 / outside mail waits 30 minutes"
action = "delay"
recipients = "any-external"
delay_minutes = 30
"""
"""Reviewers suzuki and sato (of security@), yamada (a reviewer of nothing here), the admin
kanri and the sender tanaka."""

PASSWORDS = {
    "suzuki": "suzuki-pass-1",
    "sato": "sato-pass-22",
    "yamada": "yamada-pass-3",
    "kanri": "kanri-pass-44",
    "tanaka": "tanaka-pass-5",
}


def write_users(path: Path) -> Path:
    """A users file with every person of `WEB_POLICY` and its password from `PASSWORDS`."""
    users = UsersFile(path)
    for name, password in PASSWORDS.items():
        users.add(name, password)
    return path


def customer_list_message(subject: str = "顧客リストの送付") -> bytes:
    """Mail from tanaka to an outside address with a 30-person list attached (a hold)."""
    rows = [("氏名", "フリガナ", "電話番号", "住所")]
    rows += [(f"山田{i}", "ヤマダ", f"090-0000-{i:04d}", "東京都") for i in range(30)]
    return build_message(
        from_=("田中", "tanaka@corp.example"),
        to=[("", "buyer@client.example")],
        subject=subject,
        body="お世話になっております。顧客リストを送付します。<script>alert(1)</script>",
        attachments=[Attachment("顧客リスト.xlsx", xlsx({"顧客": rows}))],
    )


def plain_message(subject: str = "お見積り") -> bytes:
    """Mail from tanaka to an outside address with nothing in it (a delay)."""
    return build_message(
        from_=("田中", "tanaka@corp.example"),
        to=[("", "buyer@client.example")],
        subject=subject,
        body="お見積りをお送りします。",
    )


LINK = re.compile(r"https?://\S+/review/link/[A-Za-z0-9_.\-]+")


def links_in(text: str) -> list[str]:
    """Every signed link in a notice's text, in order."""
    return LINK.findall(text)
