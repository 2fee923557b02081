"""Strict address parsing: envelope addr-specs and To/Cc header values."""

from __future__ import annotations

import time

import pytest

from sendguard.parse.addresses import (
    envelope_address,
    is_routing_address,
    parse_addr_spec,
    parse_address_header,
    registrable_domain,
)


def _header(value: str, limit: int = 100) -> tuple[list[str], list[str]]:
    addresses, problems = parse_address_header(value, "to", max_addresses=limit)
    return [a.addr_spec for a in addresses], [p.code for p in problems]


def test_cve_2023_27043_close_paren_is_malformed_not_bob() -> None:
    """`alice@example.org)<bob@example.org>` yields a problem, never bob (parseaddr's answer)."""
    specs, codes = _header("alice@example.org)<bob@example.org>")
    assert specs == []
    assert codes == ["address-syntax"]
    with pytest.raises(ValueError, match="bad domain"):
        parse_addr_spec("alice@example.org)<bob@example.org>")


@pytest.mark.parametrize(
    "text",
    [
        "a@x.org\r\nRCPT TO:<evil@z.test>",
        "a b@x.org",
        "<a@x.org>",
        "@x.org",
        "a@",
        "a..b@x.org",
        ".a@x.org",
        "a@-x.org",
        "a@x..org",
        "a@1.2.3.4",
        "a\x00@x.org",
        "a\u200b@x.org",
        "a@[300.1.1.1]",
        "x" * 65 + "@x.org",
        "a@" + "b" * 64 + ".org",
        '""@x.org',
    ],
)
def test_addr_spec_rejects_tricks(text: str) -> None:
    """Controls, spaces, brackets, empty or over-long parts and bad labels raise ValueError."""
    with pytest.raises(ValueError, match=r"^[ -~]+$"):
        parse_addr_spec(text)


def test_idn_both_forms_give_the_same_address() -> None:
    """A U-label and its A-label parse to the same lower-case A-label with the U-label kept."""
    unicode_form = parse_addr_spec("田中@例え.テスト")
    ascii_form = parse_addr_spec("田中@XN--R8JZ45G.xn--zckzah")
    assert unicode_form.domain == ascii_form.domain == "xn--r8jz45g.xn--zckzah"
    assert unicode_form.domain_unicode == ascii_form.domain_unicode == "例え.テスト"
    assert unicode_form.addr_spec == "田中@xn--r8jz45g.xn--zckzah"


def test_quoted_local_parts_are_kept_or_unquoted_when_needless() -> None:
    """`"john doe"@x` stays quoted; `"john"@x` is the same mailbox as john@x."""
    assert parse_addr_spec('"john doe"@Example.ORG').addr_spec == '"john doe"@example.org'
    assert parse_addr_spec('"john"@example.org').addr_spec == "john@example.org"
    assert parse_addr_spec("a@[192.0.2.1]").domain == "[192.0.2.1]"


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("mail.example.ne.jp", "example.ne.jp"),
        ("tanaka.co.jp", "tanaka.co.jp"),
        ("a.b.tanaka.co.jp", "tanaka.co.jp"),
        ("www.example.com", "example.com"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("co.jp", "co.jp"),
    ],
)
def test_registrable_domain_uses_the_offline_public_suffix_list(domain: str, expected: str) -> None:
    """The registrable domain is the organisation level by the bundled PSL."""
    assert registrable_domain(domain) == expected


def test_header_with_groups_quotes_comments_and_routes() -> None:
    """Groups, quoted names with commas, comments and obs-routes all yield their mailboxes."""
    value = (
        '"Bob, Jr." <bob@x.org>, undisclosed-recipients:;, team: a@x.org, '
        "<b@x.org>;, c@x.org (Carol (nested)), <@r1,@r2:route@x.org>,\r\n Mr. Smith <s@x.org>"
    )
    addresses, problems = parse_address_header(value, "cc", max_addresses=100)
    assert problems == []
    assert [(a.addr_spec, a.display_name, a.group) for a in addresses] == [
        ("bob@x.org", "Bob, Jr.", None),
        ("a@x.org", "", "team"),
        ("b@x.org", "", "team"),
        ("c@x.org", "Carol (nested)", None),
        ("route@x.org", "", None),
        ("s@x.org", "Mr. Smith", None),
    ]
    assert {a.field for a in addresses} == {"cc"}


@pytest.mark.parametrize(
    ("encoded", "name"),
    [
        ("=?UTF-8?B?5bGx55Sw6Iqx5a2Q?=", "山田花子"),
        ("=?ISO-2022-JP?B?GyRCRURDZkJATzobKEI=?=", "田中太郎"),
        ("=?Shift_JIS?B?jbKToZNzjnE=?=", "佐藤都子"),
        ('"=?utf-8?q?=EF=BC=A1=EF=BC=A2?="', "AB"),
    ],
)
def test_rfc2047_display_names_in_three_charsets(encoded: str, name: str) -> None:
    """RFC 2047 names decode from UTF-8, ISO-2022-JP and Shift_JIS, NFKC-normalised."""
    addresses, _ = parse_address_header(f"{encoded} <t@tanaka.co.jp>", "from", max_addresses=5)
    assert addresses[0].display_name == name
    assert addresses[0].registrable_domain == "tanaka.co.jp"


