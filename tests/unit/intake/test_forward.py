"""XFORWARD/XCLIENT attribute lists as Postfix's READMEs define them, and the login Postfix
names in its own Received: header."""

from __future__ import annotations

import ipaddress

import pytest

from sendguard.intake.forward import (
    ClientAttributes,
    ForwardError,
    parse,
    postfix_login,
    xtext_decode,
)


def test_xforward_attributes_accumulate_and_decode_xtext() -> None:
    """Several commands build one set; names are case-blind; xtext +XX is decoded."""
    first = parse("XFORWARD", "NAME=pc7.example ADDR=192.0.2.7 PROTO=ESMTP", None)
    both = parse("XFORWARD", "helo=my+20pc ident=4Xk2 source=remote port=40123", first)
    assert both == ClientAttributes(
        name="pc7.example",
        addr=ipaddress.IPv4Address("192.0.2.7"),
        port=40123,
        proto="ESMTP",
        helo="my?pc",  # a space (Postfix forwards multi-word HELOs) made printable, as Postfix
        ident="4Xk2",
        source="REMOTE",
    )


def test_unavailable_in_any_case_is_unknown() -> None:
    """[UNAVAILABLE] (note 3: any case) leaves the attribute unknown; XCLIENT NAME may also
    be [TEMPUNAVAIL]."""
    attrs = parse("XFORWARD", "NAME=[unavailable] ADDR=[UNAVAILABLE] HELO=[Unavailable]", None)
    assert attrs == ClientAttributes()
    assert parse("XCLIENT", "NAME=[TEMPUNAVAIL]", None).name is None
    with pytest.raises(ForwardError):
        parse("XFORWARD", "ADDR=[TEMPUNAVAIL]", None)


def test_ipv6_needs_its_prefix_and_mapped_ipv4_is_unwrapped() -> None:
    """ADDR is dotted IPv4 or IPV6:-prefixed (any case), never bracketed."""
    assert parse("XFORWARD", "ADDR=IPV6:2001:db8::7", None).addr == ipaddress.IPv6Address(
        "2001:db8::7"
    )
    assert parse("XFORWARD", "ADDR=ipv6:::ffff:192.0.2.9", None).addr == ipaddress.IPv4Address(
        "192.0.2.9"
    )
    for bad in ("2001:db8::7", "[192.0.2.7]", "192.0.2", "IPV6:192.0.2.7"):
        with pytest.raises(ForwardError, match=r"^501 5\.5\.4 Bad XFORWARD ADDR"):
            parse("XFORWARD", f"ADDR={bad}", None)


@pytest.mark.parametrize(
    ("command", "arg", "reason"),
    [
        ("XFORWARD", "", "Syntax"),
        ("XFORWARD", "LOGIN=tanaka", "attribute name"),  # XFORWARD has no LOGIN
        ("XCLIENT", "IDENT=x", "attribute name"),
        ("XFORWARD", "NAME", "attribute name"),
        ("XFORWARD", "PORT=65536", "PORT"),
        ("XFORWARD", "PORT=-1", "PORT"),
        ("XFORWARD", "SOURCE=ELSEWHERE", "SOURCE"),
        ("XCLIENT", "PROTO=LMTP", "PROTO"),
        ("XFORWARD", "PROTO=" + "X" * 65, "PROTO"),
        ("XFORWARD", "NAME=" + "a" * 256, "too long"),
        ("XCLIENT", "LOGIN=a+0Db", "not printable"),  # a CR after decoding
        ("XCLIENT", "LOGIN=a+20b", "not printable"),  # a space
        ("XFORWARD", "HELO=a\u00e9", "value syntax"),  # raw non-ASCII is not xtext
        ("XFORWARD", "HELO=a+zz", "value syntax"),  # not xtext
        ("XFORWARD", "HELO=a=b", "value syntax"),
    ],
)
def test_bad_attribute_lists_get_501_and_change_nothing(
    command: str, arg: str, reason: str
) -> None:
    """Either the whole command applies or none of it; the reason is in the 501."""
    before = ClientAttributes(name="kept")
    with pytest.raises(ForwardError, match=reason) as caught:
        parse(command, f"NAME=changed {arg}" if arg else arg, before)  # type: ignore[arg-type]
    assert str(caught.value).startswith("501 5.5.4")
    assert before.name == "kept"


