"""apply_verdict: pass is byte-identical, tag adds headers, rewrite hides outside recipients."""

from __future__ import annotations

import base64
import email
import email.policy
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard.actions.rewrite import apply_verdict
from sendguard.model import Action, Envelope, Organisation, Outgoing, Verdict

ORG = Organisation(internal_domains=frozenset({"example.co.jp"}))
CUSTOMERS = [f"customer{i:02d}@client{i % 7}.example.com" for i in range(40)]
SENDER = "tanaka@example.co.jp"


def decided(action: Action, **kw: object) -> Verdict:
    """The verdict of an inspection that decided the given action (rule ``r``)."""
    return Verdict(action=action, rule_id="r", **kw)  # type: ignore[arg-type]


def message(to: str, cc: str = "", extra: str = "", body: str = "本文です。\r\n") -> bytes:
    """A realistic message: folded To, other headers around it, an 8-bit body."""
    lines = [
        "Received: from pc01 (pc01 [10.0.0.5])\r\n"
        "\tby mail.example.co.jp; Mon, 23 Nov 2026 10:00:00 +0900",
        f"From: =?UTF-8?B?55Sw5Lit?= <{SENDER}>",
        f"To: {to}",
        *([f"Cc: {cc}"] if cc else []),
        "Subject: =?ISO-2022-JP?B?GyRCJCpDTkRMGyhC?=",
        "Message-ID: <abc@example.co.jp>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
        "Content-Transfer-Encoding: 8bit",
        *([extra] if extra else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def header_block(data: bytes) -> bytes:
    """The header block, split by the stdlib-independent rule of RFC 5322 (first blank line)."""
    return data.split(b"\r\n\r\n", 1)[0]


def without(data: bytes, *names: str) -> bytes:
    """The bytes with the named fields (and their continuation lines) cut out."""
    pattern = rb"^(?:" + b"|".join(n.encode() for n in names) + rb"):[^\n]*\n(?:[ \t][^\n]*\n)*"
    return re.sub(pattern, b"", data, flags=re.M | re.I)


def parsed(data: bytes) -> email.message.EmailMessage:
    """The stdlib's reading of a message (an independent parser to check ours)."""
    return email.message_from_bytes(data, policy=email.policy.default)


def test_pass_returns_the_original_bytes_for_every_recipient() -> None:
    """PASS: one copy, the envelope recipients, the very same bytes."""
    data = message(", ".join(CUSTOMERS))
    env = Envelope(SENDER, tuple(CUSTOMERS))
    [out] = apply_verdict(data, decided(Action.PASS), env, ORG)
    assert out == Outgoing(tuple(CUSTOMERS), data)
    assert out.data is data


def test_tag_prepends_headers_and_keeps_every_other_byte() -> None:
    """TAG: the verdict headers come first, the original follows byte for byte."""
    data = message("a@client.example.com")
    tags = (
        ("X-Sendguard-Verdict", "tag; rule=r"),
        ("X-Sendguard-Tag", "r; confidential-marker/marker"),
    )
    [out] = apply_verdict(
        data,
        decided(Action.TAG, tag_headers=tags),
        Envelope(SENDER, ("a@client.example.com",)),
        ORG,
    )
    assert out.data == (
        b"X-Sendguard-Verdict: tag; rule=r\r\nX-Sendguard-Tag: r; confidential-marker/marker\r\n"
        + data
    )


def test_forty_customers_in_to_are_hidden_and_all_still_receive() -> None:
    """REWRITE: no customer address in any header, all 40 (and the colleague) still recipients."""
    colleague = "=?UTF-8?B?6Yi05pyo?= <suzuki@example.co.jp>"
    data = message(",\r\n ".join(CUSTOMERS), cc=f"{colleague}, boss@client0.example.com")
    rcpts = (*CUSTOMERS, "suzuki@example.co.jp", "boss@client0.example.com")
    [out] = apply_verdict(
        data, decided(Action.REWRITE, rewrite="undisclosed"), Envelope(SENDER, rcpts), ORG
    )
    assert out.rcpt_tos == rcpts
    headers = header_block(out.data).lower()
    for address in (*CUSTOMERS, "boss@client0.example.com"):
        assert address.encode() not in headers
    msg = parsed(out.data)
    assert str(msg["To"]) == "undisclosed-recipients:;"
    assert str(msg["Cc"]) == "鈴木 <suzuki@example.co.jp>"
    assert msg["X-Sendguard-Rewritten"] == "to-cc-to-bcc; mode=undisclosed; removed=41; rule=r"
    # Everything outside To, Cc and our own field is byte-identical, body included.
    assert without(out.data, "To", "Cc", "X-Sendguard-Rewritten") == without(data, "To", "Cc")


def test_rfc2047_and_folded_to_keeps_internal_names_intact() -> None:
    """Encoded, quoted and folded To entries are parsed; kept names survive re-encoding."""
    to = (
        '"Yamada, Taro" <yamada@example.co.jp>,\r\n'
        "\t=?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@customer.example.com>,\r\n"
        " =?UTF-8?Q?=E4=BD=90=E8=97=A4_=E8=8A=B1=E5=AD=90?= <sato@dev.example.co.jp>"
    )
    data = message(to)
    env = Envelope(
        SENDER, ("yamada@example.co.jp", "yamada@customer.example.com", "sato@dev.example.co.jp")
    )
    [out] = apply_verdict(data, decided(Action.REWRITE), env, ORG)
    assert b"customer.example.com" not in header_block(out.data)
    to_header = parsed(out.data)["To"]
    assert [(a.display_name, a.addr_spec) for a in to_header.addresses] == [
        ("Yamada, Taro", "yamada@example.co.jp"),
        ("佐藤 花子", "sato@dev.example.co.jp"),
    ]
    for line in header_block(out.data).split(b"\r\n"):
        assert len(line) <= 998
        assert line.isascii()


def test_sender_mode_puts_the_sender_in_to() -> None:
    """mode=sender: To shows the sender when no internal address is left."""
    data = message("a@client.example.com, b@other.example.org")
    env = Envelope(SENDER, ("a@client.example.com", "b@other.example.org"))
    [out] = apply_verdict(data, decided(Action.REWRITE, rewrite="sender"), env, ORG)
    assert parsed(out.data)["To"] == SENDER


def test_split_gives_each_external_recipient_only_their_own_address() -> None:
    """mode=split: one copy per outsider showing only them, one copy for the insiders."""
    data = message(
        "=?UTF-8?B?5qCq5byP5Lya56S+QQ==?= <a@client.example.com>, b@other.example.org",
        cc="suzuki@example.co.jp",
    )
    env = Envelope(
        SENDER,
        (
            "a@client.example.com",
            "b@other.example.org",
            "suzuki@example.co.jp",
            "hidden@third.example.net",
        ),
    )
    outs = apply_verdict(data, decided(Action.HOLD, rewrite="split"), env, ORG)
    assert [o.rcpt_tos for o in outs] == [
        ("a@client.example.com",),
        ("b@other.example.org",),
        ("hidden@third.example.net",),
        ("suzuki@example.co.jp",),
    ]
    first = parsed(outs[0].data)
    assert [(a.display_name, a.addr_spec) for a in first["To"].addresses] == [
        ("株式会社A", "a@client.example.com")
    ]
    assert b"other.example.org" not in header_block(outs[0].data)
    assert parsed(outs[1].data)["To"] == "b@other.example.org"
    assert parsed(outs[3].data)["To"] == "undisclosed-recipients:;"
    for out in outs:
        assert parsed(out.data)["Cc"] == "suzuki@example.co.jp"
        assert "mode=split" in parsed(out.data)["X-Sendguard-Rewritten"]


def test_crafted_display_name_cannot_inject_a_header() -> None:
    """An encoded-word decoding to CR LF + a header stays inside one To value."""
    evil = "=?UTF-8?Q?x=0D=0ABcc:_victim@evil.example=0D=0A?= <kato@example.co.jp>"
    data = message(f"{evil}, a@client.example.com")
    env = Envelope(SENDER, ("kato@example.co.jp", "a@client.example.com"))
    [out] = apply_verdict(data, decided(Action.REWRITE), env, ORG)
    lines = header_block(out.data).split(b"\r\n")
    assert not any(line.lower().startswith(b"bcc:") for line in lines)
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert [a.addr_spec for a in parsed(out.data)["To"].addresses] == ["kato@example.co.jp"]


def test_bcc_field_is_dropped_and_cc_only_message_gets_a_to() -> None:
    """A submitted Bcc field never leaves; with no To field, To is added where Cc was."""
    data = message("x", extra="Bcc: secret@client.example.com").replace(
        b"To: x\r\n", b"Cc: a@client.example.com\r\n"
    )
    env = Envelope(SENDER, ("a@client.example.com", "secret@client.example.com"))
    [out] = apply_verdict(data, decided(Action.REWRITE), env, ORG)
    msg = parsed(out.data)
    assert msg["Bcc"] is None
    assert msg["Cc"] is None
    assert msg["To"] == "undisclosed-recipients:;"
    assert b"client.example.com" not in header_block(out.data)


def test_lf_only_message_keeps_lf_endings() -> None:
    """A message with bare LF line endings gets LF in the fields we write."""
    data = message("a@client.example.com").replace(b"\r\n", b"\n")
    [out] = apply_verdict(
        data, decided(Action.REWRITE), Envelope(SENDER, ("a@client.example.com",)), ORG
    )
    assert b"\r" not in out.data
    assert out.data.startswith(
        b"X-Sendguard-Rewritten: to-cc-to-bcc; mode=undisclosed; removed=1; rule=r\n"
    )


def test_nothing_visible_outside_leaves_bytes_alone() -> None:
    """A rewrite verdict when To/Cc hold only colleagues changes nothing."""
    data = message("suzuki@example.co.jp")
    env = Envelope(SENDER, ("suzuki@example.co.jp", "bcc@client.example.com"))
    [out] = apply_verdict(data, decided(Action.DELAY, rewrite="undisclosed"), env, ORG)
    assert out.data == data


def test_rewrite_combined_with_tags() -> None:
    """Tag headers and the rewrite both apply to a hold released later."""
    data = message("a@client.example.com")
    verdict = decided(Action.HOLD, rewrite="undisclosed", tag_headers=(("X-Sendguard-Tag", "t"),))
    [out] = apply_verdict(data, verdict, Envelope(SENDER, ("a@client.example.com",)), ORG)
    assert out.data.startswith(b"X-Sendguard-Tag: t\r\nX-Sendguard-Rewritten: ")


def test_reject_is_never_delivered() -> None:
    """apply_verdict refuses a reject verdict instead of producing bytes."""
    with pytest.raises(ValueError, match="never delivered"):
        apply_verdict(
            message("a@b.example"),
            decided(Action.REJECT),
            Envelope(SENDER, ("a@b.example",)),
            ORG,
        )


def test_unparsable_to_field_is_replaced_not_left_visible() -> None:
    """A To field the strict parser cannot read still shows addresses to people: it goes."""
    data = message("tim@client.example concierge@client.example")
    env = Envelope(SENDER, ("tim@client.example", "concierge@client.example"))
    [out] = apply_verdict(data, decided(Action.REWRITE), env, ORG)
    assert b"client.example" not in header_block(out.data)
    assert parsed(out.data)["To"] == "undisclosed-recipients:;"


@settings(max_examples=150, deadline=None)
@given(name=st.text(min_size=1, max_size=40))
def test_any_display_name_survives_as_one_safe_mailbox(name: str) -> None:
    """Whatever a display name decodes to, the rewritten To is one ASCII line per fold and
    holds exactly the internal mailbox (no injected field, no lost address)."""
    encoded = "=?UTF-8?B?" + base64.b64encode(name.encode("utf-8", "surrogatepass")).decode() + "?="
    data = message(f"{encoded} <kato@example.co.jp>, a@client.example")
    env = Envelope(SENDER, ("kato@example.co.jp", "a@client.example"))
    [out] = apply_verdict(data, decided(Action.REWRITE), env, ORG)
    block = header_block(out.data)
    assert block.isascii()
    names = [
        line.split(b":", 1)[0] for line in block.split(b"\r\n") if line[:1] not in (b" ", b"\t")
    ]
    assert names == [
        b"X-Sendguard-Rewritten",
        b"Received",
        b"From",
        b"To",
        b"Subject",
        b"Message-ID",
        b"MIME-Version",
        b"Content-Type",
        b"Content-Transfer-Encoding",
    ]
    assert [a.addr_spec for a in parsed(out.data)["To"].addresses] == ["kato@example.co.jp"]


def test_released_hold_gets_its_stored_rewrite() -> None:
    """The queue worker applies a stored hold verdict's rewrite when it releases the mail."""
    data = message("a@client.example, b@other.example")
    env = Envelope(SENDER, ("a@client.example", "b@other.example"))
    verdict = Verdict(action=Action.HOLD, rule_id="hold-x", rewrite="split")
    outs = apply_verdict(data, verdict, env, ORG)
    assert [o.rcpt_tos for o in outs] == [("a@client.example",), ("b@other.example",)]
    assert parsed(outs[1].data)["To"] == "b@other.example"


BCC = "Bcc: boss@example.co.jp,\r\n secret@rival.example"


@pytest.mark.parametrize("action", [Action.PASS, Action.TAG, Action.HOLD, Action.DELAY])
def test_bcc_field_is_removed_and_nothing_else_changes(action: Action) -> None:
    """Whatever the verdict (held mail is prepared by this same function at release), a Bcc
    field (with its continuation line) leaves; every other byte stays."""
    data = message("a@client.example.com", extra=BCC)
    env = Envelope(SENDER, ("a@client.example.com", "boss@example.co.jp"))
    [out] = apply_verdict(data, decided(action), env, ORG)
    body = out.data.split(b"\r\n", 1)[1] if action is Action.TAG else out.data
    assert body == without(data, "Bcc")
    assert b"rival.example" not in out.data
    assert out.rcpt_tos == env.rcpt_tos


def test_resent_bcc_and_odd_spellings_are_removed_too() -> None:
    """``BCc :`` (obsolete space) and Resent-Bcc go, as Postfix's cleanup drops them."""
    data = message("a@client.example.com", extra="BCc : x@rival.example\r\nResent-Bcc: y@z.example")
    [out] = apply_verdict(data, decided(Action.PASS), Envelope(SENDER, ("a@b.example",)), ORG)
    assert out.data == message("a@client.example.com")


def test_keep_bcc_keeps_the_message_byte_identical() -> None:
    """With ``keep_bcc`` the Bcc field stays and PASS hands back the original object."""
    data = message("a@client.example.com", extra=BCC)
    env = Envelope(SENDER, ("a@client.example.com",))
    [out] = apply_verdict(data, decided(Action.PASS), env, ORG, keep_bcc=True)
    assert out.data is data
    [held] = apply_verdict(data, Verdict(action=Action.HOLD), env, ORG, keep_bcc=True)
    assert held.data == data
    [released] = apply_verdict(data, Verdict(action=Action.HOLD), env, ORG)
    assert released.data == without(data, "Bcc")


def test_bcc_in_the_body_is_not_touched() -> None:
    """Only the top-level header block is edited: a quoted ``Bcc:`` line in the body stays."""
    data = message("a@client.example.com", body="Bcc: quoted@rival.example\r\n")
    [out] = apply_verdict(data, decided(Action.PASS), Envelope(SENDER, ("a@b.example",)), ORG)
    assert out.data is data


def test_rewrite_hides_outside_addresses_in_resent_fields() -> None:
    """Resent-To/Resent-Cc are visible like To/Cc: the rewrite keeps only colleagues there."""
    resent = (
        "Resent-From: tanaka@example.co.jp\r\n"
        "Resent-To: Suzuki <suzuki@example.co.jp>, a@client.example.com\r\n"
        "Resent-Cc: b@other.example"
    )
    data = message("suzuki@example.co.jp", extra=resent)
    env = Envelope(SENDER, ("suzuki@example.co.jp", "a@client.example.com", "b@other.example"))
    [out] = apply_verdict(data, decided(Action.REWRITE), env, ORG)
    msg = parsed(out.data)
    assert msg["Resent-To"] == "Suzuki <suzuki@example.co.jp>"
    assert msg["Resent-Cc"] is None
    assert b"client.example.com" not in header_block(out.data)
    assert b"removed=2" in out.data.split(b"\r\n", 1)[0]