def test_twenty_thousand_addresses_stop_at_the_limit_quickly() -> None:
    """A 20,000-address header stops at max_addresses with a limit problem, in linear time."""
    value = ", ".join(f"user{i} <user{i}@example{i % 50}.co.jp>" for i in range(20_000))
    started = time.perf_counter()
    specs, codes = _header(value, limit=1000)
    assert time.perf_counter() - started < 5  # generous bound for CI; the bench gives figures
    assert len(specs) == 1000
    assert codes == ["address-count"]
    every, none = _header(value, limit=20_000)
    assert len(every) == 20_000
    assert none == []


def test_malformed_element_does_not_hide_the_others() -> None:
    """One broken element is reported and the valid ones around it are still returned."""
    specs, codes = _header("a@x.org, Big Bug bb@bug.com, <b@x.org")
    assert specs == ["a@x.org"]
    assert codes == ["address-syntax", "address-syntax"]


@pytest.mark.parametrize(
    ("local", "routing"),
    [
        ("user%b.example", True),
        ("b.example!user", True),
        ('"user@b.example"', True),
        ('"user%b.example"', True),
        ('"b.example!user"', True),
        ('"user\\@b.example"', True),
        ("user％b.example", True),  # full-width percent: NFKC makes it %
        ("user", False),
        ("first.last+tag", False),
        ('"john smith"', False),
        ("田中", False),
    ],
)
def test_routing_local_parts(local: str, routing: bool) -> None:
    """`%`, `!` and a quoted `@`/`%`/`!` make a routing address; ordinary parts do not."""
    assert is_routing_address(local) is routing


def test_quoted_at_keeps_its_quotes_and_is_routing() -> None:
    """The canonical local part of ``"user@b.example"@x`` stays quoted and is a routing one."""
    address = parse_addr_spec('"user@b.example"@ichiban-shoji.co.jp')
    assert address.local_part == '"user@b.example"'
    assert address.domain == "ichiban-shoji.co.jp"
    assert is_routing_address(address.local_part)


@pytest.mark.parametrize(
    "text",
    [
        "user@ichiban-shoji\u3002co\u3002jp",  # ideographic full stop
        "user@ichiban-shoji\uff0eco\uff0ejp",  # full-width full stop
        "user@ichiban-shoji\uff61co\uff61jp",  # half-width ideographic full stop
        "user@\uff45xample.co.jp",  # full-width e
    ],
)
def test_envelope_domain_must_be_canonical_headers_may_map(text: str) -> None:
    """In the envelope a domain must be written as it is sent; a header is read as meant."""
    with pytest.raises(ValueError, match="canonical"):
        parse_addr_spec(text, field="envelope")
    assert parse_addr_spec(text, field="to").domain.endswith(".co.jp")


def test_canonical_idn_envelope_domain_is_accepted() -> None:
    """A U-label domain in canonical form is a valid envelope domain (with SMTPUTF8)."""
    assert parse_addr_spec("田中@例え.テスト", field="envelope").domain == "xn--r8jz45g.xn--zckzah"


def test_mail_view_exposes_resent_to_and_cc() -> None:
    """Resent-To/Resent-Cc are read into the mail view and count as visible recipients."""
    from sendguard.parse import ParseLimits, parse_message

    data = (
        b"From: a@example.co.jp\r\nTo: b@example.co.jp\r\n"
        b"Resent-From: a@example.co.jp\r\nResent-To: X <x@outside.example>\r\n"
        b"Resent-Cc: y@outside.example, broken@@outside.example\r\n\r\nbody\r\n"
    )
    mail = parse_message(data, ParseLimits())
    assert [a.addr_spec for a in mail.resent_to] == ["x@outside.example"]
    assert [(a.addr_spec, a.field) for a in mail.resent_cc] == [("y@outside.example", "resent-cc")]
    assert {a.addr_spec for a in mail.visible_recipients} == {
        "b@example.co.jp",
        "x@outside.example",
        "y@outside.example",
    }
    assert [(p.kind, p.where) for p in mail.problems] == [("malformed", "resent-cc")]


@pytest.mark.parametrize(
    "text", ["a@example.co.jp", "A.B@EXAMPLE.JP", "田中@例え.jp", "x@[192.0.2.1]", "bad", "a@b@c"]
)
def test_envelope_address_is_parse_addr_spec_remembered(text: str) -> None:
    """The same `Address` (shared: it is frozen) or the same refusal, every time."""
    for _ in range(2):
        try:
            expected: object = parse_addr_spec(text, field="envelope")
        except ValueError as exc:
            expected = str(exc)
        try:
            got: object = envelope_address(text)
        except ValueError as exc:
            got = str(exc)
        assert got == expected