def test_names_with_control_or_non_ascii_characters_are_made_printable() -> None:
    attrs = parse("XFORWARD", "HELO=a+0Db+C3+A9 NAME=x+09y", None)
    assert (attrs.helo, attrs.name) == ("a?b??", "x?y")


def test_a_value_of_255_is_accepted() -> None:
    assert parse("XFORWARD", "NAME=" + "a" * 255, None).name == "a" * 255


def test_xtext_decoding() -> None:
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    assert xtext_decode("") == ""
    with pytest.raises(ForwardError):
        xtext_decode("a+2")


# --------------------------------------------------------------------------- Postfix's header

FORWARDED = ClientAttributes(
    name="pc7.example", addr=ipaddress.IPv4Address("192.0.2.7"), helo="pc7", ident="546E9"
)
HEADER = (
    b"Received: from pc7 (pc7.example [192.0.2.7])\r\n"
    b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
    b"\t key-exchange X25519 server-signature RSA-PSS (2048 bits))\r\n"
    b"\t(Authenticated sender: tanaka)\r\n"
    b"\tby mx.example.co.jp (Postfix) with ESMTPSA id 546E9\r\n"
    b"\tfor <x@partner.test>; Sun, 29 Nov 2026 13:01:32 +0000 (UTC)\r\n"
)
BODY = b"Received: from evil (x [198.51.100.1])\r\n\t(Authenticated sender: boss)\r\n" + (
    b"\tby other (Postfix) with ESMTPA id 1\r\nSubject: hi\r\n\r\nbody\r\n"
)


def test_the_login_comes_from_postfix_own_topmost_header() -> None:
    """The header Postfix wrote for this client names the login; the client's own headers
    below it (which may claim anything) are never read."""
    assert postfix_login(HEADER + BODY, FORWARDED) == "tanaka"
    assert postfix_login(BODY, FORWARDED) is None  # the client's header: other HELO/ADDR


@pytest.mark.parametrize(
    "header",
    [
        # Not authenticated: Postfix writes no login and says ESMTPS, not ESMTPSA.
        b"Received: from pc7 (pc7.example [192.0.2.7])\r\n\tby mx (Postfix) with ESMTPS id 1\r\n",
        # A HELO that tries to write the login line itself: it is not XFORWARD's HELO.
        b"Received: from pc7 (x)\r\n\t(Authenticated sender: boss)\r\n\tby mx (Postfix) with "
        b"ESMTPA id 1\r\n",
        # Another address than XFORWARD's.
        b"Received: from pc7 (pc7.example [192.0.2.8])\r\n\t(Authenticated sender: tanaka)\r\n"
        b"\tby mx (Postfix) with ESMTPA id 1\r\n",
        # The login line after "by" is not Postfix's layout.
        b"Received: from pc7 (pc7.example [192.0.2.7])\r\n\tby mx (Postfix) with ESMTPA id 1\r\n"
        b"\t(Authenticated sender: tanaka)\r\n\tby mx (Postfix) with ESMTPA id 1\r\n",
    ],
)
def test_anything_else_names_no_login(header: bytes) -> None:
    assert postfix_login(header + b"Subject: x\r\n\r\nbody\r\n", FORWARDED) is None


def test_no_helo_or_address_forwarded_means_no_login() -> None:
    from dataclasses import replace

    assert postfix_login(HEADER, replace(FORWARDED, helo=None)) is None
    assert postfix_login(HEADER, replace(FORWARDED, addr=None)) is None


def test_ipv6_client_and_logged_port() -> None:
    attrs = ClientAttributes(addr=ipaddress.IPv6Address("2001:db8::7"), helo="pc")
    header = (
        b"Received: from pc (unknown [IPv6:2001:db8::7]:50123)\r\n"
        b"\t(Authenticated sender: sato)\r\n\tby mx (Postfix) with ESMTPSA id 1\r\n\r\n"
    )
    assert postfix_login(header, attrs) == "sato"
