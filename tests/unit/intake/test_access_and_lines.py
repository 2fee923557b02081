"""Access control and the line checks every message goes through."""

from __future__ import annotations

import ipaddress

import pytest

from sendguard.intake.access import is_trusted, peer_address
from sendguard.intake.handler import longest_line
from sendguard.parse.lines import has_bare_line_ending, normalise_line_endings

NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (("127.0.0.1", 5000), True),
        (("::ffff:127.0.0.5", 5000, 0, 0), True),
        (("2001:db8::1", 25, 0, 0), True),
        (("192.0.2.1", 25), False),
        (("10.1.1.1", 25), False),
        (None, False),
        (("not-an-ip", 1), False),
    ],
)
def test_trusted_networks(peer: object, trusted: bool) -> None:
    """Only peers inside a trusted network are trusted; IPv4-mapped IPv6 counts as IPv4."""
    assert is_trusted(peer, NETS) is trusted


def test_peer_address_unwraps_mapped() -> None:
    """The log shows 127.0.0.5, not ::ffff:127.0.0.5."""
    assert str(peer_address(("::ffff:127.0.0.5", 1, 0, 0))) == "127.0.0.5"


@pytest.mark.parametrize(
    ("data", "bare"),
    [
        (b"a\r\nb\r\n", False),
        (b"a\nb\r\n", True),
        (b"a\rb\r\n", True),
        (b"a\r\n\r", True),
        (b"\n", True),
        (b"", False),
    ],
)
def test_bare_line_endings(data: bytes, bare: bool) -> None:
    """A CR or LF outside a CRLF pair is detected."""
    assert has_bare_line_ending(data) is bare


def test_normalise() -> None:
    """Normalising turns every bare CR and LF into CRLF and keeps CRLF as is."""
    assert normalise_line_endings(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd"


def test_longest_line() -> None:
    """The longest CRLF-delimited line is measured in octets."""
    assert longest_line(b"ab\r\n" + b"x" * 1000 + b"\r\nc") == 1000
